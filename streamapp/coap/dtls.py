"""``coaps://`` for the sink's exchange layer, on python-mbedtls (Mbed TLS 2.28, DTLS 1.2).

aiocoap's own DTLS transport speaks PSK only (tinydtls) and cannot do CBC_SHA256 or certificates, so this
module does DTLS itself. A :class:`DtlsLink` is the link of one ``coaps://`` endpoint of ``exchange.py``:
the endpoint keeps doing CoAP (Message IDs, retransmission, matching, block-wise) and hands the link encoded
messages; the link encrypts them in an Mbed TLS session (:class:`_Session`) held in memory buffers, moves
the datagrams itself on an asyncio UDP endpoint and hands decrypted datagrams back to the endpoint. (Until
the exchange layer it was an aiocoap *message interface* under aiocoap's message manager; the session code
is the same.)

Mbed TLS facts this code is built around (each one bit somebody):

- Its output buffer merges several DTLS records; they are split back into one datagram per record.
- Input is fed one datagram at a time, and application data drained with ``readinto`` until WantRead.
- After any exception the output buffer is flushed: alerts and retransmitted flights wait there.
- Its handshake retransmission timer is invisible to asyncio: while handshaking, the handshake is stepped
  every :data:`TICK_S` so that an expired timer resends the last flight.
- A wrong PSK looks like silence (the server's alert is encrypted with keys we do not share), so the
  handshake has its own deadline and the error says what silence after our Finished usually means.
- ``validate_certificates=False`` means "optional" verification in Mbed TLS: never used.
- Mbed TLS 2.28 does not match IP addresses against certificate SANs: the hostname is checked when the URI
  names a host, not when it is an IP literal (the chain is verified either way).
- On a lossy link a flight can be lost again and again, and Mbed TLS' doubling timer (1, 2, 4, ... s)
  leaves few resends within a deadline. So one handshake *attempt* gives up when its timer reaches
  :data:`ATTEMPT_TIMER_MAX_S` (after ~7 s without progress on one flight), and a fresh attempt, on a new
  socket so the server sees a new peer, starts while the deadline allows. Under 20 % loss 3 to 6 X.509
  handshakes in 40-60 needed more than one attempt; four attempts in 30 s all failing is then rare (~1e-4).
- A server restart leaves our session dead without a word: after :data:`STALE_SENDS` datagrams with
  nothing received, the session is dropped and a new handshake carries the pending requests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any, cast

from aiocoap.numbers import COAPS_PORT
from aiocoap.util import hostportjoin
from mbedtls import tls
from mbedtls.exceptions import TLSError

from streamapp.coap import exchange
from streamapp.coap.credentials import DtlsCredentials
from streamapp.coap.dtls_errors import SSL_TIMEOUT, DtlsError, explain_handshake_failure, explain_silence
from streamapp.coap.exchange import ClientEndpoint, Ledger
from streamapp.config.dtls_suites import CERTIFICATE_SUITES, CIPHER_SUITES, PSK_SUITES
from streamapp.config.keys import default_seconds
from streamapp.logs import get_logger
from streamapp.patches.mbedtls import handshake_step

log = get_logger(__name__)

#: How often a handshake in progress is stepped (drives Mbed TLS' retransmission timer).
TICK_S = 0.1
#: Mbed TLS ends a handshake attempt when its retransmission timer (1, 2, 4 s) would exceed this.
ATTEMPT_TIMER_MAX_S = 4.0
#: Application datagrams sent without receiving anything before the session is presumed dead.
STALE_SENDS = 2
#: DTLS record header: type(1) version(2) epoch(2) sequence(6) length(2).
RECORD_HEADER = 13
_BUFFER = 16 * 1024


@dataclass(frozen=True)
class DtlsOptions:
    """Everything a session needs besides the server's address."""

    credentials: DtlsCredentials
    suites: tuple[str, ...] = ()  # IANA names; empty: every suite of the credentials' mode
    handshake_timeout_s: float = default_seconds("connect.coap.handshake.timeout")
    local_bind: tuple[str, int] | None = None

    @property
    def default_suites(self) -> tuple[str, ...]:
        return PSK_SUITES if self.credentials.mode == "psk" else CERTIFICATE_SUITES

    @property
    def description(self) -> str:
        """What the credentials are and which suites are offered; never a secret."""
        return f"{self.credentials.description}; suites {', '.join(self.suites or self.default_suites)}"

    @property
    def mbedtls_ciphers(self) -> tuple[str, ...]:
        return tuple(CIPHER_SUITES[s] for s in (self.suites or self.default_suites))

    def configuration(self) -> tls.DTLSConfiguration:
        creds = self.credentials
        return tls.DTLSConfiguration(
            validate_certificates=True,  # never False: that is "optional" verification in Mbed TLS
            certificate_chain=creds.certificate_chain,
            trust_store=creds.trust_store,
            ciphers=self.mbedtls_ciphers,
            lowest_supported_version=tls.DTLSVersion.DTLSv1_2,
            highest_supported_version=tls.DTLSVersion.DTLSv1_2,
            handshake_timeout_min=1.0,
            handshake_timeout_max=ATTEMPT_TIMER_MAX_S,
            pre_shared_key=creds.psk,
        )


