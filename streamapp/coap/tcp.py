"""CoAP over TCP and TLS (RFC 8323): ``coap+tcp://`` and ``coaps+tcp://`` servers, one connection each,
carrying the sink's requests side by side.

Why a layer of its own rather than ``exchange.py``'s endpoints: over a reliable transport most of RFC 7252's
message layer is gone (no Message IDs, no CON/NON/ACK/RST, no retransmission, no de-duplication: TCP does
all that), and what is left is different: a connection that must be opened, greeted (CSM), kept alive
(Ping/Pong), re-opened when it drops, and that carries many requests at once, matched by token only. Why
not aiocoap's TCP client: the same reasons as for UDP (docs/delivery-engine.md, "Which library carries a
request and why"), and its client neither re-opens a dropped connection nor re-sends what was on it. The
message format is ``tcp_wire.py``'s, the options of a request come from ``wire.OptionCache`` as over UDP,
and TLS is Python's ``ssl`` (``tcp_tls.py``).

The rules kept (docs/tcp.md has them with their proofs):

- **One connection per server** (:class:`TcpClient`), opened on the first request and reused for every
  request after it; at most ``window`` (``connect.coap.max.inflight``) requests outstanding on it, the rest
  wait in order. (NSTART is a UDP rule; the window keeps its meaning per connection.)
- **CSM** (§5.3): ours (7.01, with our Max-Message-Size) is the first message we send; the peer's must be
  the first it sends, and a connection is used for requests only once it came (an initiator MAY send before,
  but the peer's CSM may announce a Max-Message-Size below the 1152-byte base value, so waiting one round
  trip is the only way never to exceed it). No CSM within the connect timeout (``connect.coap.handshake
  .timeout``), or a first message that is not one: the connection is aborted. A later CSM updates the
  settings. A critical CSM option we do not know aborts with Bad-CSM-Option (§5.3, §5.6.1).
- **Max-Message-Size** (§5.3.1): no message of ours is larger than the peer's (1152 until its CSM says
  otherwise); a body that does not fit goes Block1 (RFC 7959 over RFC 8323 §6) in the largest block size
  that fits (at most 1024 bytes: BERT is not used). A message from the peer larger than ours aborts.
- **Matching by token** (§3.3): responses come in any order; each message of ours has a token unique on its
  connection. A response matching nothing (late, or to an abandoned request) is the rate-limited WARNING
  ``coap.unmatched_response``.
- **Ping/Pong** (§5.4): a connection that received nothing for :data:`PING_IDLE_S` gets a Ping (7.02); no
  Pong with its token within :data:`PONG_TIMEOUT_S` and the connection is taken for dead and closed. A
  peer's Ping is answered with a Pong carrying its token (and Custody if the Ping asked for it: every
  response received before it has been processed). Empty messages (0.00) are ignored (§3.4).
- **Release** (§5.5): no new request goes on a released connection; its outstanding requests may still be
  answered there (for :data:`RELEASE_DRAIN_S` at most; what is unanswered then is sent again elsewhere),
  then we close it; new requests go on a new connection, not before the Hold-Off the Release gave.
  (Alternative-Address is not followed: the server is the configured one.)
- **Abort** (§5.6): logged with its diagnostic, and the connection is closed.
- **A dropped connection** (closed, reset, aborted, dead by Ping) is re-opened with a doubling backoff
  (:data:`BACKOFF_FIRST_S` to :data:`BACKOFF_MAX_S`) while requests are waiting; the requests that had no
  answer on it are sent again on the new one, from their first block, with new tokens. A request is never
  dropped for a lost connection: it ends with an answer, or at its deadline (the request timeout), so a
  record may reach the server twice (as with a UDP retransmission whose ACK was lost), never zero times.
- **Deadline**: every request has one (``RequestOptions.response_timeout_s``), over connecting, every block
  and any reconnect; past it the request fails (:class:`~streamapp.coap.exchange.ResponseTimeout`, or
  :class:`NoConnection` with the last connection error when it was never sent). A host that does not
  resolve and a TLS failure (certificate not trusted, name mismatch, handshake refused) fail the waiting
  requests at once: backing off would not change them.
- Requests from the server (a client serves nothing) get 4.04; other codes are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import cast

from streamapp.coap import tcp_wire, wire
from streamapp.coap.exchange import (
    UNMATCHED,
    BlockwiseError,
    EndpointClosed,
    ExchangeError,
    Response,
    ResponseTimeout,
    code_text,
)
from streamapp.coap.tcp_tls import TlsOptions
from streamapp.coap.wire import CONTINUE, REQUEST_ENTITY_TOO_LARGE
from streamapp.logs import get_logger

log = get_logger(__name__)

#: The largest message we take (announced in our CSM): a response's payload goes to a reply record, and
#: nothing a sink is answered needs more.
OUR_MAX_MESSAGE_SIZE = 1 << 20
#: A connection that received nothing for this long gets a Ping.
PING_IDLE_S = 30.0
#: A Ping not answered by its Pong within this long: the connection is dead.
PONG_TIMEOUT_S = 10.0
#: How long a released connection (§5.5) may take to answer what was outstanding on it; what is still
#: unanswered then is sent again on a new connection (a server that released and then stopped answering
#: must not hold a request until its deadline).
RELEASE_DRAIN_S = 10.0
#: The first wait before opening a dropped (or refused) connection again; it doubles up to the maximum.
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
#: The largest Block1 size exponent: 1024 bytes (7 would be BERT).
MAX_SZX = wire.DEFAULT_SZX
#: 4.04 Not Found, the answer to a request the server sends us.
NOT_FOUND = 0x84
#: Bytes a block message may take besides its chunk: the largest header, a token, the Block1 (5) and Size1 (6)
#: options and the payload marker; the request's own options come on top.
_BLOCK_OVERHEAD = tcp_wire.MAX_HEADER + 8 + 5 + 6 + 1

_random = random.Random()


class NoConnection(ExchangeError):
    """The request could not be sent: no connection to the server came up before its deadline, or one
    cannot come up (the host does not resolve, TLS refused)."""


class ConnectionAborted(ExchangeError):
    """Why a connection was closed by us (for the log line): no CSM, a format error, no Pong."""


# -- one request ---------------------------------------------------------------------------------------------


class TcpExchange:
    """One request, from its submission to its final answer: every block of a block-wise body, on whichever
    connection carries it, and the deadline of the whole."""

    __slots__ = (
        "_block",
        "_szx",
        "_timer",
        "client",
        "code",
        "connection",
        "last_option",
        "on_done",
        "options",
        "payload",
        "sent",
        "timeout_s",
        "token",
    )

    def __init__(
        self,
        code: int,
        options: bytes,
        last_option: int,
        payload: bytes,
        timeout_s: float,
        on_done: Callable[[Response | None, BaseException | None], None],
    ) -> None:
        self.code = code
        self.options = options
        self.last_option = last_option
        self.payload = payload
        self.timeout_s = timeout_s
        self.on_done = on_done
        self.client: TcpClient | None = None
        #: The connection it is outstanding on, and the token of its message there.
        self.connection: TcpConnection | None = None
        self.token = b""
        #: Whether any message of it went on a connection (for the error at its deadline).
        self.sent = False
        self._timer: asyncio.TimerHandle | None = None
        #: Block-wise: (block number, more, szx) of the block in flight; None for a one-message body.
        self._block: tuple[int, bool, int] | None = None
        self._szx = MAX_SZX

    def begin(self, client: TcpClient) -> None:
        self.client = client
        self._timer = client.loop.call_later(self.timeout_s, self._on_deadline)

    def restart(self) -> None:
        """Its connection dropped unanswered: it starts again, from the first block, on the next one."""
        self.connection = None
        self.token = b""
        self._block = None
        self._szx = MAX_SZX

    def first_message(self, token: bytes, max_size: int) -> bytes | None:
        """Its first message on a connection whose peer takes at most ``max_size`` bytes: the whole body
        when it fits, else block 0 of the largest block size that does (None, and failed, when none does)."""
        payload = self.payload
        if tcp_wire.message_size(len(token), len(self.options), len(payload)) <= max_size:
            self._block = None
            return tcp_wire.encode(self.code, token, self.options, payload)
        room = max_size - _BLOCK_OVERHEAD - len(self.options)
        szx = MAX_SZX
        while szx >= 0 and 16 << szx > room:
            szx -= 1
        if szx < 0:
            self.fail(
                BlockwiseError(
                    f"the server's Max-Message-Size of {max_size} bytes leaves no room for the request's "
                    f"{len(self.options)} bytes of options and a 16-byte block"
                )
            )
            return None
        self._szx = szx
        return self.block_message(token, 0)

    def block_message(self, token: bytes, number: int) -> bytes | None:
        """Block ``number`` at the current block size (RFC 7959 §2.5); Size1 on the first."""
        size = 16 << self._szx
        start = number * size
        payload = self.payload
        if start >= len(payload):
            self.fail(BlockwiseError(f"no block {number} in {len(payload)} bytes at the server's block size"))
            return None
        more = start + size < len(payload)
        self._block = (number, more, self._szx)
        options = self.options + wire.block_options(
            self.last_option, wire.block_value(number, more, self._szx), len(payload) if number == 0 else None
        )
        return tcp_wire.encode(self.code, token, options, payload[start : start + size])

    def answered(self, message: tcp_wire.Message) -> None:
        """A response with its token: the final answer, or (block-wise) the next block to send."""
        code = message.code
        content_format = message.uint(wire.CONTENT_FORMAT)
        block1 = message.uint(wire.BLOCK1)
        block = self._block
        if block is None:
            if code == REQUEST_ENTITY_TOO_LARGE and self._smaller_block(block1, len(self.payload)):
                self._next_block(0)  # RFC 7959 §2.9.3: a hint to send block-wise at that size
                return
            self.finish(Response(code, message.payload, content_format))
            return
        number, more, szx = block
        if code >= 128:  # 4.xx, 5.xx
            if code == REQUEST_ENTITY_TOO_LARGE and self._smaller_block(block1, 16 << szx):
                self._next_block(0)  # the body again, from the start, in the smaller blocks
                return
            self.finish(Response(code, message.payload, content_format))
            return
        if block1 is None:
            if more:
                log.warning(
                    "coap.block1_ignored",
                    server=self.client.remote if self.client else "",
                    block=number,
                    code=code_text(code),
                    why="the server answered a block of the body without Block1: taken as the final answer",
                )
            self.finish(Response(code, message.payload, content_format))
            return
        if block1 >> 4 != number:
            self.fail(BlockwiseError(f"the server answered block {block1 >> 4} to block {number}"))
            return
        if not more:
            if block1 & 0x08 or code == CONTINUE:
                self.fail(BlockwiseError("the server asked for more data at the end of the body"))
                return
            self.finish(Response(code, message.payload, content_format))
            return
        cursor = number + 1
        server_szx = block1 & 0x07
        while server_szx < self._szx:  # a smaller size asked for: the same byte offset in smaller blocks
            cursor *= 2
            self._szx -= 1
        self._next_block(cursor)

    def _next_block(self, number: int) -> None:
        connection = self.connection
        assert connection is not None
        connection.send_block(self, number)

    def _smaller_block(self, block1: int | None, current: int) -> bool:
        """Whether a 4.13's Block1 names a block size smaller than ``current`` bytes; if so it is taken."""
        if block1 is None:
            return False
        szx = block1 & 0x07
        if szx == 7 or 16 << szx >= current:
            return False
        self._szx = szx
        return True

    def _on_deadline(self) -> None:
        self._timer = None
        client = self.client
        if client is None:
            return
        if self.connection is None and client.last_error is not None:
            error: ExchangeError = NoConnection(
                f"no connection to {client.remote} within {self.timeout_s:g} s "
                f"({'it dropped and ' if self.sent else ''}the last attempt failed: "
                f"{client.describe_error()})"
            )
        else:
            error = ResponseTimeout(f"no response within {self.timeout_s:g} s")
        self.fail(error)

    def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def finish(self, response: Response) -> None:
        client = self.client
        if client is None:
            return
        self.stop()
        self.client = None
        client.finished(self)
        self.on_done(response, None)

    def fail(self, exc: BaseException) -> None:
        client = self.client
        if client is None:
            return
        self.stop()
        self.client = None
        client.finished(self)
        self.on_done(None, exc)


