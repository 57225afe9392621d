"""The Message-ID rule of RFC 7252 4.4 per source endpoint, and the pool that spreads requests over them."""

from __future__ import annotations

import asyncio

import pytest

from streamapp.coap.endpoints import (
    MESSAGE_IDS,
    EndpointPool,
    MessageIdLedger,
    MessageIdsExhausted,
    exchange_lifetime,
)
from streamapp.coap.request_options import RequestOptions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeEndpoint:
    """What the pool needs of an endpoint: its ledger, whether it is closed, and close."""

    def __init__(self, ledger: MessageIdLedger) -> None:
        self.ledger = ledger
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_an_endpoint_has_65536_ids_per_exchange_lifetime_and_never_one_more() -> None:
    clock = Clock()
    ledger = MessageIdLedger(247.0, clock)
    for _ in range(MESSAGE_IDS - 1):
        ledger.take()
        clock.now += 0.001
    assert ledger.room() == 1
    ledger.take()
    assert ledger.room() == 0
    with pytest.raises(MessageIdsExhausted):
        ledger.take()
    first_used = 1000.0
    assert ledger.free_at() >= first_used + 247.0
    clock.now = first_used + 247.0 - 0.01  # the first ID is still within its lifetime
    assert ledger.room() == 0
    clock.now = ledger.free_at()
    assert ledger.room() > 0
    ledger.take()


def test_ids_age_out_second_by_second() -> None:
    clock = Clock()
    ledger = MessageIdLedger(10.0, clock)
    for second in range(3):
        clock.now = 1000.0 + second
        for _ in range(100):
            ledger.take()
    assert ledger.room() == MESSAGE_IDS - 300
    clock.now = 1011.0  # second 1000 expired (counted until 1000 + 1 + 10)
    assert ledger.room() == MESSAGE_IDS - 200
    clock.now = 1013.0
    assert ledger.room() == MESSAGE_IDS


def test_the_lifetime_is_never_shorter_than_the_rfc_default() -> None:
    assert exchange_lifetime([]) == pytest.approx(247.0)
    assert exchange_lifetime([RequestOptions(ack_timeout_s=0.1, max_retransmit=0)]) == pytest.approx(247.0)
    longer = RequestOptions(ack_timeout_s=0.5, max_retransmit=8)
    assert exchange_lifetime([RequestOptions(), longer]) == pytest.approx(longer.tuning.EXCHANGE_LIFETIME)
    assert longer.tuning.EXCHANGE_LIFETIME > 247.0


async def test_the_pool_gives_each_exchange_its_own_endpoint_within_the_window() -> None:
    opened_endpoints: list[FakeEndpoint] = []

    async def create(ledger: MessageIdLedger) -> FakeEndpoint:
        opened_endpoints.append(FakeEndpoint(ledger))
        return opened_endpoints[-1]

    pool = EndpointPool(create, window=2)  # type: ignore[arg-type]
    a = await pool.acquire()
    b = await pool.acquire()
    assert a is not b and len(opened_endpoints) == 2
    third = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    assert not third.done(), "a third exchange in a window of 2"
    pool.release(a)
    assert await asyncio.wait_for(third, 1) is a, "the released endpoint is reused, none opened"
    assert len(opened_endpoints) == 2
    await pool.close()
    assert all(c.closed for c in opened_endpoints)


async def test_an_endpoint_whose_ids_are_spent_rests_and_another_is_opened() -> None:
    clock = Clock()
    opened = 0

    async def create(ledger: MessageIdLedger) -> FakeEndpoint:
        nonlocal opened
        opened += 1
        return FakeEndpoint(ledger)

    pool = EndpointPool(create, window=1, lifetime_s=247.0, max_endpoints=2, clock=clock)  # type: ignore[arg-type]
    first = await pool.acquire()
    for _ in range(MESSAGE_IDS):
        first.ledger.take()
    pool.release(first)
    second = await pool.acquire()
    assert second is not first and opened == 2
    for _ in range(MESSAGE_IDS):
        second.ledger.take()
    pool.release(second)
    # Both spent and no more endpoints allowed: the next request waits until the first IDs age out.
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.02)
    assert not waiting.done()
    clock.now += 249.0
    got = await asyncio.wait_for(waiting, 2)
    assert got in (first, second) and got.ledger.room() > 0 and opened == 2


async def test_a_retired_endpoint_is_closed_and_a_fresh_one_is_opened() -> None:
    opened_endpoints: list[FakeEndpoint] = []

    async def create(ledger: MessageIdLedger) -> FakeEndpoint:
        opened_endpoints.append(FakeEndpoint(ledger))
        return opened_endpoints[-1]

    pool = EndpointPool(create, window=1)  # type: ignore[arg-type]
    first = await pool.acquire()
    pool.retire(first)
    second = await asyncio.wait_for(pool.acquire(), 1)
    assert second is not first and len(opened_endpoints) == 2 and pool.endpoints == [second]
    await pool.close()
    assert opened_endpoints[0].closed and opened_endpoints[1].closed


async def test_take_nowait_gives_a_free_endpoint_within_the_window_and_never_opens_one() -> None:
    async def create(ledger: MessageIdLedger) -> FakeEndpoint:
        return FakeEndpoint(ledger)

    pool = EndpointPool(create, window=1)
    assert pool.take_nowait() is None, "nothing open yet: acquire() opens"
    first = await pool.acquire()
    assert pool.take_nowait() is None, "the window of 1 is in use"
    pool.release(first)
    assert pool.take_nowait() is first
    first.closed = True  # its link broke: released, it is retired instead of reused
    pool.release(first)
    assert pool.endpoints == [] and pool.take_nowait() is None
