"""The sink's own CoAP exchange layer: one client endpoint per source socket (or DTLS session), carrying one
request at a time, with the message-layer rules of RFC 7252 and block-wise requests of RFC 7959.

Why not aiocoap: a request through aiocoap costs ~120-165 µs of CPU (a ``Message`` with its options object,
the message and token managers, a ``Pipe`` and a ``Request`` per request, its UDP transport, a task and an
``asyncio.timeout`` per request), most of the sink's per-record budget (docs/delivery-engine.md, "Where the
time goes", and "Which library carries a request and why"). A sink needs a small part of CoAP: it is only a
client, sends one request per endpoint at a time to one server, and reads only the response's code (and a
little of its payload). This module does exactly that with callbacks and timer handles, no task per request;
the message format is ``wire.py``'s.

One :class:`ClientEndpoint` is one source endpoint of ``endpoints.py``'s pool: a connected UDP socket
(:class:`UdpLink`), or for ``coaps://`` a DTLS session (``dtls.py``'s :class:`~streamapp.coap.dtls.DtlsLink`,
renewed on a new socket when it dies). The rules it keeps, each as aiocoap kept it for the sink before:

- **Message IDs** (§4.4): the endpoint hands out IDs in sequence from a random start, as aiocoap's message
  manager did, and counts each one in the pool's :class:`~streamapp.coap.endpoints.MessageIdLedger`, which
  refuses an ID that would come back within EXCHANGE_LIFETIME. Every message that carries an ID of ours
  counts: a request, each block of a block-wise one (a retransmission repeats its ID). ACKs and RSTs echo the
  server's ID and are not counted.
- **NSTART = 1** (§4.7): one exchange per endpoint; :meth:`ClientEndpoint.start` refuses a second. The pool
  gives each exchange an endpoint of its own.
- **Retransmission** (§4.2): a CON request is sent again after a random initial timeout in
  [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR], doubling, MAX_RETRANSMIT times, then the exchange fails
  (:class:`RetransmitsExceeded`). An ACK (empty or piggybacked), or any response to the request, stops it. A
  NON request is sent once.
- **Response timeout**: every request has a deadline (``RequestOptions.response_timeout_s``: the configured
  timeout, else MAX_TRANSMIT_WAIT and one ACK_TIMEOUT, so that the retransmissions end first) covering
  every block of a block-wise transfer; past it the exchange fails (:class:`ResponseTimeout`). One timer per
  exchange serves both: it fires at the earlier of the next retransmission and the deadline.
- **Matching** (§4.2, §5.3.2): an ACK or RST matches our CON by Message ID; a response matches the request
  by token. A piggybacked response is an ACK with our ID and our token; an empty ACK says the response comes
  separately, as a CON (which is ACKed: §5.2.2) or NON with our token. A NON request's response (NON) is
  matched by token. An ACK with our ID and another token acknowledges the request but answers nothing, so
  the request goes on waiting (the case of a server answering a reused ID with a cached response).
- **Duplicates** (§4.5): a separate CON response is ACKed every time it comes, and processed once (the
  server IDs of separate responses are remembered for EXCHANGE_LIFETIME); a repeated NON response and a
  repeated piggybacked ACK of an answered request are dropped.
- **RST** to our request (its ID): the exchange fails at once (:class:`Reset`).
- **Unmatched responses**: a response that matches nothing in flight (late, or the server's answer to a
  reused ID) is the WARNING ``coap.unmatched_response``, at most one line per
  :data:`UNMATCHED_LINE_INTERVAL_S` counting the rest, as aiocoap's INFO line became before; an unmatched
  CON response is answered with RST (§5.3.2, as aiocoap did). A CON ping or request to the sink gets RST.
- **Block1** (RFC 7959, :class:`Exchange`): a body over 1024 bytes goes in 1024-byte blocks (Size1 on the
  first), each its own CON/NON with its own ID and token, as aiocoap sent them; 2.31 Continue (or any 2.xx
  with Block1) asks for the next, and a smaller block size in the answer is taken from the next block on at
  the same byte offset (Californium asks for 64 bytes). 4.13 with a smaller size in its Block1 starts the
  body again at that size (RFC 7959 §2.9.3); any other 4.xx/5.xx ends the request with that answer. A
  response to the last block that still asks for more, or names another block, is an error
  (:class:`BlockwiseError`); a response without Block1 is taken as the final answer, as aiocoap took it.
- **Block2** of a response is never asked for: the sink needs the code, and the first block's payload
  carries the detail it logs. (aiocoap fetched the rest of a response to a block-wise request only.)
- Datagrams that break the message format are dropped (``wire.decode``); ICMP errors on the socket (nobody
  listening) and DTLS handshake failures fail the exchange in flight with the error (as aiocoap did).

Results go to a callback (``on_done(response, error)``); :class:`Exchange` holds no coroutine, so the
sender can hand the engine a future to attach done-callbacks to.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, cast

from streamapp.coap import wire
from streamapp.coap.wire import ACK, CON, CONTINUE, EMPTY, NON, REQUEST_ENTITY_TOO_LARGE, RST
from streamapp.logs import get_logger

log = get_logger(__name__)

#: At most one ``coap.unmatched_response`` line this often; the line counts those left out since the last.
UNMATCHED_LINE_INTERVAL_S = 10.0
#: Server Message IDs of separate responses remembered at most per endpoint (for duplicates, §4.5).
REMEMBERED_RESPONSES = 1024
#: Our Message IDs of answered, retransmitted requests remembered per endpoint (a repeated ACK is dropped).
REMEMBERED_ANSWERS = 256

_random = random.Random()
#: A timer handle may run a hair before its time (the loop's clock resolution): it counts as on time.
_EARLY = 1e-6


class Response(NamedTuple):
    """The final answer to a request: its code (class << 5 | detail), payload (the first block's) and
    Content-Format (None when it has none)."""

    code: int
    payload: bytes
    content_format: int | None = None


class ExchangeError(Exception):
    """An exchange ended without a final answer; the message says why."""


class RetransmitsExceeded(ExchangeError):
    """A CON request was sent MAX_RETRANSMIT + 1 times and nothing acknowledged it (RFC 7252 §4.2)."""


class ResponseTimeout(ExchangeError):
    """No final answer within the request's deadline."""


class Reset(ExchangeError):
    """The server rejected the request with RST."""


class BlockwiseError(ExchangeError):
    """The server's Block1 answers do not fit the transfer (RFC 7959)."""


class EndpointClosed(ExchangeError):
    """The endpoint was closed (the sender stopped, or the server was closed) with the request in flight."""


class Link(Protocol):
    """What an endpoint sends its datagrams through: a connected UDP socket or a DTLS session."""

    def send(self, data: bytes) -> None: ...

    def forget_address(self) -> None: ...

    def close(self) -> None: ...


# -- retransmission (RFC 7252 §4.2) ------------------------------------------------------------------------


def initial_timeout(ack_timeout: float, random_factor: float, draw: float | None = None) -> float:
    """The first wait for an ACK: uniformly random in [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR]
    (``draw``: the random number in [0, 1) to use, for the tests)."""
    if draw is None:
        draw = _random.random()
    return ack_timeout + (ack_timeout * random_factor - ack_timeout) * draw


def retransmission_schedule(initial: float, max_retransmit: int) -> list[tuple[float, str]]:
    """When (seconds after the first transmission) a CON message is sent again, and when it is given up:
    ``[(t, "retransmit"), ..., (t, "give up")]``. What :class:`Exchange` does, as data for the tests."""
    schedule = []
    at, wait = 0.0, initial
    for _ in range(max_retransmit):
        at += wait
        schedule.append((at, "retransmit"))
        wait *= 2
    schedule.append((at + wait, "give up"))
    return schedule


# -- unmatched responses -------------------------------------------------------------------------------------


class UnmatchedLog:
    """The ``coap.unmatched_response`` WARNING, at most one line per interval counting those left out.

    Anybody can send datagrams to a source port: a flood of them must not become a flood of lines.
    """

    def __init__(self) -> None:
        self._last_line: float | None = None
        self._suppressed = 0

    def report(self, remote: str, mid: int | None, token: str, code: str) -> None:
        now = time.monotonic()
        if self._last_line is not None and now - self._last_line < UNMATCHED_LINE_INTERVAL_S:
            self._suppressed += 1
            return
        suppressed, self._suppressed, self._last_line = self._suppressed, 0, now
        log.warning(
            "coap.unmatched_response",
            suppressed_since_last_line=suppressed,
            remote=remote,
            mid=mid,
            token=token,
            code=code,
            why="a response that matches no request in flight (late, or the server took a reused "
            "Message ID for a repetition)",
        )


#: The process's one rate limit for unmatched responses (every endpoint shares it).
UNMATCHED = UnmatchedLog()


def code_text(code: int) -> str:
    """``2.04 Changed`` (aiocoap's names)."""
    from aiocoap.numbers.codes import Code

    return str(Code(code))


# -- the endpoint --------------------------------------------------------------------------------------------


class Ledger(Protocol):
    def take(self) -> None: ...


#: The endpoint's ledger: the pool hands each endpoint a ``MessageIdLedger`` and reads it back from it.
LedgerT = TypeVar("LedgerT", bound=Ledger, covariant=True)


class ClientEndpoint(Generic[LedgerT]):
    """One source endpoint toward one server: its link, its Message-ID sequence and the exchange in flight."""

    def __init__(
        self, ledger: LedgerT, remote: str, lifetime_s: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.ledger = ledger
        #: The server as it shows in log lines (``host:port``).
        self.remote = remote
        self.lifetime_s = lifetime_s
        self.link: Link | None = None
        self.loop = loop or asyncio.get_running_loop()
        self._next_mid = _random.randrange(1 << 16)
        self.current: Exchange | None = None
        #: Server IDs of separate responses handled: ID -> loop time until which a copy is a duplicate.
        self._separate: dict[int, float] = {}
        #: Our IDs of answered requests that were sent more than once: ID -> token.
        self._answered: dict[int, bytes] = {}
        self.closed = False
        #: The server's address is to be resolved again before the next request (after one went unanswered).
        self.stale = False

    # -- for the exchange ----------------------------------------------------------------------------------

    def next_mid(self) -> int:
        """The next Message ID, counted in the ledger (which raises rather than reuse one early)."""
        self.ledger.take()
        mid = self._next_mid
        self._next_mid = (mid + 1) & 0xFFFF
        return mid

    def send(self, data: bytes) -> None:
        link = self.link
        if link is not None:
            link.send(data)

    def start(self, exchange: Exchange) -> None:
        """Begin ``exchange`` on this endpoint (NSTART = 1: nothing else may be in flight)."""
        if self.current is not None:
            raise RuntimeError("NSTART = 1: an exchange is already in flight on this endpoint")
        if self.closed:
            exchange.on_done(None, EndpointClosed("the endpoint is closed"))
            return
        self.current = exchange
        exchange.begin(self)

    def finished(self, exchange: Exchange) -> None:
        if self.current is exchange:
            self.current = None

    def answered(self, mid: int, token: bytes) -> None:
        """Remember an answered request that went out more than once: a second answer to it is a duplicate."""
        answered = self._answered
        if len(answered) >= REMEMBERED_ANSWERS:
            del answered[next(iter(answered))]
        answered[mid] = token

    def abort(self, exchange: Exchange) -> None:
        """The caller gave up on ``exchange`` (cancelled): no retransmission, no callback, a late answer is
        unmatched."""
        exchange.stop()
        self.finished(exchange)

    # -- from the link -------------------------------------------------------------------------------------

    def datagram_received(self, data: bytes) -> None:
        message = wire.decode(data)
        if message is None:
            return  # not CoAP (or broken): dropped, as aiocoap drops what it cannot parse
        mtype, code, mid = message.mtype, message.code, message.mid
        current = self.current
        if mtype == ACK:
            if current is not None and mid == current.mid and current.confirmable:
                current.acknowledged(message)
            elif code != EMPTY and self._answered.get(mid) != message.token:
                self._unmatched(message)
            # an empty ACK that matches nothing: a late one, nothing to do
        elif mtype == RST:
            if current is not None and mid == current.mid:
                current.fail(Reset("the server answered with a Reset (RST) message"))
        elif 64 <= code < 192:  # a response (classes 2 to 5), separate: CON or NON
            if mtype == CON:
                self.send(wire.empty(ACK if self._separate_response(message, current) else RST, mid))
            else:
                self._separate_response(message, current)
        elif mtype == CON:
            # A ping (empty CON) or a request: a client serves nothing, so both are rejected (§4.2, §4.3).
            self.send(wire.empty(RST, mid))

    def _separate_response(self, message: wire.Incoming, current: Exchange | None) -> bool:
        """A response in a CON or NON of the server's: whether it is ours (to be ACKed, if CON)."""
        now = self.loop.time()
        separate = self._separate
        seen_until = separate.get(message.mid)
        if seen_until is not None and seen_until > now:
            return True  # a duplicate of one already handled: acknowledged again, not processed again
        if current is not None and message.token == current.token:
            if len(separate) >= REMEMBERED_RESPONSES:
                self._forget_expired(now)
            separate[message.mid] = now + self.lifetime_s
            current.answered(message)
            return True
        self._unmatched(message)
        return False

    def _forget_expired(self, now: float) -> None:
        separate = self._separate
        for mid in [m for m, until in separate.items() if until <= now]:
            del separate[mid]
        while len(separate) >= REMEMBERED_RESPONSES:
            del separate[next(iter(separate))]

    def _unmatched(self, message: wire.Incoming) -> None:
        UNMATCHED.report(self.remote, message.mid, message.token.hex(), code_text(message.code))

    def link_failed(self, exc: BaseException) -> None:
        """The link reported an error (ICMP: nobody listening; a DTLS handshake failed): the exchange in
        flight fails with it."""
        current = self.current
        if current is not None:
            current.fail(exc)

    # -- lifecycle -----------------------------------------------------------------------------------------

    def forget_address(self) -> None:
        """Resolve the server's address again before the next request (one went unanswered)."""
        self.stale = True
        if self.link is not None:
            self.link.forget_address()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        current = self.current
        if current is not None:
            current.fail(EndpointClosed("the endpoint was closed with the request in flight"))
        if self.link is not None:
            self.link.close()


class Exchange:
    """One request, from its first transmission to its final answer: every block of a block-wise body, the
    retransmissions of each message, and the deadline of the whole."""

    __slots__ = (
        "_block",
        "_deadline",
        "_retransmit_at",
        "_szx",
        "_timer",
        "_transmissions",
        "_wait",
        "ack_timeout",
        "code",
        "confirmable",
        "datagram",
        "endpoint",
        "last_option",
        "max_retransmit",
        "mid",
        "on_done",
        "options",
        "payload",
        "random_factor",
        "timeout_s",
        "token",
    )

    def __init__(
        self,
        code: int,
        confirmable: bool,
        options: bytes,
        last_option: int,
        payload: bytes,
        *,
        ack_timeout: float,
        random_factor: float,
        max_retransmit: int,
        timeout_s: float,
        on_done: Callable[[Response | None, BaseException | None], None],
    ) -> None:
        self.code = code
        self.confirmable = confirmable
        self.options = options
        self.last_option = last_option
        self.payload = payload
        self.ack_timeout = ack_timeout
        self.random_factor = random_factor
        self.max_retransmit = max_retransmit
        self.timeout_s = timeout_s
        self.on_done = on_done
        self.endpoint: ClientEndpoint[Ledger] | None = None
        self.mid = -1
        self.token = b""
        self.datagram = b""
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._retransmit_at = 0.0
        self._wait = 0.0
        self._transmissions = 0
        #: Block-wise: (block number, more, szx) of the block in flight; None for a one-message body.
        self._block: tuple[int, bool, int] | None = None
        self._szx = wire.DEFAULT_SZX

    # -- sending -------------------------------------------------------------------------------------------

    def begin(self, endpoint: ClientEndpoint[Ledger]) -> None:
        self.endpoint = endpoint
        self._deadline = endpoint.loop.time() + self.timeout_s
        if len(self.payload) > 16 << self._szx:
            self._send_block(0)
        else:
            self._send(self.options, self.payload)

    def _send(self, options: bytes, payload: bytes) -> None:
        """A new message (new ID, new token) of this request, and its retransmission timer."""
        endpoint = self.endpoint
        assert endpoint is not None
        try:
            mid = endpoint.next_mid()
        except Exception as exc:  # MessageIdsExhausted: the pool checks first, so only a long block-wise body
            self.fail(exc)
            return
        self.mid = mid
        self.token = token = _random.getrandbits(32).to_bytes(4, "big")
        self.datagram = datagram = wire.encode(
            CON if self.confirmable else NON, self.code, mid, token, options, payload
        )
        endpoint.send(datagram)
        self._transmissions = 1
        if self.confirmable:
            self._wait = wait = initial_timeout(self.ack_timeout, self.random_factor)
            self._retransmit_at = endpoint.loop.time() + wait
        else:
            self._retransmit_at = float("inf")
        self._arm()

    def _send_block(self, number: int) -> None:
        """Block ``number`` at the current block size (RFC 7959 §2.5); Size1 on the first."""
        size = 16 << self._szx
        start = number * size
        payload = self.payload
        if start >= len(payload):
            self.fail(BlockwiseError(f"no block {number} in {len(payload)} bytes at the server's block size"))
            return
        chunk = payload[start : start + size]
        more = start + size < len(payload)
        self._block = (number, more, self._szx)
        options = self.options + wire.block_options(
            self.last_option, wire.block_value(number, more, self._szx), len(payload) if number == 0 else None
        )
        self._send(options, chunk)

    def _arm(self) -> None:
        timer = self._timer
        if timer is not None:
            timer.cancel()
        endpoint = self.endpoint
        assert endpoint is not None
        self._timer = endpoint.loop.call_at(min(self._retransmit_at, self._deadline), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        endpoint = self.endpoint
        if endpoint is None:
            return
        now = endpoint.loop.time() + _EARLY
        if now >= self._deadline:
            self.fail(ResponseTimeout(f"no response within {self.timeout_s:g} s"))
            return
        if now < self._retransmit_at:
            self._arm()
            return
        if self._transmissions > self.max_retransmit:
            sent = self._transmissions
            self.fail(RetransmitsExceeded(f"no answer to {sent} transmissions of a confirmable message"))
            return
        endpoint.send(self.datagram)  # the same message again: same ID, same token
        self._transmissions += 1
        self._wait *= 2
        self._retransmit_at = now - _EARLY + self._wait
        self._arm()

    # -- receiving -----------------------------------------------------------------------------------------

    def acknowledged(self, message: wire.Incoming) -> None:
        """An ACK with our Message ID: no more retransmissions; it may carry the response (piggybacked)."""
        if self._retransmit_at != float("inf"):
            self._retransmit_at = float("inf")
            if message.code == EMPTY or message.token != self.token:
                self._arm()  # only the deadline is left
        if message.code == EMPTY:
            return
        if message.token != self.token:
            # The ACK acknowledges our message but the response is another request's: most likely the
            # server's cached answer to a reused Message ID. The request is not answered by it.
            endpoint = self.endpoint
            assert endpoint is not None
            endpoint._unmatched(message)
            return
        self.answered(message)

    def answered(self, message: wire.Incoming) -> None:
        """A response with our token (piggybacked, or separate: then it acknowledges the request too)."""
        endpoint = self.endpoint
        assert endpoint is not None
        if self._transmissions > 1 and self.confirmable:
            endpoint.answered(self.mid, self.token)
        code = message.code
        block = self._block
        if block is None:
            if code == REQUEST_ENTITY_TOO_LARGE and self._smaller_block(message.block1, len(self.payload)):
                self._send_block(0)  # RFC 7959 §2.9.3: a hint to send block-wise at that size
                return
            self.finish(Response(code, message.payload, message.content_format))
            return
        number, more, szx = block
        if code >= 128:  # 4.xx, 5.xx
            if code == REQUEST_ENTITY_TOO_LARGE and self._smaller_block(message.block1, 16 << szx):
                self._send_block(0)  # the body again, from the start, in the smaller blocks
                return
            self.finish(Response(code, message.payload, message.content_format))
            return
        block1 = message.block1
        if block1 is None:
            if more:
                log.warning(
                    "coap.block1_ignored",
                    server=endpoint.remote,
                    block=number,
                    code=code_text(code),
                    why="the server answered a block of the body without Block1: taken as the final answer",
                )
            self.finish(Response(code, message.payload, message.content_format))
            return
        if block1 >> 4 != number:
            self.fail(BlockwiseError(f"the server answered block {block1 >> 4} to block {number}"))
            return
        if not more:
            if block1 & 0x08 or code == CONTINUE:
                self.fail(BlockwiseError("the server asked for more data at the end of the body"))
                return
            self.finish(Response(code, message.payload, message.content_format))
            return
        # 2.31 Continue (or another 2.xx: the server takes the body block by block): the next block, at the
        # server's block size if it asked for a smaller one (the same byte offset in smaller blocks).
        cursor = number + 1
        server_szx = block1 & 0x07
        while server_szx < self._szx:
            cursor *= 2
            self._szx -= 1
        self._send_block(cursor)

    def _smaller_block(self, block1: int | None, current: int) -> bool:
        """Whether a 4.13's Block1 names a block size smaller than ``current`` bytes; if so it is taken."""
        if block1 is None:
            return False
        szx = block1 & 0x07
        if szx == 7 or 16 << szx >= current:
            return False
        self._szx = szx
        return True

    # -- ending --------------------------------------------------------------------------------------------

    def stop(self) -> None:
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None

    def finish(self, response: Response) -> None:
        endpoint = self.endpoint
        if endpoint is None:
            return
        self.stop()
        self.endpoint = None
        endpoint.finished(self)
        self.on_done(response, None)

    def fail(self, exc: BaseException) -> None:
        endpoint = self.endpoint
        if endpoint is None:
            return
        self.stop()
        self.endpoint = None
        endpoint.finished(self)
        self.on_done(None, exc)


# -- plain UDP -----------------------------------------------------------------------------------------------


async def resolve(host: str, port: int) -> tuple[Any, ...]:
    """The server's socket address (the first the resolver gives, as aiocoap and ``dtls.py`` take)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise socket.gaierror(f"{host} has no address")
    family, _, _, _, sockaddr = infos[0]
    return (sockaddr[0], sockaddr[1]) if family == socket.AF_INET else tuple(sockaddr[:2])


class UdpLink(asyncio.DatagramProtocol):
    """A UDP socket connected to the server: the kernel drops datagrams from anyone else and reports ICMP
    errors (nobody listening) to :meth:`error_received`."""

    def __init__(self, endpoint: ClientEndpoint[Ledger]) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.DatagramTransport | None = None
        self.address: tuple[Any, ...] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio hands a datagram protocol a DatagramTransport; BaseProtocol types it BaseTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.endpoint.datagram_received(data)

    def error_received(self, exc: Exception) -> None:
        self.endpoint.link_failed(exc)

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None:
            transport.sendto(data)

    def forget_address(self) -> None:
        pass  # the endpoint resolves again (ClientEndpoint.stale) and reconnects if the address changed

    def close(self) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()


async def connect_udp(endpoint: ClientEndpoint[Ledger], host: str, port: int) -> None:
    """Give ``endpoint`` a UDP socket connected to the server's (newly resolved) address; a socket it has is
    kept when the address is the same."""
    address = await resolve(host, port)
    old = endpoint.link
    if isinstance(old, UdpLink) and old.address == address and old.transport is not None:
        endpoint.stale = False
        return
    link = UdpLink(endpoint)
    await asyncio.get_running_loop().create_datagram_endpoint(lambda: link, remote_addr=address)
    link.address = address
    if endpoint.closed:
        link.close()
        return
    endpoint.link = link
    endpoint.stale = False
    if old is not None:
        old.close()