def split_records(data: bytes) -> list[bytes]:
    """Mbed TLS' output as one datagram per DTLS record (a truncated tail is kept whole)."""
    records, start = [], 0
    while start < len(data):
        if len(data) - start < RECORD_HEADER:
            records.append(data[start:])
            break
        length = int.from_bytes(data[start + 11 : start + 13], "big")
        end = min(len(data), start + RECORD_HEADER + length)
        records.append(data[start:end])
        start = end
    return records


# python-mbedtls' stub declares HandshakeStep's members as ``NAME: int``, which type checkers read as plain
# int attributes, not members; these two are typed here as the members they are.
_HELLO_REQUEST = cast(tls.HandshakeStep, tls.HandshakeStep.HELLO_REQUEST)
_HANDSHAKE_OVER = cast(tls.HandshakeStep, tls.HandshakeStep.HANDSHAKE_OVER)


@dataclass
class HandshakeProgress:
    """How far the attempts of one handshake got, together: what a failure's explanation is built from."""

    steps: set[tls.HandshakeStep] = field(default_factory=lambda: {_HELLO_REQUEST})
    received_any: bool = False


class _AttemptExpired(DtlsError):
    """Mbed TLS gave up on this attempt (one flight unanswered through its timer); another may follow."""


class _Session(asyncio.DatagramProtocol):
    """One Mbed TLS session over one connected UDP socket: handshake, then records both ways."""

    def __init__(
        self, remote: DtlsLink, configuration: tls.DTLSConfiguration, progress: HandshakeProgress
    ) -> None:
        self.remote = remote
        self.buffer = tls.ClientContext(configuration).wrap_buffers(remote.server_hostname)
        self.transport: asyncio.DatagramTransport | None = None
        self.established: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent_since_received = 0
        self.progress = progress
        self.closed = False

    # -- asyncio protocol -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio hands a datagram protocol a DatagramTransport; BaseProtocol types it BaseTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.closed:
            return
        self.sent_since_received = 0
        self.progress.received_any = True
        self.remote.observe_incoming(data)
        if not self.established.done() and _encrypted_alert(data):
            # Our keys and the server's differ (a wrong PSK): its alert cannot be read, only recognised.
            self.fail(explain_silence(self.remote, self.progress.steps, True, 0.0, alert=True))
            return
        try:
            self.buffer.receive_from_network(data)
        except TLSError as exc:  # a datagram Mbed TLS cannot take: drop it, as DTLS does
            log.debug("dtls.datagram_dropped", server=self.remote.hostinfo, why=str(exc))
            return
        if not self.established.done():
            self.step_handshake()
        else:
            self._read_application_data()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: nobody is listening (yet); the handshake deadline decides.
        log.debug("dtls.network_error", server=self.remote.hostinfo, why=str(exc))

    # -- handshake ------------------------------------------------------------------------------------------

    async def handshake(self, deadline: float, timeout_s: float) -> None:
        """Step the handshake until it is over or ``deadline`` (monotonic) passes; raises DtlsError, or
        _AttemptExpired when Mbed TLS gives up on this attempt first."""
        self.step_handshake()
        while not self.established.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                progress = self.progress
                self.fail(explain_silence(self.remote, progress.steps, progress.received_any, timeout_s))
                break
            try:
                await asyncio.wait_for(asyncio.shield(self.established), min(TICK_S, remaining))
            except TimeoutError:
                self.step_handshake()  # an expired Mbed TLS timer resends the last flight here
        self.established.result()

    def step_handshake(self) -> None:
        if self.established.done():
            return
        try:
            while handshake_step(self.buffer) is not _HANDSHAKE_OVER:
                try:
                    self.buffer.do_handshake()
                finally:
                    self.progress.steps.add(handshake_step(self.buffer))
        except (tls.WantReadError, tls.WantWriteError):
            pass
        except TLSError as exc:
            self.flush()
            if getattr(exc, "err", None) == SSL_TIMEOUT:
                self.fail(_AttemptExpired(f"DTLS handshake attempt with {self.remote.hostinfo} expired"))
            else:
                self.fail(explain_handshake_failure(exc, self.remote, self.progress.steps))
            return
        self.flush()
        if handshake_step(self.buffer) is _HANDSHAKE_OVER:
            self.established.set_result(None)
            self._read_application_data()

    def fail(self, exc: DtlsError) -> None:
        if not self.established.done():
            self.established.set_exception(exc)
            self.established.exception()  # retrieved: the link reports it to the endpoint
        self.close()

    # -- records ------------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        try:
            self.buffer.write(data)
        finally:
            self.flush()
        self.sent_since_received += 1

    def flush(self) -> None:
        if self.transport is None or self.closed:
            return
        data = self.buffer.peek_outgoing(_BUFFER)
        while data:
            self.buffer.consume_outgoing(len(data))
            for record in split_records(data):
                self.transport.sendto(record)
            data = self.buffer.peek_outgoing(_BUFFER)

    def _read_application_data(self) -> None:
        chunk = bytearray(_BUFFER)
        while True:
            try:
                # python-mbedtls' stub types the buffer as bytes; it is written into, so a bytearray.
                size = self.buffer.readinto(chunk, len(chunk))  # type: ignore[arg-type]
            except tls.WantReadError:
                return
            except tls.RaggedEOF:
                self.remote.session_lost(
                    self, DtlsError(f"the server {self.remote.hostinfo} closed the session")
                )
                return
            except TLSError as exc:
                self.flush()
                self.remote.session_lost(
                    self, DtlsError(f"DTLS session with {self.remote.hostinfo} broke: {exc}")
                )
                return
            if size == 0:
                return
            self.remote.deliver(bytes(chunk[:size]))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class DtlsLink:
    """One endpoint's ``coaps://`` link to one server: the DTLS session, renewed on a new socket when it
    dies, and the datagrams waiting for a handshake. Decrypted datagrams go to the endpoint
    (``ClientEndpoint.datagram_received``), a failed handshake to its exchange in flight (``link_failed``)."""

    def __init__(
        self,
        endpoint: ClientEndpoint[Ledger],
        options: DtlsOptions,
        configuration: tls.DTLSConfiguration,
        host: str,
        port: int,
    ) -> None:
        self._endpoint = endpoint
        self.options = options
        self._configuration = configuration
        self.host = host
        self.port = port
        self.server_hostname = None if _is_ip(host) else host
        self._address: tuple[Any, ...] | None = None
        self._session: _Session | None = None
        self._starting: asyncio.Task[None] | None = None
        self._queue: list[bytes] = []
        self.server_certificates: list[bytes] = []  # DER, as seen in the last handshake (for error messages)
        self._certificate_parser = _CertificateCapture(self.server_certificates)
        self._closed = False

    @property
    def hostinfo(self) -> str:
        hostinfo: str = hostportjoin(self.host, None if self.port == COAPS_PORT else self.port)  # untyped
        return hostinfo

    def __repr__(self) -> str:
        return f"<DtlsLink coaps://{self.hostinfo}>"

    # -- sending --------------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self._closed:
            return
        session = self._session
        if session is not None and session.established.done() and not session.closed:
            if session.sent_since_received >= STALE_SENDS:
                log.warning(
                    "dtls.session_renewed",
                    server=self.hostinfo,
                    unanswered_datagrams=STALE_SENDS,
                    why="no answer for that many datagrams",
                )
                session.close()
            else:
                try:
                    session.write(data)
                    return
                except TLSError as exc:
                    self.session_lost(session, DtlsError(f"DTLS session with {self.hostinfo} broke: {exc}"))
        if data not in self._queue:  # a retransmission of a datagram still waiting for the handshake
            self._queue.append(data)
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(
                self._start(), name=f"DTLS {self.hostinfo}"
            )

    async def _start(self) -> None:
        try:
            session = await self._open()
        except DtlsError as exc:
            self._queue.clear()
            self._endpoint.link_failed(exc)
            return
        finally:
            self._starting = None
        queued, self._queue = self._queue, []
        for data in queued:
            session.write(data)

    async def _open(self) -> _Session:
        """A new established session, through as many handshake attempts as the deadline allows."""
        if self._session is not None:
            self._session.close()
        timeout_s = self.options.handshake_timeout_s
        started = time.monotonic()
        deadline = started + timeout_s
        progress = HandshakeProgress()
        attempt = 1
        while True:
            session = await self._attempt(progress)
            try:
                await session.handshake(deadline, timeout_s)
                break
            except _AttemptExpired:
                session.close()
                if time.monotonic() >= deadline:
                    raise explain_silence(self, progress.steps, progress.received_any, timeout_s) from None
                attempt += 1
                log.info(
                    "dtls.handshake_retried",
                    server=self.hostinfo,
                    attempt=attempt,
                    why="a flight went unanswered",
                )
        log.info(
            "dtls.session_established",
            server=self.hostinfo,
            ms=round((time.monotonic() - started) * 1000),
            cipher=str(session.buffer.cipher()),
            attempt=attempt,
        )
        return session

    async def _attempt(self, progress: HandshakeProgress) -> _Session:
        """A session on a new UDP socket, ready to handshake (a new source port: a new peer to the server)."""
        self.server_certificates.clear()
        self._certificate_parser.reset()
        loop = asyncio.get_running_loop()
        try:
            if self._address is None:
                # Resolved once (aiocoap resolving per request cost ~25 % of its CPU), again after a failure.
                self._address = await exchange.resolve(self.host, self.port)
            session = _Session(self, self._configuration, progress)
            await loop.create_datagram_endpoint(
                lambda: session, remote_addr=self._address, local_addr=self.options.local_bind
            )
        except OSError as exc:
            raise DtlsError(f"cannot reach {self.hostinfo} over UDP: {exc}") from exc
        if self._closed:
            session.close()
            raise DtlsError(f"the link to {self.hostinfo} was closed")
        self._session = session
        return session

    def forget_address(self) -> None:
        """Resolve the server's address again for the next handshake (a request went unanswered)."""
        self._address = None

    # -- receiving ------------------------------------------------------------------------------------------

    def observe_incoming(self, data: bytes) -> None:
        if not self._certificate_parser.done:
            self._certificate_parser.feed(data)

    def deliver(self, data: bytes) -> None:
        self._endpoint.datagram_received(data)

    def session_lost(self, session: _Session, exc: DtlsError) -> None:
        session.close()
        if self._session is session:
            self._session = None
        log.warning("dtls.session_lost", server=self.hostinfo, why=str(exc))

    def close(self) -> None:
        self._closed = True
        self._queue.clear()
        if self._starting is not None:
            self._starting.cancel()
        if self._session is not None:
            self._session.close()
            self._session = None