# -- one connection ------------------------------------------------------------------------------------------


class TcpConnection(asyncio.Protocol):
    """One TCP (or TLS) connection to the server: framing, signaling, and the requests outstanding on it."""

    def __init__(self, client: TcpClient) -> None:
        self.client = client
        self.loop = client.loop
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        #: Requests sent on this connection and not answered yet, by the token of their message in flight.
        self.outstanding: dict[bytes, TcpExchange] = {}
        #: The peer's settings (§5.3): its Max-Message-Size, and whether it offered block-wise transfer.
        self.peer_max_message_size = tcp_wire.DEFAULT_MAX_MESSAGE_SIZE
        self.peer_block_wise = False
        #: Resolved when the peer's first CSM arrived (or failed when the connection ended before it).
        self.ready: asyncio.Future[None] = self.loop.create_future()
        #: The peer released the connection: no new requests on it (§5.5).
        self.released = False
        self.closed = False
        self.last_received = self.loop.time()
        self._ping_token: bytes | None = None
        self._pong_due = 0.0
        self._keepalive: asyncio.TimerHandle | None = None
        self._why_closed: BaseException | None = None
        self._next_token = _random.getrandbits(32)

    # -- asyncio.Protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio hands a stream protocol a Transport (plain or TLS); the base class types it BaseTransport.
        self.transport = cast(asyncio.Transport, transport)
        # Our CSM first (§5.3): we take messages up to OUR_MAX_MESSAGE_SIZE, and offer no block-wise
        # transfer of our own (we never receive a body block-wise: a response's first block is its answer).
        self._write(tcp_wire.csm(OUR_MAX_MESSAGE_SIZE))
        self.last_received = self.loop.time()
        self._schedule_keepalive(self.last_received + self.client.ping_idle_s)

    def data_received(self, data: bytes) -> None:
        self.last_received = self.loop.time()
        buffer = self._buffer
        buffer += data
        start = 0
        while not self.closed:
            size = tcp_wire.frame_size(buffer, start)
            if size is None:
                break
            if size > OUR_MAX_MESSAGE_SIZE:
                self.abort(f"a message of {size} bytes is larger than our Max-Message-Size")
                return
            if len(buffer) - start < size:
                break
            frame = bytes(buffer[start : start + size])
            start += size
            message = tcp_wire.decode(frame)
            if message is None:
                self.abort("message format error")
                return
            self._received(message)
        if start:
            del buffer[:start]

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost hands the unanswered requests back

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        keepalive, self._keepalive = self._keepalive, None
        if keepalive is not None:
            keepalive.cancel()
        why = self._why_closed or exc or ConnectionResetError("the server closed the connection")
        if not self.ready.done():
            self.ready.set_exception(why)
            self.ready.exception()  # retrieved: the connector may have stopped waiting
        self.transport = None
        self.client.connection_lost(self, why)

    # -- receiving -----------------------------------------------------------------------------------------

    def _received(self, message: tcp_wire.Message) -> None:
        code = message.code
        if not self.ready.done() and code != tcp_wire.CSM:
            self.abort(f"the first message was {code_text(code)}, not a CSM (RFC 8323 §5.3)")
            return
        if code >= 0xE0:  # class 7: signaling
            self._signal(message)
        elif 64 <= code < 192:  # a response, classes 2 to 5
            exchange = self.outstanding.pop(message.token, None)
            if exchange is None:
                UNMATCHED.report(self.client.remote, None, message.token.hex(), code_text(code))
                return
            exchange.token = b""
            exchange.answered(message)
        elif 1 <= code < 32:  # a request: a client serves nothing
            self._write(tcp_wire.encode(NOT_FOUND, message.token, b""))
        # 0.00 Empty: ignored (§3.4); classes 1 and 6: nothing of ours

    def _signal(self, message: tcp_wire.Message) -> None:
        code = message.code
        if code == tcp_wire.CSM:
            for number, value in message.options:
                if number == tcp_wire.MAX_MESSAGE_SIZE:
                    self.peer_max_message_size = int.from_bytes(value, "big")
                elif number == tcp_wire.BLOCK_WISE_TRANSFER:
                    self.peer_block_wise = True
                elif tcp_wire.critical(number):
                    self.abort(f"critical CSM option {number} not understood", bad_csm_option=number)
                    return
            if not self.ready.done():
                self.ready.set_result(None)
                self.client.pump()
            return
        if self._unknown_critical(message):
            return
        if code == tcp_wire.PING:
            custody = message.option(tcp_wire.CUSTODY) is not None
            self._write(tcp_wire.pong(message.token, custody))
        elif code == tcp_wire.PONG:
            if self._ping_token is not None and message.token == self._ping_token:
                self._ping_token = None
        elif code == tcp_wire.RELEASE:
            hold_off = message.uint(tcp_wire.HOLD_OFF)
            log.info(
                "coap.tcp_released",
                server=self.client.remote,
                hold_off_s=hold_off,
                outstanding=len(self.outstanding),
                why="the server released the connection (RFC 8323 §5.5): no new request goes on it",
            )
            self.released = True
            self.client.released(self, hold_off)
        elif code == tcp_wire.ABORT:
            diagnostic = message.payload.decode("utf-8", "replace")[:200]
            log.warning(
                "coap.tcp_aborted",
                server=self.client.remote,
                diagnostic=diagnostic,
                bad_csm_option=message.uint(tcp_wire.BAD_CSM_OPTION),
                outstanding=len(self.outstanding),
            )
            self.close(
                ConnectionAborted(f"the server aborted the connection: {diagnostic or '(no diagnostic)'}")
            )
        # other signaling codes: unknown to us, ignored

    def _unknown_critical(self, message: tcp_wire.Message) -> bool:
        """A Ping, Pong, Release or Abort with a critical option we do not know is a message we cannot
        process: the connection is aborted (§5.2)."""
        known = {tcp_wire.PING: {tcp_wire.CUSTODY}, tcp_wire.PONG: {tcp_wire.CUSTODY}}.get(
            message.code, {tcp_wire.ALTERNATIVE_ADDRESS, tcp_wire.HOLD_OFF, tcp_wire.BAD_CSM_OPTION}
        )
        for number, _ in message.options:
            if tcp_wire.critical(number) and number not in known:
                self.abort(f"critical option {number} of {code_text(message.code)} not understood")
                return True
        return False

    # -- sending -------------------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Requests may go on it: the peer's CSM came, and it was neither released nor closed."""
        return self.ready.done() and not self.released and not self.closed

    def _token(self) -> bytes:
        while True:
            self._next_token = (self._next_token + 1) & 0xFFFFFFFF
            token = self._next_token.to_bytes(4, "big")
            if token not in self.outstanding and token != self._ping_token:
                return token

    def send_request(self, exchange: TcpExchange) -> None:
        token = self._token()
        data = exchange.first_message(token, self.peer_max_message_size)
        if data is None:
            return  # failed: it cannot fit
        self._put(exchange, token, data)

    def send_block(self, exchange: TcpExchange, number: int) -> None:
        token = self._token()
        data = exchange.block_message(token, number)
        if data is not None:
            self._put(exchange, token, data)

    def send_next(self, exchange: TcpExchange, message: Callable[[bytes], bytes | None]) -> None:
        """Another message of ``exchange`` that its answer asked for (an OSCORE Echo resend, ``oscore.py``),
        with a token of its own: ``message(token)`` builds it (None: the exchange failed instead)."""
        token = self._token()
        data = message(token)
        if data is not None:
            self._put(exchange, token, data)

    def _put(self, exchange: TcpExchange, token: bytes, data: bytes) -> None:
        exchange.connection = self
        exchange.token = token
        exchange.sent = True
        self.outstanding[token] = exchange
        self._write(data)

    def forget(self, exchange: TcpExchange) -> None:
        """``exchange`` ended or was abandoned: a later answer to it is unmatched."""
        if exchange.token and self.outstanding.get(exchange.token) is exchange:
            del self.outstanding[exchange.token]
        exchange.connection = None
        exchange.token = b""

    def take_unanswered(self) -> list[TcpExchange]:
        """The requests that had no answer on this (closed) connection, in the order they were sent."""
        unanswered = list(self.outstanding.values())
        self.outstanding.clear()
        return unanswered

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(data)

    # -- keep-alive (§5.4) ---------------------------------------------------------------------------------

    def _schedule_keepalive(self, at: float) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._keepalive = self.loop.call_at(at, self._check_alive)

    def _check_alive(self) -> None:
        self._keepalive = None
        if self.closed:
            return
        now = self.loop.time()
        client = self.client
        if self._ping_token is not None:
            if now >= self._pong_due:
                log.warning(
                    "coap.tcp_no_pong",
                    server=client.remote,
                    outstanding=len(self.outstanding),
                    why=f"no Pong within {client.pong_timeout_s:g} s of our Ping: the connection is dead",
                )
                self.close(ConnectionAborted(f"no Pong within {client.pong_timeout_s:g} s"), abort=True)
                return
            self._schedule_keepalive(self._pong_due)
            return
        idle_until = self.last_received + client.ping_idle_s
        if now < idle_until:
            self._schedule_keepalive(idle_until)
            return
        self._ping_token = token = self._token()
        self._pong_due = now + client.pong_timeout_s
        self._write(tcp_wire.ping(token))
        self._schedule_keepalive(self._pong_due)

    # -- closing -------------------------------------------------------------------------------------------

    def abort(self, diagnostic: str, bad_csm_option: int | None = None) -> None:
        """Abort (7.05, §5.6) with a diagnostic, then close."""
        log.warning("coap.tcp_abort_sent", server=self.client.remote, diagnostic=diagnostic)
        self._write(tcp_wire.abort(diagnostic, bad_csm_option))
        self.close(ConnectionAborted(diagnostic))

    def close(self, why: BaseException | None = None, *, abort: bool = False) -> None:
        """Close the connection (``abort``: at once, dropping what is buffered: the peer is dead)."""
        if self._why_closed is None:
            self._why_closed = why
        transport = self.transport
        self.closed = True
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()


