"""The libcoap CoAP server as a test peer: ``coap-server-{notls,openssl,gnutls}`` from Debian's
``libcoap3-bin``, on 127.0.0.1, plain CoAP and DTLS (PSK and X.509), with ``coap-client`` to talk to it.

Used by the integration/e2e tests, the benchmarks and ``make demo``. The process plumbing (own process
group, log file, waits with a deadline, free ports) is ``process.py``'s.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from streamapp_harness.process import (
    LOCALHOST,
    PeerError,
    PeerProcess,
    free_udp_tcp_ports,
    port_is_free,
    wait_until,
)

__all__ = [
    "CoapClientResult",
    "CoapsCredentials",
    "DtlsHandshakeError",
    "LibcoapServer",
    "ReceivedRequest",
]

# ----------------------------------------------------------------------------------------------------------
# libcoap server
# ----------------------------------------------------------------------------------------------------------

# A message line as logged by coap-client at -v 6, e.g. "v:1 t:ACK c:2.05 i:30a4 {01} [ ... ] :: 'hi'".
# Requests log as "c:GET"/"c:PUT", so the numeric pattern only matches responses.
_RESPONSE_LINE = re.compile(r"^v:1 t:(?:ACK|CON|NON) c:(\d\.\d\d) ", re.MULTILINE)

# A fatal DTLS alert as logged by coap-client at -v 6: OpenSSL "SSL3 alert read:fatal:unknown CA",
# GnuTLS "DTLS: Alert '42': Certificate is bad".
_DTLS_ALERT = re.compile(r"alert read:fatal:(?P<openssl>[^\n]+)|Alert '\d+': (?P<gnutls>[^\n]+)")

# Logged (ERR) by coap-client when its DTLS session failed before the request could be sent.
_SESSION_FAILED = "cannot send CoAP pdu"

# Both libcoap builds silently cut a pre-shared key to its first 64 bytes (checked: a server key and a client
# key that differ only after byte 64 still match), so longer keys are refused here.
_MAX_PSK_BYTES = 64

# GnuTLS reads this as GNUTLS_SYSTEM_PRIORITY_FILE: on top of libcoap's own priority string it leaves only
# AES-128-CCM-8 with plain PSK key exchange, i.e. TLS_PSK_WITH_AES_128_CCM_8 (0xC0A8) for PSK sessions.
_GNUTLS_DISABLED_CIPHERS = (
    "AES-256-GCM",
    "AES-128-GCM",
    "AES-256-CCM",
    "AES-128-CCM",
    "AES-256-CCM-8",
    "AES-256-CBC",
    "AES-128-CBC",
    "CHACHA20-POLY1305",
    "CAMELLIA-256-GCM",
    "CAMELLIA-128-GCM",
    "3DES-CBC",
)
_GNUTLS_CCM8_ONLY = "".join(
    [
        "[overrides]\n",
        *(f"tls-disabled-cipher = {cipher}\n" for cipher in _GNUTLS_DISABLED_CIPHERS),
        "tls-disabled-kx = ECDHE-PSK\n",
        "tls-disabled-kx = DHE-PSK\n",
    ]
)


@dataclass(frozen=True)
class CoapClientResult:
    """What ``coap-client`` got back: the response code (``"2.05"``) and the exact payload bytes."""

    code: str
    payload: bytes

    @property
    def success(self) -> bool:
        return self.code.startswith("2.")


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as libcoap's server logged it at ``-v 7``: type, method, Message ID, path and payload."""

    type: str
    method: str
    message_id: int
    path: str
    payload: bytes


# An incoming request at -v 7, e.g. ``v:1 t:CON c:PUT i:01b4 {01} [ Uri-Path:d, Uri-Path:3 ] :: '{"n":5}'``.
# The payload is shown between quotes as is when it is printable (JSON here), so it ends at the line's end.
_REQUEST_LINE = re.compile(
    rb"^v:1 t:(CON|NON) c:(GET|POST|PUT|DELETE|FETCH|PATCH|iPATCH) i:([0-9a-f]{4}) \{[0-9a-f]*\} "
    rb"\[ (.*?) \](?: :: '(.*)')?$",
    re.MULTILINE,
)
_URI_PATH = re.compile(rb"Uri-Path:([^,]*)")