def _encrypted_alert(datagram: bytes) -> bool:
    """Whether the datagram holds an alert record of a later epoch (content type 21 stays in the clear)."""
    return any(
        len(record) >= RECORD_HEADER and record[0] == 21 and record[3:5] != b"\x00\x00"
        for record in split_records(datagram)
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass
class _CertificateCapture:
    """Collects the server's certificate chain from the plaintext handshake (epoch 0), so that a failed
    verification can say *why* (expired, unknown CA, other host) instead of Mbed TLS' one flag."""

    out: list[bytes]
    fragments: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None
    done: bool = False

    def reset(self) -> None:
        self.fragments.clear()
        self.total = None
        self.done = False

    def feed(self, datagram: bytes) -> None:
        for record in split_records(datagram):
            # content type 22 = handshake, epoch 0 = not yet encrypted
            if len(record) < RECORD_HEADER + 12 or record[0] != 22 or record[3:5] != b"\x00\x00":
                continue
            body = record[RECORD_HEADER:]
            if body[0] != 11:  # Certificate
                continue
            self.total = int.from_bytes(body[1:4], "big")
            offset = int.from_bytes(body[6:9], "big")
            length = int.from_bytes(body[9:12], "big")
            self.fragments[offset] = body[12 : 12 + length]
            self._assemble()

    def _assemble(self) -> None:
        assert self.total is not None
        message, position = b"", 0
        while position < self.total:
            piece = self.fragments.get(position)
            if not piece:
                return
            message += piece
            position += len(piece)
        chain_length = int.from_bytes(message[0:3], "big")
        position = 3
        while position < 3 + chain_length:
            size = int.from_bytes(message[position : position + 3], "big")
            self.out.append(message[position + 3 : position + 3 + size])
            position += 3 + size
        self.done = True