# -- one server ----------------------------------------------------------------------------------------------


class TcpClient:
    """One ``coap+tcp``/``coaps+tcp`` server's connection, re-opened when it drops, and the requests waiting
    for it (see the module docstring for the rules)."""

    def __init__(
        self,
        host: str,
        port: int,
        remote: str,
        *,
        window: int,
        tls: TlsOptions | None,
        connect_timeout_s: float,
        loop: asyncio.AbstractEventLoop | None = None,
        ping_idle_s: float | None = None,
        pong_timeout_s: float | None = None,
        drain_s: float | None = None,
    ) -> None:
        """``ping_idle_s``, ``pong_timeout_s``, ``drain_s``: default :data:`PING_IDLE_S`,
        :data:`PONG_TIMEOUT_S`, :data:`RELEASE_DRAIN_S` (read when the client is made)."""
        self.host = host
        self.port = port
        #: The server as log lines and errors name it (``coap+tcp://host:port``).
        self.remote = remote
        self.window = window
        self.tls = tls
        self.connect_timeout_s = connect_timeout_s
        self.loop = loop or asyncio.get_running_loop()
        self.ping_idle_s = PING_IDLE_S if ping_idle_s is None else ping_idle_s
        self.pong_timeout_s = PONG_TIMEOUT_S if pong_timeout_s is None else pong_timeout_s
        self.drain_s = RELEASE_DRAIN_S if drain_s is None else drain_s
        #: Requests not on a connection yet, in order.
        self.waiting: deque[TcpExchange] = deque()
        #: The connection new requests go on (None while there is none, or it is being opened).
        self.connection: TcpConnection | None = None
        #: Released connections still answering what was outstanding on them.
        self._draining: set[TcpConnection] = set()
        self._connector: asyncio.Task[None] | None = None
        self._hold_off_until = 0.0
        #: Why the last connection attempt failed, or the last connection ended (None after a success).
        self.last_error: BaseException | None = None
        self.closed = False
        #: Connections opened so far (for the tests and the log).
        self.connections_opened = 0

    # -- requests ------------------------------------------------------------------------------------------

    def start(self, exchange: TcpExchange) -> None:
        if self.closed:
            exchange.on_done(None, EndpointClosed("the server's connection was closed"))
            return
        exchange.begin(self)
        self.waiting.append(exchange)
        self.pump()

    def pump(self) -> None:
        """Put waiting requests on the connection while the window allows; open one if there is none."""
        waiting = self.waiting
        if not waiting:
            return
        connection = self.connection
        if connection is None or not connection.usable:
            self._connect()
            return
        outstanding = connection.outstanding
        window = self.window
        while waiting and len(outstanding) < window and connection.usable:
            connection.send_request(waiting.popleft())

    def finished(self, exchange: TcpExchange) -> None:
        """``exchange`` ended (answered, failed, abandoned): off its connection or out of the queue."""
        connection = exchange.connection
        if connection is not None:
            connection.forget(exchange)
            if connection in self._draining and not connection.outstanding:
                self._draining.discard(connection)
                connection.close(ConnectionAborted("released by the server, and everything on it answered"))
            self.pump()
        else:
            with contextlib.suppress(ValueError):  # already taken off (failed while being sent)
                self.waiting.remove(exchange)

    def abandon(self, exchange: TcpExchange) -> None:
        """The caller gave up on ``exchange``: no callback, and a late answer is unmatched."""
        exchange.stop()
        exchange.client = None
        self.finished(exchange)

    @property
    def idle(self) -> bool:
        return (
            not self.waiting
            and not self._draining
            and (self.connection is None or not self.connection.outstanding)
        )

    @property
    def connections(self) -> int:
        """Connections open now."""
        return (self.connection is not None) + len(self._draining)

    # -- connections ---------------------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._connector is None and not self.closed:
            self._connector = self.loop.create_task(self._connect_loop())

    async def _connect_loop(self) -> None:
        """Open a connection while requests wait for one: at once, then after a doubling backoff (with
        jitter, so that workers restarted together do not reconnect in step); each request's own deadline
        bounds how long it waits."""
        delay = BACKOFF_FIRST_S
        failures = 0
        try:
            while self.waiting and not self.closed:
                wait = self._hold_off_until - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                error: BaseException | None = None
                try:
                    connection = await self._open()
                except socket.gaierror as exc:
                    self._fail_waiting(exc)
                    return
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:  # closed mid-handshake: transient
                    error = exc
                except ssl.SSLError as exc:
                    self._fail_waiting(NoConnection(self._tls_failure(exc)))
                    return
                except (OSError, TimeoutError, ExchangeError) as exc:
                    error = exc
                if error is not None:
                    self.last_error = error
                    failures += 1
                    if failures == 1:
                        log.warning(
                            "coap.tcp_connect_failed",
                            server=self.remote,
                            error=self.describe_error(),
                            waiting=len(self.waiting),
                            why="trying again with a backoff while requests wait (each until its deadline)",
                        )
                    await asyncio.sleep(delay * (0.5 + _random.random() / 2))
                    delay = min(delay * 2, BACKOFF_MAX_S)
                    continue
                if self.closed:
                    connection.close()
                    return
                self.connection = connection
                self.last_error = None
                self.connections_opened += 1
                log.info(
                    "coap.tcp_connected",
                    server=self.remote,
                    attempts=failures + 1,
                    peer_max_message_size=connection.peer_max_message_size,
                    peer_block_wise=connection.peer_block_wise,
                    tls=self._tls_facts(connection),
                )
                break
        finally:
            self._connector = None
        self.pump()

    async def _open(self) -> TcpConnection:
        """A new connection whose peer's CSM came, within the connect timeout."""
        connection = TcpConnection(self)
        tls = self.tls
        async with asyncio.timeout(self.connect_timeout_s):
            try:
                if tls is None:
                    await self.loop.create_connection(lambda: connection, self.host, self.port)
                else:
                    await self.loop.create_connection(
                        lambda: connection,
                        self.host,
                        self.port,
                        ssl=tls.context,
                        server_hostname=self.host,  # SNI (a host name only) and the name checked
                        ssl_handshake_timeout=self.connect_timeout_s,
                    )
                await asyncio.shield(connection.ready)
            except BaseException:
                connection.close(abort=True)
                raise
        return connection

    def connection_lost(self, connection: TcpConnection, why: BaseException) -> None:
        """A connection ended: its unanswered requests go first in line for the next one."""
        self._draining.discard(connection)
        if connection is self.connection:
            self.connection = None
        unanswered = connection.take_unanswered()
        if connection.ready.done() and not connection.ready.exception():
            log_method = log.info if self.closed or not (unanswered or self.waiting) else log.warning
            log_method(
                "coap.tcp_connection_lost",
                server=self.remote,
                why=f"{type(why).__name__}: {why}",
                unanswered=len(unanswered),
                waiting=len(self.waiting),
            )
        if self.closed:
            for exchange in unanswered:
                exchange.fail(EndpointClosed("the server's connection was closed with the request in flight"))
            return
        self.last_error = why if isinstance(why, BaseException) else None
        for exchange in reversed(unanswered):
            exchange.restart()
            self.waiting.appendleft(exchange)
        self.pump()

    def released(self, connection: TcpConnection, hold_off_s: int | None) -> None:
        """The peer released ``connection``: it drains; new requests wait for a new one (after Hold-Off)."""
        if connection is self.connection:
            self.connection = None
        if hold_off_s:
            self._hold_off_until = max(self._hold_off_until, self.loop.time() + hold_off_s)
        if connection.outstanding:
            self._draining.add(connection)
            self.loop.call_later(self.drain_s, self._drained, connection)
        else:
            connection.close(ConnectionAborted("released by the server"))
        self.pump()

    def _drained(self, connection: TcpConnection) -> None:
        """The released connection's time to answer is over: closed, the unanswered go elsewhere."""
        if not connection.closed:
            connection.close(ConnectionAborted(f"released, and not all answered within {self.drain_s:g} s"))

    def _fail_waiting(self, exc: BaseException) -> None:
        self.last_error = exc
        while self.waiting:
            self.waiting[0].fail(exc)

    def describe_error(self) -> str:
        error = self.last_error
        if error is None:
            return "no error"
        if isinstance(error, TimeoutError):
            return (
                f"no connection and CSM within {self.connect_timeout_s:g} s (connect.coap.handshake.timeout)"
            )
        return f"{type(error).__name__}: {error}" if not isinstance(error, ExchangeError) else str(error)

    def _tls_failure(self, exc: ssl.SSLError) -> str:
        """What went wrong in a TLS handshake, naming the server and the key to look at."""
        tls = self.tls
        trust = tls.trust_source if tls is not None else "(none)"
        if isinstance(exc, ssl.SSLCertVerificationError):
            detail = exc.verify_message or str(exc)
            if "mismatch" in detail.lower() or "hostname" in detail.lower() or "ip address" in detail.lower():
                return (
                    f"TLS handshake with {self.remote} failed: the server's certificate does not name "
                    f"{self.host!r} ({detail}); the URI's host must be one of the certificate's names"
                )
            return (
                f"TLS handshake with {self.remote} failed: the server's certificate is not trusted "
                f"({detail}); the trust comes from connect.coap.truststore.path {trust}"
            )
        return (
            f"TLS handshake with {self.remote} failed: {exc.reason or exc} (a server that asks for a client "
            "certificate needs connect.coap.keystore.path or connect.coap.public.key.file/private.key.file)"
        )

    def _tls_facts(self, connection: TcpConnection) -> str | None:
        transport = connection.transport
        if self.tls is None or transport is None:
            return None
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        return f"{ssl_object.version()}, ALPN {ssl_object.selected_alpn_protocol() or '(none)'}"

    async def close(self) -> None:
        """Close every connection; requests not answered fail with :class:`EndpointClosed`."""
        if self.closed:
            return
        self.closed = True
        connector, self._connector = self._connector, None
        if connector is not None:
            connector.cancel()
            await asyncio.gather(connector, return_exceptions=True)
        while self.waiting:
            self.waiting[0].fail(EndpointClosed("the server's connection was closed"))
        connections = [c for c in (self.connection, *self._draining) if c is not None]
        self.connection = None
        self._draining.clear()
        for connection in connections:
            for exchange in connection.take_unanswered():
                exchange.fail(EndpointClosed("the server's connection was closed with the request in flight"))
            connection.close(EndpointClosed("the sink closed the connection"))