class DtlsHandshakeError(PeerError):
    """``coap-client`` could not set up its DTLS session, so the request was never sent.

    ``alert`` is the fatal alert the client received (e.g. ``"unknown CA"``), or None when the server stayed
    silent until the client gave up. libcoap's servers send **no** alert for a wrong PSK or an unknown PSK
    identity, so those show up as ``alert=None`` after the full timeout, exactly like a server that is down
    or paused. Certificate failures are reported at once with a fatal alert.
    """

    def __init__(self, message: str, alert: str | None) -> None:
        super().__init__(message)
        self.alert = alert


def _check_psk(key: bytes, what: str) -> None:
    if not 1 <= len(key) <= _MAX_PSK_BYTES or b"\0" in key:
        raise ValueError(f"{what} must be 1..{_MAX_PSK_BYTES} bytes, no NUL (libcoap truncates longer keys)")


@dataclass(frozen=True)
class CoapsCredentials:
    """How the client helpers of :class:`LibcoapServer` authenticate when they talk ``coaps://``.

    Either PSK (``psk`` + ``identity``; ``coap-client -k psk -u identity``) or X.509 (``cert``, optional
    ``key`` if not inside ``cert``, optional ``ca`` that the server certificate is checked against;
    ``coap-client -c cert -j key -C ca``, plus ``-n`` when ``verify_peer`` is false).

    ``flavour`` picks ``coap-client-openssl`` or ``coap-client-gnutls``. ``ccm8_only`` (GnuTLS only) restricts
    the client to AES-128-CCM-8 suites, i.e. TLS_PSK_WITH_AES_128_CCM_8 for PSK: the cipher the RFC 7252
    profile mandates. The OpenSSL client cannot be restricted (libcoap sets its own cipher list); it offers
    CCM_8 among ~50 suites and both servers then pick ECDHE-PSK-CHACHA20-POLY1305.
    """

    psk: bytes | None = None
    identity: str | None = None
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    verify_peer: bool = True
    flavour: Literal["openssl", "gnutls"] = "openssl"
    ccm8_only: bool = False

    def __post_init__(self) -> None:
        if (self.psk is None) == (self.cert is None):
            raise ValueError("give either psk (with identity) or cert")
        if self.psk is not None:
            _check_psk(self.psk, "psk")
            if self.identity is None:
                raise ValueError("a psk needs an identity")
        if self.cert is None and (self.key is not None or self.ca is not None or not self.verify_peer):
            raise ValueError("key, ca and verify_peer=False only apply together with cert")
        if self.ccm8_only and self.flavour != "gnutls":
            raise ValueError("ccm8_only needs flavour='gnutls' (libcoap fixes the OpenSSL client's ciphers)")

    def client_args(self) -> list[str | bytes]:
        """The (D)TLS options for ``coap-client`` (the key stays bytes: it may be any non-NUL bytes)."""
        if self.psk is not None:
            assert self.identity is not None
            return ["-k", self.psk, "-u", self.identity]
        assert self.cert is not None
        args: list[str | bytes] = ["-c", str(self.cert)]
        if self.key is not None:
            args += ["-j", str(self.key)]
        if self.ca is not None:
            args += ["-C", str(self.ca)]
        if not self.verify_peer:
            args.append("-n")
        return args


