"""Bounded replay (docs/delivery-engine.md): a partition whose delivered records wait longer than a commit
takes sends nothing more until a commit lands, so a broker outage replays about one commit interval."""

from __future__ import annotations

import asyncio
import json
import time

from streamapp.engine.dispatch import commit_overdue_s
from streamapp.engine.offsets import Acks, PartitionLog
from streamapp.records import RawRecord
from tests.engine import engine
from tests.fakes import FakeSender

TOPIC = "readings"
#: Overdue after 0.05 + 0.5 s.
INTERVAL_S = 0.05


class CountingSender(FakeSender):
    """Answers every request at once; ``sent``: the records' ``n`` in the order they were sent."""

    def __init__(self) -> None:
        super().__init__(window=4)

    @property
    def sent(self) -> list[int]:
        return [json.loads(r.payload)["n"] for r in self.requests]


def raw(n: int, partition: int = 0) -> RawRecord:
    return RawRecord(TOPIC, partition, n, None, json.dumps({"n": n}).encode(), (), 0)


async def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_overdue_is_the_interval_and_half_again_at_least_half_a_second() -> None:
    assert commit_overdue_s(1.0) == 1.5
    assert commit_overdue_s(60.0) == 90.0
    assert commit_overdue_s(0.1) == 0.6


def test_a_partition_log_measures_the_wait_of_its_oldest_uncommitted_record() -> None:
    async def ack(token: object) -> None:
        return None

    log = PartitionLog(Acks(lambda raw: None), ack)
    for n in range(3):
        log.track(raw(n), n).outstanding = 0
    log.advance()
    now = time.monotonic()
    assert 0 <= log.waiting_s(now) < 1
    assert log.waiting_s(now + 5) >= 5
    log.committed(2)  # offsets 0 and 1 committed, 2 still waits
    assert log.waiting_s(now + 5) >= 5
    log.committed(3)
    assert log.waiting_s(now + 5) == 0


async def test_a_partition_without_commits_pauses_and_a_landed_commit_resumes_it() -> None:
    sender = CountingSender()
    e = engine(f"INSERT INTO r SELECT n FROM {TOPIC}", sender, commit_interval_s=INTERVAL_S)
    await e.deliver([raw(n) for n in range(5)])
    assert sender.sent == [0, 1, 2, 3, 4]
    await wait_for(lambda: (TOPIC, 0) in e.stats.waiting_for_commit)
    for n in range(5, 8):
        await e.take(raw(n), n)
    await asyncio.sleep(0.2)
    assert sender.sent == [0, 1, 2, 3, 4], "a paused partition sent a request"
    assert e.stats.commit_waits == 1 and e.stats.snapshot()["partitions_waiting_for_commit"] == ["readings/0"]
    e.engine.committed({(TOPIC, 0): 5})
    await wait_for(lambda: sender.sent == list(range(8)))
    assert not e.stats.waiting_for_commit


async def test_partitions_whose_commits_land_go_on_while_another_waits() -> None:
    sender = CountingSender()
    e = engine(f"INSERT INTO r SELECT n FROM {TOPIC}", sender, commit_interval_s=INTERVAL_S)
    await e.deliver([raw(0, partition=0), raw(1, partition=1)])
    deadline = time.monotonic() + commit_overdue_s(INTERVAL_S) * 3
    while time.monotonic() < deadline:  # partition 1's commits keep landing, partition 0's never do
        e.engine.committed({(TOPIC, 1): 2})
        await asyncio.sleep(0.05)
    assert e.stats.waiting_for_commit == {(TOPIC, 0)}
    await e.take(raw(2, partition=1), 2)
    await e.take(raw(10, partition=0), 3)
    await wait_for(lambda: 2 in sender.sent)
    await asyncio.sleep(0.1)
    assert 10 not in sender.sent, "the waiting partition sent its next record"


async def test_without_a_commit_interval_nothing_pauses() -> None:
    sender = CountingSender()
    e = engine(f"INSERT INTO r SELECT n FROM {TOPIC}", sender)
    await e.deliver([raw(n) for n in range(3)])
    await asyncio.sleep(commit_overdue_s(INTERVAL_S) + 0.2)
    await e.deliver([raw(n) for n in range(3, 6)])
    assert sender.sent == list(range(6))
