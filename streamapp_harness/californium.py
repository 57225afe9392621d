"""Eclipse Californium as a CoAP/DTLS test peer: :class:`CaliforniumServer`, on 127.0.0.1 only.

Californium (californium-core, and scandium for DTLS 1.2) is the Java CoAP stack under stream-reactor's CoAP
sink and Apache Camel's camel-coap; a server built on it tells whether streamapp's client (aiocoap +
python-mbedtls) interoperates with what those sinks' users run.

Facts found while writing this (Californium 3.14.0, OpenJDK 17):

* **cf-plugtest-server is not on Maven Central.** Central has californium-core, scandium, element-connector,
  cf-oscore, demo-certs ... 3.14.0 (the newest 3.x; 4.0.0-M6 is a milestone), but no version of
  ``org.eclipse.californium:cf-plugtest-server`` at all (Eclipse publishes the demo apps to repo.eclipse.org,
  which this machine cannot reach). So the peer is a small server of ours
  (``jvm/californium/StreamappCaliforniumPeer.java``) on Californium's own libraries from Central
  (``jvm/californium/pom.xml``), compiled once with ``javac`` (so a JDK, not only a JRE) into
  ``<jvm cache>/californium-peer-<hash>/``. It mirrors
  cf-plugtest-server 3.14.0: the same configuration defaults (``PlugtestServer.DEFAULTS``: 64-byte
  ``MAX_MESSAGE_SIZE`` and ``PREFERRED_BLOCK_SIZE``, 8192-byte ``MAX_RESOURCE_BODY_SIZE``, CBC suites allowed,
  CID length 6, ...), its preselected cipher suites, a ``MultiPskFileStore`` read from a ``--psk-file`` of
  ``identity=base64(secret)`` lines (the plugtest's own format), ``--client-auth`` NONE/WANTED/NEEDED, and any
  raw public key trusted (``setTrustAllRPKs``; python-mbedtls cannot send one anyway).
* **demo-certs are expired**: the certificates in ``org.eclipse.californium:demo-certs:3.14.0``
  (``keyStore.jks`` password ``endPass``, ``trustStore.jks`` password ``rootPass``) were valid until
  2025-10-25. The server's certificate is therefore given as PEM files (``cert``/``key``, PKCS#8 EC or RSA
  key), e.g. from the test PKI of ``tests/certs.py``; ``trust`` (a PEM bundle) holds the CAs that client
  certificates must chain to.
* Start-up: 1-1.7 s to ready on 2 cores (JVM with C1 only, JCE set-up, both endpoints), ~1 s for a restart;
  the first start also fetches the jars (Maven, ~10 s) and compiles the server (``javac``, ~4-5 s), both
  cached. Ready means: the process
  printed ``READY`` (after ``CoapServer.start()``, so both endpoints are bound) and answers a plain CoAP GET
  of ``/.well-known/core`` with 2.05.
* Files in its working directory (``workdir``, also the JVM's current directory):
  ``Californium3StreamappPeer.properties`` (every Californium setting, as the plugtest writes
  ``CaliforniumPlugtest3.properties``; written on the first start, read on later ones), ``psk.txt`` (the
  identities), ``received.jsonl`` (see below), ``californium.log`` unless ``log_path`` says otherwise
  (slf4j-simple's INFO lines and the ``READY`` line), and ``hs_err_pid*.log`` should the JVM itself crash.
* Resources, as in cf-plugtest-server (what a sink's PUT or POST gets):

  ==================  ==========================================  =================================
  path                PUT (the sink's default)                    POST
  ==================  ==========================================  =================================
  ``/test``           2.04 (4.12 with If-None-Match); not stored  2.01, Location-Path location1/...
  ``/create1``        2.01 and stored (4.00 without Content-      4.05
                      Format); GET reads it back
  ``/large-update``   2.04 and stored (4.00 without Content-      4.05
                      Format); GET reads it back
  ``/large-create``   **4.05 Method Not Allowed**                 2.01, a new child /large-create/N
  ``/echo``           4.05                                        2.04 with the body echoed, but only
                                                                  for text/plain, octet-stream or no
                                                                  Content-Format: **JSON gets 4.06**
  ==================  ==========================================  =================================

  (the plugtest's other resources - observe, separate, location-query, ... - are left out: a sink never
  uses them). Any other path answers 4.04.
* Block-wise: a body over one message is accepted with Block1 up to 8192 bytes (more: 4.13). Californium
  answers the first block (aiocoap sends 1024-byte blocks) with 2.31 Continue and a Block1 of **64 bytes**
  (its preferred size), and aiocoap goes on in 64-byte blocks from offset 1024 (block 16): a 3000-byte
  body is 32 requests (1 + 31), not 3. Responses over 64 bytes come back block-wise (Block2) too.
* Californium answers a NON request with a NON response.
* After a restart (same ports), the new process has no DTLS session: records of the old one are dropped
  without an answer, so the client only finds out by silence (streamapp: after ``STALE_SENDS`` unanswered
  datagrams, then a new handshake; ~6-8 s with the default 2 s ACK_TIMEOUT). That holds for SIGTERM too:
  the JVM exits without a close_notify to anyone.

**What it received** is recorded by the server itself, one JSON object per line in ``received.jsonl`` (kept
over restarts), read with :meth:`CaliforniumServer.received`: ``kind="message"`` for every request datagram
as it arrived (each Block1 block, retransmissions and the readiness probes too) and ``kind="request"`` for
each request a resource handled (after block-wise reassembly: the whole body), with the scheme, CoAP type,
method, Message ID, path, Content-Format, Block1 option, the DTLS peer's identity (the PSK identity, or the
client certificate's subject such as ``CN=streamapp-client``) and the payload.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

from streamapp_harness import jvm
from streamapp_harness.process import LOCALHOST, PeerError, PeerProcess, free_port, log_tail, wait_until

__all__ = ["JAVA_SOURCE", "CaliforniumRequest", "CaliforniumServer", "compiled_peer"]

PEER = "californium"
MAIN_CLASS = "StreamappCaliforniumPeer"
CLIENT_AUTH_MODES = ("NONE", "WANTED", "NEEDED")
#: Every Californium setting, written on the first start and read on later ones (the plugtest's own is
#: ``CaliforniumPlugtest3.properties`` in its working directory).
PROPERTIES = "Californium3StreamappPeer.properties"
#: Longest a fetch (Maven) and compile (javac) of the peer may take on a first run.
COMPILE_TIMEOUT_S = 300.0
_READY = re.compile(r"^READY californium=(\S+) (.*)$", re.MULTILINE)

#: The server's source, beside its pom: compiled by :func:`compiled_peer`.
JAVA_SOURCE = jvm.POMS / PEER / f"{MAIN_CLASS}.java"


def _tool(name: str) -> str:
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / name) if home else shutil.which(name)
    if found is None or not Path(found).exists():
        raise PeerError(
            f"{name} not found (set JAVA_HOME or put it on PATH): the Californium peer is compiled from "
            "source, which needs a JDK (Debian: openjdk-17-jdk-headless), not only a JRE"
        )
    return found


def compiled_peer() -> tuple[Path, str]:
    """The folder of the compiled server and the Californium jars' classpath; fetched and compiled once
    (into ``<jvm cache>/californium-peer-<hash of the source and the jar set>/``)."""
    jars = jvm.fetch(PEER)
    classpath = jvm.classpath(PEER)
    digest = hashlib.sha256(JAVA_SOURCE.read_bytes() + jars.name.encode()).hexdigest()[:12]
    folder = jvm.cache_root() / f"californium-peer-{digest}"
    if (folder / f"{MAIN_CLASS}.class").is_file():
        return folder, classpath
    javac = _tool("javac")
    staging = Path(tempfile.mkdtemp(prefix=".californium-peer-", dir=folder.parent))
    try:
        source = staging / "src" / f"{MAIN_CLASS}.java"
        source.parent.mkdir()
        shutil.copyfile(JAVA_SOURCE, source)
        argv = [javac, "-nowarn", "-d", str(staging / "classes"), "-cp", classpath, str(source)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise PeerError(f"javac could not compile the Californium peer:\n{done.stdout}{done.stderr}")
        with contextlib.suppress(OSError):  # another process may have put the same folder in place first
            (staging / "classes").rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not (folder / f"{MAIN_CLASS}.class").is_file():
        raise PeerError(f"the compiled Californium peer is missing from {folder}")
    return folder, classpath


@dataclass(frozen=True)
class CaliforniumRequest:
    """One line of ``received.jsonl``: a request datagram (``kind="message"``) or a whole request as a
    resource handled it (``kind="request"``)."""

    kind: Literal["message", "request"]
    scheme: str  # "coap" or "coaps"
    type: str  # "CON" or "NON"
    method: str  # "PUT", "POST", "GET", "DELETE", ...
    mid: int
    path: str  # "/large-update"
    resource: str | None  # the resource that handled it (requests only)
    content_format: int | None
    block1: str | None  # Californium's rendering, e.g. "(szx=2/64, m=true, num=17)"
    peer: str | None  # DTLS identity: the PSK identity or "CN=..." of the client certificate
    payload: bytes


def _coap_get(port: int, path: tuple[str, ...], timeout: float) -> str | None:
    """The dotted response code of a plain CON GET (hand-built, no aiocoap: callable from any thread or
    event loop), or None without an answer in ``timeout``."""
    mid = secrets.randbelow(0x10000)
    message = bytearray([0x40, 0x01, mid >> 8, mid & 0xFF])  # version 1, CON, no token, GET
    last = 0
    for segment in path:  # Uri-Path (11); every segment here is shorter than 13 bytes
        raw = segment.encode()
        message += bytes([((11 - last) << 4) | len(raw)]) + raw
        last = 11
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((LOCALHOST, port))
        sock.send(bytes(message))
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                answer = sock.recv(2048)
            except (TimeoutError, ConnectionRefusedError):
                return None
            if len(answer) >= 4 and answer[2:4] == message[2:4] and answer[0] >> 4 & 3 == 2:  # our ACK
                return f"{answer[1] >> 5}.{answer[1] & 0x1F:02d}"
    return None


class CaliforniumServer(PeerProcess):
    """A Californium 3.14 CoAP server (see the module docstring) on 127.0.0.1: plain CoAP on :attr:`port`,
    DTLS on :attr:`dtls_port`.

    ``psk_identities``: identity -> secret (bytes), written to ``psk.txt`` as ``identity=base64(secret)``;
    ``cert``/``key``: the server's certificate chain and PKCS#8 key (PEM) for certificate suites;
    ``trust``: PEM CAs that client certificates must chain to; ``client_auth``: NONE, WANTED or NEEDED
    (a client certificate is not asked for, asked for, or required). Without ``cert`` only PSK suites work.

    Both ports are chosen free at the first start and kept over :meth:`stop`/:meth:`start` and
    :meth:`restart`. ``workdir`` (the server's working directory; a temporary one, removed on exit, when not
    given) and ``received.jsonl`` in it persist over restarts.
    """

    def __init__(
        self,
        *,
        psk_identities: Mapping[str, bytes] | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        trust: Path | None = None,
        client_auth: Literal["NONE", "WANTED", "NEEDED"] = "NONE",
        workdir: Path | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        heap: str = "256m",
    ) -> None:
        if client_auth not in CLIENT_AUTH_MODES:
            raise ValueError(f"client_auth {client_auth!r}: choose from {', '.join(CLIENT_AUTH_MODES)}")
        if (cert is None) != (key is None):
            raise ValueError("cert and key go together")
        if cert is None and (trust is not None or client_auth != "NONE"):
            raise ValueError("trust and client_auth only apply with cert and key")
        for identity in psk_identities or {}:
            if not identity or any(c in identity for c in "=\r\n") or identity.startswith("#"):
                raise ValueError(f"PSK identity {identity!r}: not empty, no '=' or newline, no leading '#'")
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="californium-")) if workdir is None else Path(workdir)
        super().__init__("Californium", log_path or self.workdir / "californium.log")
        self._psk_identities = dict(psk_identities or {})
        self._cert, self._key, self._trust = cert, key, trust
        self._client_auth = client_auth
        self._startup_timeout = startup_timeout
        self._heap = heap
        self._ports: tuple[int, int] | None = None
        self._launch_marker = 0  # the log's size at the last launch: READY is looked for after it
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        #: The Californium version the server reported, and how long its last start took (s).
        self.version: str | None = None
        self.started_in_s: float | None = None

    # -- addresses ------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._ports is None:
            raise PeerError("Californium was never started: no ports yet")
        return self._ports[0]

    @property
    def dtls_port(self) -> int:
        if self._ports is None:
            raise PeerError("Californium was never started: no ports yet")
        return self._ports[1]

    @property
    def uri(self) -> str:
        """``coap://127.0.0.1:P`` (no trailing slash)."""
        return f"coap://{LOCALHOST}:{self.port}"

    @property
    def coaps_uri(self) -> str:
        """``coaps://127.0.0.1:Q`` (no trailing slash)."""
        return f"coaps://{LOCALHOST}:{self.dtls_port}"

    @property
    def received_path(self) -> Path:
        return self.workdir / "received.jsonl"

    @property
    def log_path(self) -> Path:
        assert self._log_path is not None
        return self._log_path

    # -- life cycle -----------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Launch the server and return once it answers (see the module docstring). Reuses earlier ports."""
        if self.running:
            return self
        classes, classpath = compiled_peer()
        java = jvm.java()
        self.workdir.mkdir(parents=True, exist_ok=True)
        psk_file = self.workdir / "psk.txt"
        psk_file.write_text(
            "".join(f"{i}={base64.b64encode(s).decode()}\n" for i, s in self._psk_identities.items())
        )
        psk_file.chmod(0o600)
        fixed = self._ports is not None
        for attempt in range(1, (1 if fixed else 3) + 1):
            if not fixed:
                self._ports = (free_port("udp"), free_port("udp"))
            argv = [
                *java,
                f"-Xmx{self._heap}",
                f"-XX:ErrorFile={self.workdir / 'hs_err_pid%p.log'}",
                "-XX:TieredStopAtLevel=1",  # the C1 compiler only: starts faster; a test peer's load is light
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                "-cp",
                os.pathsep.join([str(classes), classpath]),
                MAIN_CLASS,
                *("--host", LOCALHOST, "--coap-port", str(self.port), "--coaps-port", str(self.dtls_port)),
                *("--psk-file", str(psk_file), "--received", str(self.received_path)),
                *("--properties", str(self.workdir / PROPERTIES)),
                *self._certificate_args(),
            ]
            started = time.monotonic()
            self._spawn(argv)
            try:
                wait_until(self._ready, self._startup_timeout, what=f"Californium on {self.uri} to be ready")
            except PeerError:  # it exited: maybe a port was taken meanwhile; fresh ones when we chose them
                self.stop()
                if fixed or attempt == 3:
                    raise
                continue
            except BaseException:
                self.stop()
                raise
            self.started_in_s = time.monotonic() - started
            return self
        raise AssertionError("unreachable")

    def _certificate_args(self) -> list[str]:
        if self._cert is None or self._key is None:
            return []
        args = ["--cert", str(self._cert), "--key", str(self._key), "--client-auth", self._client_auth]
        return [*args, "--trust", str(self._trust)] if self._trust is not None else args

    def _spawn(self, argv: Sequence[str | bytes], env: dict[str, str] | None = None) -> None:
        """As :meth:`PeerProcess._spawn`, in :attr:`workdir` (what the JVM writes to ``.`` lands there)."""
        self._log = self.log_path.open("ab")
        self._launch_marker = self._log.tell()  # READY is looked for after this
        out: IO[bytes] = self._log
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
            start_new_session=True,  # own process group: signals reach only this peer
        )

    def _ready(self) -> bool:
        self._check_alive()
        with self.log_path.open("rb") as log:
            log.seek(self._launch_marker)
            ready = _READY.search(log.read().decode(errors="replace"))
        if ready is None:
            return False
        self.version = ready[1]
        return _coap_get(self.port, (".well-known", "core"), timeout=0.5) == "2.05"

    def restart(self, *, crash: bool = True) -> Self:
        """Stop the server and start it again on the same ports: every DTLS session and stored body is gone.

        ``crash`` (the default): SIGKILL; else SIGTERM. Clients are told nothing either way (no close_notify:
        the JVM exits without closing the DTLS sessions).
        """
        self.stop(kill=crash)
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- what arrived ---------------------------------------------------------------------------------------

    def received(
        self, kind: Literal["message", "request"] = "request", path: str | None = None
    ) -> list[CaliforniumRequest]:
        """What the server recorded (over every start), in arrival order; only ``path`` when given."""
        if not self.received_path.exists():
            return []
        found = []
        for line in self.received_path.read_text().splitlines():
            if not line.strip():
                continue
            fields = json.loads(line)
            if fields["kind"] != kind or (path is not None and fields["path"] != path):
                continue
            fields["payload"] = base64.b64decode(fields["payload"])
            found.append(CaliforniumRequest(**fields))
        return found

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)
