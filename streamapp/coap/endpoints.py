"""Source endpoints of the sink's requests, and the Message-ID rule of RFC 7252 §4.4 for each.

A server de-duplicates confirmable and non-confirmable messages by (client endpoint, Message ID) for
EXCHANGE_LIFETIME (247 s with the default transmission parameters) and answers a repeated ID with the
response it cached for the earlier message: the new request is never delivered. A Message ID is 16 bits,
so one endpoint (one UDP socket, one source address and port) may start at most 65 536 messages in any
EXCHANGE_LIFETIME: about 265 per second. A sink that is faster spreads its requests over several endpoints.

Each endpoint (``exchange.py``'s :class:`~streamapp.coap.exchange.ClientEndpoint`) hands out its IDs in
sequence from a random start, so the ID it is about to reuse is the one handed out 65 536 messages ago,
and reusing it is safe exactly when fewer than 65 536 IDs were handed out within the last
EXCHANGE_LIFETIME. :class:`MessageIdLedger` counts them, per second: the endpoint counts every ID it hands
out (block-wise continuations too), and an ID that would come back early raises instead of being sent.

:class:`EndpointPool` owns the endpoints, each with its own socket (and, for ``coaps://``, its own DTLS
session). An endpoint carries one exchange at a time (NSTART = 1 per endpoint), so concurrency comes from
endpoints. Free endpoints are reused most recent first (few sockets and sessions at low rates); one whose
IDs are spent rests until they age out, and a new endpoint is opened when no free one has room, up to
``window + SPARE_ENDPOINTS``; past that a request waits for the first endpoint to have room again.
Endpoints are kept, not closed, while they have IDs within the lifetime: the operating system could hand a
closed socket's port to a new one, and the server would take it for the same endpoint. An exchange that
fails without an answer keeps its endpoint too (the exchange layer stops retransmitting at once, so nothing
stalls behind it; only the server's address is resolved again before the next request).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, Protocol, TypeVar

from aiocoap.numbers.constants import TransportTuning

from streamapp.coap.request_options import RequestOptions
from streamapp.logs import get_logger

log = get_logger(__name__)

#: Message IDs of one endpoint (16 bits).
MESSAGE_IDS = 1 << 16
#: RFC 7252 EXCHANGE_LIFETIME with the default transmission parameters (247 s); the ledger uses the
#: longest lifetime any statement's ``ack.timeout``/``max.retransmit`` gives (see ``exchange_lifetime``).
DEFAULT_EXCHANGE_LIFETIME_S: float = TransportTuning().EXCHANGE_LIFETIME
#: Endpoints opened beyond the window, for the IDs of busy ones to age out (each holds 265 requests/s).
SPARE_ENDPOINTS = 64


def exchange_lifetime(options: Iterable[RequestOptions]) -> float:
    """The lifetime the ledgers keep IDs for: RFC 7252 EXCHANGE_LIFETIME of the statements' transmission
    parameters, and never less than the default one (the server may use the defaults whatever ours are)."""
    # aiocoap's TransportTuning properties carry no annotations: the list's type says what they are.
    lifetimes: list[float] = [DEFAULT_EXCHANGE_LIFETIME_S, *(o.tuning.EXCHANGE_LIFETIME for o in options)]
    return max(lifetimes)


class PoolClosed(RuntimeError):
    """The pool was closed (the sender stopped, or the server was closed) while a request waited for an
    endpoint."""


class MessageIdsExhausted(RuntimeError):
    """An endpoint was about to reuse a Message ID within EXCHANGE_LIFETIME (a bug: the pool checks first)."""


class MessageIdLedger:
    """How many Message IDs one endpoint handed out within the exchange lifetime, counted per second.

    An ID handed out in second ``s`` is counted until ``s + 1 + lifetime``: rounding always up, so the
    count is never lower than the truth.
    """

    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._seconds: deque[list[int]] = deque()  # [second, IDs handed out in it]
        self.live = 0  # IDs within the lifetime
        self.total = 0

    def _expire(self, now: float) -> None:
        seconds = self._seconds
        while seconds and seconds[0][0] + 1 + self.lifetime_s <= now:
            self.live -= seconds.popleft()[1]

    def room(self, now: float | None = None) -> int:
        """How many IDs may be handed out now without reusing one early."""
        self._expire(self._clock() if now is None else now)
        return MESSAGE_IDS - self.live

    def free_at(self) -> float:
        """When (clock time) at least one ID has room again."""
        if self.live < MESSAGE_IDS or not self._seconds:
            return self._clock()
        return self._seconds[0][0] + 1 + self.lifetime_s

    def take(self) -> None:
        """Count one ID handed out now; raise if it would reuse one within the lifetime."""
        now = self._clock()
        if self.room(now) <= 0:
            raise MessageIdsExhausted(
                f"{MESSAGE_IDS} Message IDs already used within {self.lifetime_s:g} s on this endpoint"
            )
        second = int(now)
        seconds = self._seconds
        if seconds and seconds[-1][0] == second:
            seconds[-1][1] += 1
        else:
            seconds.append([second, 1])
        self.live += 1
        self.total += 1


class PooledEndpoint(Protocol):
    """What the pool needs of an endpoint (``exchange.ClientEndpoint``)."""

    ledger: MessageIdLedger
    closed: bool

    def close(self) -> None: ...


E = TypeVar("E", bound=PooledEndpoint)


class EndpointPool(Generic[E]):
    """Endpoints for at most ``window`` concurrent exchanges, each keeping the Message-ID rule.

    ``open_endpoint(ledger)`` opens one whose Message IDs ``ledger`` counts."""

    def __init__(
        self,
        open_endpoint: Callable[[MessageIdLedger], Awaitable[E]],
        window: int,
        *,
        lifetime_s: float = DEFAULT_EXCHANGE_LIFETIME_S,
        max_endpoints: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_endpoint = open_endpoint
        self.window = window
        self.lifetime_s = lifetime_s
        self.max_endpoints = max_endpoints if max_endpoints is not None else window + SPARE_ENDPOINTS
        self._clock = clock
        self.endpoints: list[E] = []
        self._free: list[E] = []  # a stack: the most recently released on top
        self._waiters: list[asyncio.Future[None]] = []
        self._opening = 0
        self._warned_full = False
        self.closed = False

    @property
    def busy(self) -> int:
        return len(self.endpoints) + self._opening - len(self._free)

    @property
    def idle(self) -> bool:
        """No exchange in flight, none being opened, nobody waiting for an endpoint: safe to close."""
        return self.busy == 0 and not self._waiters

    async def acquire(self, ids: int = 1) -> E:
        """An endpoint with room for ``ids`` Message IDs and no exchange in flight, for this caller only."""
        while True:
            if self.closed:
                raise PoolClosed("the endpoints were closed")
            if self.busy < self.window:
                endpoint = self._take_free(ids)
                if endpoint is not None:
                    return endpoint
                if len(self.endpoints) + self._opening < self.max_endpoints:
                    return await self._open()
            await self._wait_for_room(ids)

    def take_nowait(self, ids: int = 1) -> E | None:
        """A free endpoint with room for ``ids`` IDs within the window, without waiting; else None (then
        :meth:`acquire`)."""
        if self.busy < self.window:
            return self._take_free(ids)
        return None

    def release(self, endpoint: E) -> None:
        if endpoint.closed:
            self.retire(endpoint)
            return
        self._free.append(endpoint)
        if self._waiters:
            self._notify()

    def retire(self, endpoint: E) -> None:
        """Close an endpoint for good (its link broke); a fresh one is opened when needed."""
        if endpoint in self.endpoints:
            self.endpoints.remove(endpoint)
        endpoint.close()
        self._notify()

    def _take_free(self, ids: int) -> E | None:
        free = self._free
        if not free:
            return None
        now = self._clock()
        for i in range(len(free) - 1, -1, -1):
            if free[i].ledger.room(now) >= ids:
                return free.pop(i)
        return None

    async def _open(self) -> E:
        self._opening += 1
        ledger = MessageIdLedger(self.lifetime_s, self._clock)
        try:
            endpoint = await self._open_endpoint(ledger)
        finally:
            self._opening -= 1
        if self.closed:
            endpoint.close()
            raise PoolClosed("the endpoints were closed")
        self.endpoints.append(endpoint)
        if len(self.endpoints) > self.window:
            log.info(
                "coap.endpoint_opened",
                endpoints=len(self.endpoints),
                window=self.window,
                why="every other endpoint is busy or used its Message IDs within EXCHANGE_LIFETIME",
            )
        return endpoint

    async def _wait_for_room(self, ids: int) -> None:
        """Wait for a release, or (when every free endpoint's IDs are spent) for the first to age out."""
        delay: float | None = None
        if self.busy < self.window:
            if not self._warned_full:
                self._warned_full = True
                log.warning(
                    "coap.message_ids_exhausted",
                    endpoints=len(self.endpoints),
                    lifetime_s=self.lifetime_s,
                    why=f"every endpoint used its {MESSAGE_IDS} Message IDs within EXCHANGE_LIFETIME "
                    "(RFC 7252 4.4); requests wait until IDs age out",
                )
            free_at = min((e.ledger.free_at() for e in self._free), default=math.inf)
            if free_at != math.inf:
                # Looked at again at least every second: cheap, and it only happens at the limit.
                delay = min(1.0, max(0.01, free_at - self._clock()))
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, delay)
        except TimeoutError:
            pass
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def close(self) -> None:
        self.closed = True
        endpoints, self.endpoints, self._free = self.endpoints, [], []
        for endpoint in endpoints:
            endpoint.close()
        self._notify()
