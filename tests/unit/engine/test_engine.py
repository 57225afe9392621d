"""The engine's intake (``DeliveryEngine.take`` in ``streamapp/engine/engine.py``, preparing with
``pipeline.py``): the agent waits while the engine is full; a record that cannot be prepared goes to the error
policy and, let go, is acked in its place in the partition, not before the records ahead of it; and a
revocation while records are in flight or waiting to be taken leaves them to the partition's new owner.

On fakes (``tests/fakes.py``): :class:`HeldSender` holds each request until the test answers it, so what is
in flight at each step is exactly what the test says. Dispatch's own rules (lanes, the window, batches):
test_dispatch.py; the offset rules alone: test_offsets.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace

from structlog.testing import capture_logs

from streamapp.codecs import Codecs, build_codecs
from streamapp.engine.policy import ErrorPolicy
from streamapp.errors import DecodeError
from streamapp.records import RawRecord, RecordCoordinates
from tests.engine import engine
from tests.fakes import FakeSender, HeldSender

KCQL = "INSERT INTO r SELECT n FROM t"


def raw(offset: int, partition: int = 0, value: bytes | None = None) -> RawRecord:
    n = offset + 100 * partition
    return RawRecord("t", partition, offset, None, value or json.dumps({"n": n}).encode(), (), None)


async def turns(n: int = 10) -> None:
    """Let the loop run what is ready (requests submitted, answers settled, acks flushed)."""
    for _ in range(n):
        await asyncio.sleep(0)


def in_flight(sender: HeldSender) -> list[int]:
    return sorted(body["n"] for _, bodies, _, _ in sender.held for body in bodies)


def answer(sender: HeldSender, n: int, ok: bool = True) -> None:
    """Answer the request in flight that carries record ``n``."""
    (future,) = [f for _, bodies, f, _ in sender.held if any(b["n"] == n for b in bodies)]
    future.set_result(ok)


def sent(sender: HeldSender) -> list[int]:
    return [body["n"] for _, bodies in sender.sent for body in bodies]


class Gate:
    """A retry clock that waits until the test opens it."""

    def __init__(self) -> None:
        self.waiting = 0
        self._open = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waiting += 1
        await self._open.wait()

    def open(self) -> None:
        self._open.set()


def registry_down_for(offset: int, times: int) -> Codecs:
    """JSON values, except that the record at ``offset`` fails ``times`` times as with a schema registry that
    is down (a retriable DecodeError)."""
    plain = build_codecs("json", "auto")
    left = [times]

    def value(data: bytes, where: RecordCoordinates) -> object:
        if where.offset == offset and left[0] > 0:
            left[0] -= 1
            raise DecodeError(where, "schema registry unreachable", retriable=True)
        return plain.value(data, where)

    return replace(plain, value=value)


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(wait(), timeout)


# --- a full engine --------------------------------------------------------------------------------------


async def test_the_intake_waits_while_the_engine_is_full_and_goes_on_when_a_record_finishes() -> None:
    sender = HeldSender(window=1)
    e = engine(KCQL, sender, max_pending=2)
    await e.take(raw(0), 0)
    await e.take(raw(1), 1)
    third = asyncio.ensure_future(e.take(raw(2), 2))
    await turns()
    assert not third.done(), "a third record was taken while two were inside an engine that holds two"
    assert e.dispatch.pending == 2 and in_flight(sender) == [0]
    answer(sender, 0)
    await asyncio.wait_for(third, 1)
    assert e.dispatch.pending == 2, "record 0 left, record 2 came in"
    await turns()
    answer(sender, 1)
    await turns()
    answer(sender, 2)
    await turns()
    await e.engine.acks.flush()
    assert e.acked == [0, 1, 2] and sent(sender) == [0, 1, 2] and e.dispatch.pending == 0


async def test_a_record_waiting_for_room_when_the_worker_stops_is_not_taken() -> None:
    sender = HeldSender(window=1)
    e = engine(KCQL, sender, max_pending=1)
    await e.take(raw(0), 0)
    waiting = asyncio.ensure_future(e.take(raw(1), 1))
    await turns()
    assert not waiting.done()
    stopping = asyncio.ensure_future(e.engine.stop())
    await asyncio.wait_for(waiting, 1)  # returns at once: the stop takes nothing new
    assert not stopping.done(), "the stop gives record 0's request its grace"
    answer(sender, 0)
    await asyncio.wait_for(stopping, 1)
    assert sent(sender) == [0] and e.acked == [0]
    assert e.commits == [[0]], "what was delivered is acked before the stop's commit"


# --- a record that cannot be prepared -------------------------------------------------------------------


async def test_an_undecodable_record_let_go_is_acked_in_its_place_not_before_the_records_ahead() -> None:
    sender = HeldSender(window=1)
    e = engine(KCQL, sender, ErrorPolicy("NOOP"))
    with capture_logs() as lines:
        await e.take(raw(0), 0)
        await e.take(raw(1, value=b"{oops"), 1)
        await e.take(raw(2), 2)
        await turns()
    assert in_flight(sender) == [0]
    await e.engine.acks.flush()
    assert e.acked == [], "record 1 (let go) was acked while record 0 was in flight"
    (skipped,) = [line for line in lines if line["event"] == "record.skipped"]
    assert (skipped["topic"], skipped["partition"], skipped["offset"]) == ("t", 0, 1)
    assert skipped["statements"] == (1,) and skipped["why"].startswith("connect.coap.error.policy=NOOP: ")
    assert e.stats.records_skipped == 1
    answer(sender, 0)
    await turns()
    await e.engine.acks.flush()
    assert e.acked == [0, 1] and in_flight(sender) == [2]
    answer(sender, 2)
    await turns()
    await e.engine.acks.flush()
    assert e.acked == [0, 1, 2] and sent(sender) == [0, 2], "the undecodable record was sent"


async def test_an_undecodable_record_under_throw_stops_the_engine_and_nothing_from_it_on_is_acked() -> None:
    fake = FakeSender()
    e = engine(KCQL, fake)
    result = await e.deliver([raw(0), raw(1, value=b"{oops"), raw(2)])
    assert result.acked == [True, False, False]
    assert result.stop is not None
    assert str(result.stop).startswith("connect.coap.error.policy=THROW: record t/0@1: invalid JSON")
    assert [json.loads(r.payload)["n"] for r in fake.requests] == [0]
    assert await asyncio.wait_for(e.engine.stopped(), 1) is result.stop


# --- revocation -----------------------------------------------------------------------------------------


async def test_a_record_prepared_again_under_retry_is_not_taken_once_its_partition_was_revoked() -> None:
    """Record 1's preparation fails (the registry is down) and waits out the retry interval; meanwhile the
    partition is revoked. Prepared again, it is not taken: the new owner reads it from the commit."""
    gate = Gate()
    fake = FakeSender()
    e = engine(
        KCQL,
        fake,
        ErrorPolicy("RETRY", max_retries=5, retry_interval_s=1.0),
        codecs=registry_down_for(offset=1, times=1),
        sleep=gate,
    )
    await e.deliver([raw(0)])
    taking = asyncio.ensure_future(e.take(raw(1), 1))
    await until(lambda: gate.waiting == 1)
    await asyncio.wait_for(e.engine.revoke({("t", 0)}), 1)
    assert e.commits == [[0]]
    gate.open()
    await asyncio.wait_for(taking, 1)
    await e.engine.acks.flush()
    assert [json.loads(r.payload)["n"] for r in fake.requests] == [0] and e.acked == [0]
    assert e.dispatch.pending == 0
    # Kafka assigns the partition again (here or elsewhere): the record is read again from the commit.
    again = await e.deliver([raw(1)])
    assert again.acked == [True] and [json.loads(r.payload)["n"] for r in fake.requests] == [0, 1]


async def test_a_record_waiting_for_room_is_not_taken_once_its_partition_was_revoked() -> None:
    sender = HeldSender(window=1)
    e = engine(KCQL, sender, max_pending=1)
    await e.take(raw(0), 0)
    waiting = asyncio.ensure_future(e.take(raw(1), 1))
    await turns()
    revoking = asyncio.ensure_future(e.engine.revoke({("t", 0)}))
    await turns()
    assert not revoking.done() and not waiting.done()
    answer(sender, 0)  # lands within the grace
    await asyncio.wait_for(revoking, 1)
    await asyncio.wait_for(waiting, 1)
    await turns()
    assert e.commits == [[0]] and e.acked == [0]
    assert sent(sender) == [0] and sender.held == [], "a record of the revoked partition was sent"
    assert e.dispatch.pending == 0


async def test_a_revoked_partitions_unanswered_request_is_forgotten_and_a_late_answer_acks_nothing() -> None:
    sender = HeldSender(window=2)
    e = engine(KCQL, sender, grace_s=0.05)
    await e.take(raw(0, partition=0), 0)
    await e.take(raw(0, partition=1), 1)
    await turns()
    assert in_flight(sender) == [0, 100] and e.dispatch.pending == 2
    with capture_logs() as lines:
        await asyncio.wait_for(e.engine.revoke({("t", 0)}), 1)
    (line,) = [line for line in lines if line["event"] == "engine.revoked_in_flight"]
    assert line["partitions"] == ["t/0"] and line["grace_s"] == 0.05
    assert e.commits == [[]], "nothing of partition 0 was delivered: nothing to commit"
    assert e.dispatch.pending == 1, "partition 0's record is forgotten; partition 1's is still inside"
    answer(sender, 0)  # the late answer
    answer(sender, 100)
    await turns()
    await e.engine.acks.flush()
    assert e.acked == [1], "the revoked partition's record was acked after its revocation"
    assert e.dispatch.pending == 0
