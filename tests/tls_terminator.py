"""A TLS terminator in front of a plain Tansu broker: ``socat OPENSSL-LISTEN`` (Debian's ``socat``).

Tansu 0.6.0 cannot serve TLS itself (its ``--cert`` and ``--key`` flags exclude each other, and its accept
loop never uses the acceptor), so the tests put socat in front of it: socat listens with TLS on the port the
broker advertises and forwards each connection to the broker's plain listener. With ``client_ca`` it also
verifies client certificates (mutual TLS).

Usage::

    with KafkaOverTls(pki.server_cert, pki.server_key, log_dir=tmp_path) as kafka:
        ...  # kafka.bootstrap, kafka.broker (a TansuBroker whose own clients speak TLS)
"""

from __future__ import annotations

import shutil
import socket
import ssl
from pathlib import Path
from types import TracebackType
from typing import Self

from streamapp_harness.peers import LOCALHOST, PeerError, TansuBroker, _Process, free_port, wait_until


class TlsTerminator(_Process):
    def __init__(
        self,
        listen_port: int,
        target_port: int,
        cert: Path,
        key: Path,
        *,
        client_ca: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        super().__init__("socat TLS terminator", log_path)
        self.port = listen_port
        self._target_port = target_port
        self._cert, self._key, self._client_ca = cert, key, client_ca

    def start(self) -> Self:
        socat = shutil.which("socat")
        if socat is None:
            raise PeerError("socat not found: install Debian's socat (make test does)")
        verify = f"verify=1,cafile={self._client_ca}" if self._client_ca else "verify=0"
        listen = (
            f"OPENSSL-LISTEN:{self.port},bind={LOCALHOST},reuseaddr,fork,"
            f"cert={self._cert},key={self._key},{verify}"
        )
        self._spawn([socat, "-d", "-d", listen, f"TCP:{LOCALHOST}:{self._target_port}"])
        wait_until(self._listening, timeout=10, what=f"socat to listen on {LOCALHOST}:{self.port}")
        return self

    def _listening(self) -> bool:
        self._check_alive()
        try:
            with socket.create_connection((LOCALHOST, self.port), timeout=1):
                return True
        except OSError:
            return False


def client_context(
    ca: Path, cert: Path | None = None, key: Path | None = None, *, check_hostname: bool = True
) -> ssl.SSLContext:
    """What the tests' own Kafka clients (producer, admin) use to reach the broker through TLS."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = check_hostname
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


class KafkaOverTls:
    """A Tansu broker reachable only through a TLS terminator (the broker advertises the TLS port)."""

    def __init__(
        self,
        server_cert: Path,
        server_key: Path,
        ca: Path,
        *,
        log_dir: Path,
        client_ca: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        check_hostname: bool = True,
    ) -> None:
        tls_port = free_port("tcp")
        plain_port = free_port("tcp")
        context = client_context(ca, client_cert, client_key, check_hostname=check_hostname)
        self.terminator = TlsTerminator(
            tls_port,
            plain_port,
            server_cert,
            server_key,
            client_ca=client_ca,
            log_path=log_dir / "socat.log",
        )
        self.broker = TansuBroker(
            plain_port,
            log_path=log_dir / "tansu-tls.log",
            advertised_port=tls_port,
            client_options={"security_protocol": "SSL", "ssl_context": context},
        )

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def __enter__(self) -> Self:
        self.terminator.start()
        try:
            self.broker.start()
        except BaseException:
            self.terminator.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.broker.stop()
        self.terminator.stop()
