"""Which records are acked, and when (``streamapp/engine/offsets.py``): per partition, in offset order only,
whatever order their requests finish in; a gap in the offsets (a compacted topic) holds nothing back; a
record of a revoked partition is never acked, even when its answer comes late; and a commit covers a
record when it names the record's offset plus one, as Kafka's committed offset is the next record to read.

Here the partition log is driven by hand: a record is tracked as dispatch tracks it (its number of requests
set when it is prepared) and resolved once per request. The engine over the same rules, with requests
completing in random orders: test_dispatch_rules.py.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streamapp.engine import offsets
from streamapp.engine.offsets import Acks, PartitionLog, Tracked
from streamapp.records import RawRecord


def raw(offset: int, partition: int = 0) -> RawRecord:
    return RawRecord("t", partition, offset, None, b"{}", (), None)


class Acked:
    """The tokens an ``ack`` was called with, in order (a token is its record's offset here), and the offsets
    ``Acks`` reported as acked."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.reported: list[int] = []

    async def ack(self, token: int) -> None:
        self.tokens.append(token)

    def on_acked(self, record: RawRecord) -> None:
        self.reported.append(record.offset)


class Clock:
    """Stands in for ``time`` in offsets.py only (asyncio's own clock is left alone)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(offsets, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def partition_log(acked: Acked) -> tuple[Acks, PartitionLog]:
    acks = Acks(acked.on_acked)
    return acks, PartitionLog(acks, acked.ack)


def track(log: PartitionLog, offsets_: list[int], requests: int = 1) -> dict[int, Tracked]:
    """Track these records in this order, each prepared with ``requests`` requests."""
    tracked = {}
    for offset in offsets_:
        tracked[offset] = log.track(raw(offset), offset)
        tracked[offset].outstanding = requests
    return tracked


def finish(log: PartitionLog, tracked: dict[int, Tracked], *done: int) -> None:
    for offset in done:
        tracked[offset].resolve()


async def test_records_finished_out_of_order_are_acked_in_offset_order() -> None:
    acked = Acked()
    acks, log = partition_log(acked)
    tracked = track(log, [0, 1, 2, 3, 4])
    finish(log, tracked, 3, 1, 4)
    await acks.flush()
    assert acked.tokens == [], "a later record was acked while offset 0 was in flight"
    assert len(log) == 5
    finish(log, tracked, 0)
    await acks.flush()
    assert acked.tokens == [0, 1], "offset 2 is in flight: 3 and 4 wait for it"
    finish(log, tracked, 2)
    await acks.flush()
    assert acked.tokens == [0, 1, 2, 3, 4]
    assert acked.reported == [0, 1, 2, 3, 4]
    assert len(log) == 0


async def test_a_record_is_finished_when_its_last_request_is_resolved() -> None:
    acked = Acked()
    acks, log = partition_log(acked)
    (record,) = track(log, [0], requests=2).values()
    assert record.resolve() is False
    await acks.flush()
    assert acked.tokens == [] and not record.finished
    assert record.resolve() is True
    await acks.flush()
    assert acked.tokens == [0] and record.finished


async def test_a_gap_in_the_offsets_holds_nothing_back() -> None:
    """A compacted topic's offsets skip (2-4 and 6-8 were compacted away): the log orders the records it
    was handed, it does not wait for offsets that will never come."""
    acked = Acked()
    acks, log = partition_log(acked)
    tracked = track(log, [0, 1, 5, 9])
    finish(log, tracked, 9, 5, 1)
    await acks.flush()
    assert acked.tokens == []
    finish(log, tracked, 0)
    await acks.flush()
    assert acked.tokens == [0, 1, 5, 9]


async def test_a_revoked_partitions_records_are_dropped_and_a_late_answer_acks_nothing() -> None:
    acked = Acked()
    acks, log = partition_log(acked)
    tracked = track(log, [0, 1, 2, 3])
    finish(log, tracked, 0, 2)
    await acks.flush()
    assert acked.tokens == [0]
    assert log.drop() == 2, "1 and 3 were unfinished (2 was finished, waiting for 1)"
    assert len(log) == 0 and all(tracked[o].dropped for o in (1, 2, 3))
    assert tracked[1].resolve() is False and tracked[3].resolve() is False  # the late answers
    await acks.flush()
    assert acked.tokens == [0], "a record of a revoked partition was acked: its new owner reads it again"


async def test_acks_go_through_the_ack_the_partition_has_now() -> None:
    """Each record taken renews its partition's ``ack`` (the stream it was read from): a record is acked
    through the one the partition has when it is acked."""
    first, second = Acked(), Acked()
    acks, log = partition_log(first)
    tracked = track(log, [0, 1])
    finish(log, tracked, 0)
    await acks.flush()
    log.ack = second.ack
    finish(log, tracked, 1)
    await acks.flush()
    assert (first.tokens, second.tokens) == ([0], [1])


async def test_the_acks_task_acks_what_is_handed_over_without_a_flush() -> None:
    acked = Acked()
    acks, log = partition_log(acked)
    task = asyncio.ensure_future(acks.run())
    try:
        tracked = track(log, [0, 1])
        finish(log, tracked, 1, 0)
        for _ in range(5):
            await asyncio.sleep(0)
        assert acked.tokens == [0, 1]
    finally:
        task.cancel()


def test_a_commit_covers_a_record_when_it_names_its_offset_plus_one(clock: Clock) -> None:
    """Kafka's committed offset is the next record to read: offsets 0-4 acked are committed as 5. A commit of
    4 leaves offset 4 waiting (it would be read again)."""
    acked = Acked()
    _, log = partition_log(acked)
    tracked = track(log, [0, 1, 2, 3, 4])
    finish(log, tracked, 0, 1, 2, 3, 4)
    clock.now += 7
    assert log.waiting_s(clock.now) == 7
    log.committed(4)
    assert log.waiting_s(clock.now) == 7, "a commit of 4 covered offset 4"
    log.committed(5)
    assert log.waiting_s(clock.now) == 0


def test_the_wait_is_the_oldest_uncommitted_acks(clock: Clock) -> None:
    acked = Acked()
    _, log = partition_log(acked)
    tracked = track(log, [0, 1, 2, 3])
    finish(log, tracked, 0, 1)  # acked at 1000
    clock.now += 1
    finish(log, tracked, 2, 3)  # acked at 1001
    clock.now += 4
    assert log.waiting_s(clock.now) == 5
    log.committed(2)  # covers 0 and 1
    assert log.waiting_s(clock.now) == 4
    log.committed(3)  # 3 still waits, and with it the acks of its moment
    assert log.waiting_s(clock.now) == 4
    log.committed(4)
    assert log.waiting_s(clock.now) == 0


def test_acks_before_a_commit_round_that_did_not_cover_them_wait_for_nothing(clock: Clock) -> None:
    """Records acked before a commit round began and not covered by it were not the consumer's to commit
    (at or below what it had committed): ``forget_acked_before`` stops counting their wait."""
    acked = Acked()
    _, log = partition_log(acked)
    tracked = track(log, [0, 1])
    finish(log, tracked, 0)  # acked at 1000
    clock.now += 1
    finish(log, tracked, 1)  # acked at 1001
    clock.now += 1
    log.forget_acked_before(1000.5)
    assert log.waiting_s(clock.now) == 1
    log.forget_acked_before(clock.now)
    assert log.waiting_s(clock.now) == 0