def _udp_ports_of(pid: int) -> set[int]:
    """UDP ports (IPv4 and IPv6 sockets) bound by sockets that process ``pid`` holds open, read from /proc
    (Linux)."""
    inodes: set[str] = set()
    with contextlib.suppress(FileNotFoundError, PermissionError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    lines: list[str] = []
    for table in ("udp", "udp6"):
        with contextlib.suppress(OSError):
            lines += Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
    ports: set[int] = set()
    for line in lines:
        fields = line.split()  # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
        if len(fields) > 9 and fields[9] in inodes:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _identity_line(hint: str, identity: str, key: bytes) -> bytes:
    """One ``hint,identity,key`` line of coap-server's ``-i`` file (parsed with fgets into 256 bytes)."""
    _check_psk(key, f"psk_identities[{identity!r}]")
    if not identity or any(c in identity for c in ",\n\0"):
        raise ValueError(f"PSK identity {identity!r} must be non-empty without ',', newline or NUL")
    if b"\n" in key:
        raise ValueError(f"psk_identities[{identity!r}] must not contain a newline")
    line = f"{hint},{identity},".encode() + key + b"\n"
    if len(line) > 255:
        raise ValueError(f"PSK identity line for {identity!r} is longer than libcoap's 255-byte limit")
    return line


def _masked(argv: Sequence[str | bytes]) -> str:
    """``argv`` as text for error messages, with the value after ``-k`` hidden."""
    shown = ["***" if i > 0 and argv[i - 1] == "-k" else os.fsdecode(arg) for i, arg in enumerate(argv)]
    return " ".join(shown)


class LibcoapServer(PeerProcess):
    """libcoap's example server (``coap-server-notls`` by default) on 127.0.0.1, with dynamic resources.

    Launched as ``coap-server-FLAVOUR -A 127.0.0.1 -p P -d 1000 [DTLS/loss options] [extra_args]``. Behaviour
    verified against libcoap 4.3.1 (Debian ``libcoap3-bin``):

    * ``-d N`` enables dynamic resources: a PUT **or** POST to an unknown path creates it and stores the
      payload and Content-Format; a later GET answers 2.05 with that payload and Content-Format.
      First PUT -> **2.01 Created**; later PUT -> **2.04 Changed** (payload replaced).
      First POST -> **2.01 Created** (with ``Location-Path``); later POST -> **2.04 Changed** (replaced, not
      appended). Uri-Query is not part of the resource identity (``/a?x=1`` reads ``/a``).
      DELETE -> 2.02 Deleted (also for paths that never existed); GET afterwards -> 4.04 Not Found.
      After N dynamic resources exist, creating another answers **4.06 Not Acceptable** until one is deleted.
      Without ``-d``, PUT to an unknown path answers 4.04.
    * Built-in resources exist: ``/`` (GET only; PUT/POST -> 4.05), ``/time``, ``/async``, ``/example_data``
      (PUT replaces it) and ``/.well-known/core``. Avoid those paths in tests.
    * ``-p P`` binds UDP **and TCP** port P (the TLS builds also bind P+1 for DTLS/TLS, but only when ``-k``
      or ``-c`` is given), so the chosen ports are checked free for both.

    DTLS (``flavour="openssl"`` or ``"gnutls"``; plain CoAP stays on :attr:`port`, DTLS is on
    :attr:`dtls_port` = P+1):

    * ``psk`` -> ``-k``, ``psk_hint`` -> ``-h`` (libcoap's default hint is ``"CoAP"``). Keys are raw bytes,
      at most 64 (libcoap silently truncates longer ones), no NUL.
    * ``psk_identities`` -> ``-i FILE`` with ``hint,identity,key`` lines. libcoap uses it only to *switch
      keys* per identity: an identity not in the file gets the default ``-k`` key (``-k`` is mandatory). So
      when ``psk`` is not given, the default key is a random secret nobody knows, which makes any unlisted
      identity fail its handshake. (The hint column is not enforced by 4.3.1: the hint seen in the
      callback is empty on both builds.)
    * ``cert``/``key``/``ca`` -> ``-c``/``-j``/``-C``; the client certificate is then required and checked
      against ``ca`` unless ``verify_peer=False`` (``-n``).
    * Failures: a wrong PSK or an unknown identity gets **no alert** from either build; the server drops the
      client's Finished (OpenSSL resends its own flight on a 1, 2, 4 s timer; GnuTLS sends a *warning*
      close_notify after ~5 s). A client certificate from an unknown CA gets an immediate fatal alert:
      unknown_ca from both builds. (The GnuTLS *client* sends no certificate when its issuer is not in the
      server's CA list; the OpenSSL server then answers handshake_failure, the GnuTLS one bad_certificate.)

    ``loss`` -> ``-l`` (e.g. ``"20%"``): the server randomly fails to *send* that share of its datagrams.

    :meth:`stop` then :meth:`start` (or :meth:`restart`) reuses the same ports; once started, the ports are
    kept for the object's lifetime. Readiness: the process holds UDP sockets on P (and P+1 with DTLS), read
    from ``/proc``, and, unless ``loss`` is set (a probe could be dropped), answers a plain GET of ``/``.

    ``coap-client`` facts this class relies on (``coap-client-notls -m get URI``):

    * Without ``-o``, a non-empty payload is printed to stdout **followed by an added "\\n"**; an empty
      payload prints nothing; a 4.04 prints nothing to stdout and ``4.04 Not Found`` to stderr. The exit
      status is 0 in all these cases, **and also when nothing answers** (only ``-B`` seconds pass, maybe with
      an ICMP warning on stderr) **or the DTLS handshake fails** (it logs "cannot send CoAP pdu").
    * ``-o FILE`` (or ``-o -``) writes the exact payload bytes with no added newline; FILE is not created
      for an empty payload or an error response.
    * ``-v 6`` logs every message as ``v:1 t:ACK c:2.05 i:... [ options ] :: payload`` on stdout (bytes may
      not be UTF-8), and fatal DTLS alerts it receives.

    Hence :meth:`request` runs ``-v 6 -o <tempfile>``: the response code is parsed from the log (no code ->
    no answer -> ``TimeoutError``, or :class:`DtlsHandshakeError` over DTLS) and the payload is read
    byte-exact from the file.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        flavour: Literal["notls", "openssl", "gnutls"] = "notls",
        psk: bytes | None = None,
        psk_hint: str | None = None,
        psk_identities: Mapping[str, bytes] | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        ca: Path | None = None,
        verify_peer: bool = True,
        loss: str | None = None,
        client_credentials: CoapsCredentials | None = None,
        binary: str | None = None,
        client_binary: str | None = None,
        max_dynamic_resources: int = 1000,
        extra_args: Sequence[str] = (),
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 10.0,
        every_address: bool = False,
        log_requests: bool = False,
    ) -> None:
        """``every_address``: listen on every address instead of 127.0.0.1 only, so that a multicast group
        joined with ``extra_args=["-g", group]`` reaches it, and ``localhost`` in either family does (only
        inside a network namespace of the test's own: tests/netns/). ``log_requests``: debug logging
        (``-v 7``, which shows every message, over DTLS after decryption), so that :meth:`received` can
        list what arrived; needs ``log_path``."""
        if log_requests and log_path is None:
            raise ValueError("log_requests needs a log_path to read the requests back from")
        binary = binary or f"coap-server-{flavour}"
        self._bind = [] if every_address else ["-A", LOCALHOST]
        super().__init__(binary, log_path)
        self._binary = binary
        self._client_binary = client_binary or f"coap-client-{flavour}"
        self._max_dynamic = max_dynamic_resources
        self._log_requests = log_requests
        self._extra_args = list(extra_args) + (["-v", "7"] if log_requests else [])
        self._startup_timeout = startup_timeout
        self._loss = loss
        self._client_credentials = client_credentials
        self._dtls_args, self._identity_file = self._build_dtls_args(
            flavour, psk, psk_hint, psk_identities, cert, key, ca, verify_peer
        )
        self._dtls = bool(self._dtls_args)
        self._fixed_port = port is not None
        # TLS-capable builds also listen on P+1 (DTLS/TLS).
        self._ports_needed = 1 if binary.endswith("notls") else 2
        self._port = port if port is not None else free_udp_tcp_ports(self._ports_needed)

    @staticmethod
    def _build_dtls_args(
        flavour: str,
        psk: bytes | None,
        psk_hint: str | None,
        psk_identities: Mapping[str, bytes] | None,
        cert: Path | None,
        key: Path | None,
        ca: Path | None,
        verify_peer: bool,
    ) -> tuple[list[str | bytes], bytes | None]:
        """Validate the DTLS options; return the server arguments and the ``-i`` file content (if any)."""
        uses_psk = psk is not None or psk_hint is not None or bool(psk_identities)
        if cert is None and (key is not None or ca is not None or not verify_peer):
            raise ValueError("key, ca and verify_peer=False only apply together with cert")
        if flavour == "notls" and (uses_psk or cert is not None):
            raise ValueError("DTLS options need flavour='openssl' or 'gnutls'")
        args: list[str | bytes] = []
        identity_file: bytes | None = None
        if uses_psk:
            if psk is None and not psk_identities:
                raise ValueError("psk_hint needs psk or psk_identities")
            if psk is not None:
                _check_psk(psk, "psk")
            hint = "CoAP" if psk_hint is None else psk_hint
            if any(c in hint for c in ",\n\0") or hint.startswith("#"):
                raise ValueError(f"psk_hint {hint!r} must have no ',', newline or NUL and not start with '#'")
            if psk_hint is not None:
                args += ["-h", psk_hint]
            # -i only switches keys for listed identities; everyone else gets -k. Without a psk, make that
            # default a secret nobody has, so unlisted identities are refused.
            args += ["-k", psk if psk is not None else secrets.token_hex(16).encode()]
            if psk_identities:
                identity_file = b"".join(_identity_line(hint, i, k) for i, k in psk_identities.items())
        if cert is not None:
            args += ["-c", str(cert)]
            if key is not None:
                args += ["-j", str(key)]
            if ca is not None:
                args += ["-C", str(ca)]
            if not verify_peer:
                args.append("-n")
        return args, identity_file

    @property
    def port(self) -> int:
        return self._port

    @property
    def uri(self) -> str:
        """``"coap://127.0.0.1:P"`` (no trailing slash)."""
        return f"coap://{LOCALHOST}:{self._port}"

    @property
    def dtls_port(self) -> int:
        """P+1, where the server listens for DTLS (only when PSK or certificate options were given)."""
        if not self._dtls:
            raise PeerError(f"{self._binary} was configured without PSK or certificate: no DTLS port")
        return self._port + 1

    @property
    def coaps_uri(self) -> str:
        """``"coaps://127.0.0.1:P+1"`` (no trailing slash)."""
        return f"coaps://{LOCALHOST}:{self.dtls_port}"

    def start(self) -> Self:
        """Launch the server and return once it is ready (see the class docstring). Reuses earlier ports."""
        if self.running:
            return self
        for tool in (self._binary, self._client_binary):
            if shutil.which(tool) is None:
                raise PeerError(f"{tool} not found on PATH (Debian/Ubuntu: apt-get install libcoap3-bin)")
        if self._fixed_port and not all(
            port_is_free(p, kind)
            for p in range(self._port, self._port + self._ports_needed)
            for kind in ("udp", "tcp")
        ):
            # Must be checked up front: libcoap sets SO_REUSEADDR, so a second server binds the same UDP port
            # without error and the readiness GET would be answered by the *other* server.
            raise PeerError(f"port {self._port} on {LOCALHOST} is already in use (UDP or TCP)")
        # The -i file is read while the options are parsed, i.e. before the ports are bound: it only has to
        # live until the server is ready.
        with tempfile.TemporaryDirectory(prefix="coap-server-") as tmp:
            option_args = list(self._dtls_args)
            if self._identity_file is not None:
                identities = Path(tmp) / "identities"
                identities.write_bytes(self._identity_file)
                option_args += ["-i", str(identities)]
            if self._loss is not None:
                option_args += ["-l", self._loss]
            self._launch(option_args)
        self._fixed_port = True  # from now on stop()/start() keep these ports
        return self

    def restart(self, *, crash: bool = False) -> Self:
        """Stop the server (forgetting every resource it holds) and start it again on the same ports.

        ``crash``: SIGKILL instead of SIGTERM, so clients are not told (their DTLS sessions just go dead).
        """
        self.stop(kill=crash)
        return self.start()

    def _launch(self, option_args: Sequence[str | bytes]) -> None:
        attempts = 1 if self._fixed_port else 3
        for attempt in range(1, attempts + 1):
            argv = [self._binary, *self._bind, "-p", str(self._port), "-d", str(self._max_dynamic)]
            self._spawn([*argv, *option_args, *self._extra_args])
            try:
                wait_until(
                    self._ready,
                    self._startup_timeout,
                    interval=0.05,
                    what=f"{self._binary} on {self.uri} to be ready",
                )
                return
            except PeerError:
                self.stop()
                if attempt == attempts:
                    raise
                self._port = free_udp_tcp_ports(self._ports_needed)
            except BaseException:
                self.stop()
                raise

    def _ready(self) -> bool:
        self._check_alive()
        assert self._proc is not None
        wanted = {self._port, self._port + 1} if self._dtls else {self._port}
        if not wanted <= _udp_ports_of(self._proc.pid):
            return False
        return self._loss is not None or self._answers_root()

    def _answers_root(self) -> bool:
        self._check_alive()
        try:
            result = self.request("get", "/", timeout=1)
        except TimeoutError:
            return False
        return result.code == "2.05"

    # -- client side (runs coap-client; blocking: use asyncio.to_thread from async code) -------

    def _credentials(self, dtls: bool | CoapsCredentials) -> CoapsCredentials | None:
        if dtls is False:
            return None
        if dtls is True:
            if self._client_credentials is None:
                raise ValueError("dtls=True needs client_credentials (constructor) or a CoapsCredentials")
            return self._client_credentials
        return dtls

    def request(
        self,
        method: Literal["get", "put", "post", "delete"],
        path: str,
        payload: bytes | None = None,
        *,
        content_format: int | None = None,
        timeout: float = 5.0,
        confirmable: bool = True,
        dtls: bool | CoapsCredentials = False,
    ) -> CoapClientResult:
        """Send one request with ``coap-client``; raise ``TimeoutError`` if no response arrives in time.

        ``confirmable=False`` sends NON (no retransmission: a lost datagram means no answer). ``dtls=True``
        talks ``coaps://`` with the constructor's ``client_credentials``; a :class:`CoapsCredentials` uses
        those instead. Over DTLS, a session that could not be set up raises :class:`DtlsHandshakeError`.
        """
        credentials = self._credentials(dtls)
        base = self.coaps_uri if credentials is not None else self.uri
        url = f"{base}/{path.lstrip('/')}"
        env: dict[str, str] | None = None
        with tempfile.TemporaryDirectory(prefix="coap-client-") as tmp:
            out = Path(tmp) / "payload"
            argv: list[str | bytes] = [self._client_binary]
            if credentials is not None:
                argv = [f"coap-client-{credentials.flavour}", *credentials.client_args()]
                if credentials.ccm8_only:
                    priorities = Path(tmp) / "gnutls-priorities"
                    priorities.write_text(_GNUTLS_CCM8_ONLY)
                    env = {**os.environ, "GNUTLS_SYSTEM_PRIORITY_FILE": str(priorities)}
            argv += ["-v", "6", "-m", method, "-B", str(max(1, round(timeout))), "-o", str(out)]
            if payload is not None:
                argv += ["-f", "-"]  # payload from stdin: byte-exact, any size (block-wise is automatic)
            if content_format is not None:
                argv += ["-t", str(content_format)]
            if not confirmable:
                argv.append("-N")
            argv.append(url)
            proc = subprocess.run(
                argv,
                input=payload if payload is not None else b"",
                capture_output=True,
                timeout=timeout + 10,
                check=False,
                env=env,
            )
            log = (proc.stdout + b"\n" + proc.stderr).decode("utf-8", errors="replace")
            codes = _RESPONSE_LINE.findall(log)
            if proc.returncode != 0:
                raise PeerError(f"{_masked(argv)} exited with {proc.returncode}: {proc.stderr!r}")
            if not codes:
                if credentials is not None and _SESSION_FAILED in log:
                    raise self._handshake_error(url, log, timeout)
                raise TimeoutError(f"no CoAP response from {url} within {timeout}s")
            body = out.read_bytes() if out.exists() else b""
        return CoapClientResult(code=codes[-1], payload=body)

    @staticmethod
    def _handshake_error(url: str, log: str, timeout: float) -> DtlsHandshakeError:
        match = _DTLS_ALERT.search(log)
        if match is None:
            return DtlsHandshakeError(
                f"DTLS handshake with {url} did not complete within {timeout}s and no alert came (a wrong PSK"
                " or an unknown identity looks exactly like this, as does a server that is down or paused)",
                alert=None,
            )
        alert = (match["openssl"] or match["gnutls"]).strip()
        return DtlsHandshakeError(f"DTLS handshake with {url} failed: fatal alert {alert!r}", alert=alert)

    def get(self, path: str, *, timeout: float = 5.0, dtls: bool | CoapsCredentials = False) -> bytes | None:
        """Payload currently held at ``path`` (``b""`` if empty), or None if the server answers 4.04."""
        result = self.request("get", path, timeout=timeout, dtls=dtls)
        if result.code == "4.04":
            return None
        if result.code != "2.05":
            raise PeerError(f"GET {path} answered {result.code}")
        return result.payload

    def put(
        self,
        path: str,
        payload: bytes,
        *,
        content_format: int | None = None,
        timeout: float = 5.0,
        dtls: bool | CoapsCredentials = False,
    ) -> str:
        """PUT ``payload`` at ``path`` (for test setup); returns the code, "2.01" (created) or "2.04"."""
        result = self.request("put", path, payload, content_format=content_format, timeout=timeout, dtls=dtls)
        if not result.success:
            raise PeerError(f"PUT {path} answered {result.code}")
        return result.code

    def received(self) -> list[ReceivedRequest]:
        """Every request the server logged, over every start and restart, in arrival order (a retransmission
        the server answered from its cache is listed again). Needs ``log_requests=True``."""
        if not self._log_requests or self._log_path is None:
            raise PeerError("received() needs a server started with log_requests=True")
        found = []
        for m in _REQUEST_LINE.finditer(self._log_path.read_bytes()):
            path = b"/".join(_URI_PATH.findall(m[4])).decode(errors="replace")
            found.append(ReceivedRequest(m[1].decode(), m[2].decode(), int(m[3], 16), path, m[5] or b""))
        return found

    def delete(self, path: str, *, timeout: float = 5.0, dtls: bool | CoapsCredentials = False) -> str:
        """DELETE ``path``; returns the code (libcoap answers 2.02 even for unknown paths)."""
        result = self.request("delete", path, timeout=timeout, dtls=dtls)
        if not result.success:
            raise PeerError(f"DELETE {path} answered {result.code}")
        return result.code
