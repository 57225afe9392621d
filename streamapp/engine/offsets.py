"""Which records may be acked: per partition, a record's offset is committed only once it and every earlier
offset of its partition were delivered or let go by the error policy.

Requests complete in any order (different resources, different partitions, a window of several), so a
record can be finished before an earlier one of its partition. Faust commits the first run of consecutive
acked offsets it knows, starting from the lowest one acked, so acking a later offset first could commit
past an earlier one still in flight. :class:`PartitionLog` therefore hands records to :class:`Acks` in
offset order only: the head of the partition's log, while it is finished.

Acked is not committed: Faust commits what was acked every ``offset.flush.interval.ms``, and a worker that
dies re-sends what was delivered since the last commit that landed. :class:`PartitionLog` therefore also
keeps how long its oldest acked-but-uncommitted record has waited for a commit (``waiting_s``); the
dispatcher pauses a partition whose records wait longer than a commit should take, so that while the
broker cannot take commits (an outage) no more is delivered than a restart will send again anyway
(docs/delivery-engine.md, "Bounded replay").
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from streamapp.engine.interfaces import Ack
from streamapp.records import RawRecord


class Tracked:
    """One record inside the engine: its Kafka coordinates, what acks it (the Faust event), and how many
    of its requests (one per statement that sends it) are not yet delivered or let go."""

    __slots__ = ("dropped", "outstanding", "partition_log", "raw", "token")

    def __init__(self, raw: RawRecord, token: Any, partition_log: PartitionLog) -> None:
        self.raw = raw
        self.token = token
        self.partition_log = partition_log
        self.outstanding = -1  # set when the record is prepared; 0 = finished
        self.dropped = False  # its partition was revoked: never acked here (the new owner reads it again)

    @property
    def finished(self) -> bool:
        return self.outstanding == 0

    def resolve(self) -> bool:
        """One of its requests is done (delivered, skipped or dead-lettered); True when it was the last."""
        if self.dropped:
            return False
        self.outstanding -= 1
        if self.outstanding == 0:
            self.partition_log.advance()
            return True
        return False


class Acks:
    """Records that may be acked, acked in the order given by one background task.

    Acking is a coroutine (``Stream.ack``); request completions are callbacks. One long-lived task does the
    acking, woken when records arrive, so a completion costs no task of its own. Each record is acked with
    its partition's ``ack`` (the stream it was read from).
    """

    def __init__(self, on_acked: Callable[[RawRecord], None]) -> None:
        self._on_acked = on_acked
        self._ready: list[Tracked] = []
        self._wake = asyncio.Event()

    def add(self, tracked: Tracked) -> None:
        self._ready.append(tracked)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await self.flush()

    async def flush(self) -> None:
        """Ack everything handed over so far."""
        self._wake.clear()
        while self._ready:
            ready, self._ready = self._ready, []
            for tracked in ready:
                await tracked.partition_log.ack(tracked.token)
                self._on_acked(tracked.raw)


class PartitionLog:
    """The records of one partition that are in the engine, in offset order, and those acked since the last
    commit that landed."""

    __slots__ = ("_acks", "_records", "_uncommitted", "ack")

    #: Acks this close together share one entry of the uncommitted log (its length stays small).
    BUCKET_S = 0.1

    def __init__(self, acks: Acks, ack: Ack) -> None:
        self._acks = acks
        #: Acks a record of this partition (the stream it was read from; renewed with each record taken).
        self.ack = ack
        self._records: deque[Tracked] = deque()
        #: [first ack time, last offset acked] per bucket, oldest first, until a commit covers it.
        self._uncommitted: deque[list[float]] = deque()

    def track(self, raw: RawRecord, token: Any) -> Tracked:
        tracked = Tracked(raw, token, self)
        self._records.append(tracked)
        return tracked

    def advance(self) -> None:
        """Hand the finished records at the head over to be acked."""
        records = self._records
        last = None
        while records and records[0].outstanding == 0:
            tracked = records.popleft()
            last = tracked.raw.offset
            self._acks.add(tracked)
        if last is not None:
            self._note_acked(last)

    def _note_acked(self, offset: int) -> None:
        now = time.monotonic()
        uncommitted = self._uncommitted
        if uncommitted and now - uncommitted[-1][0] < self.BUCKET_S:
            uncommitted[-1][1] = offset
        else:
            uncommitted.append([now, offset])

    def committed(self, next_offset: int) -> None:
        """A commit of ``next_offset`` (the next record to read) landed: what it covers no longer waits."""
        uncommitted = self._uncommitted
        while uncommitted and uncommitted[0][1] < next_offset:
            uncommitted.popleft()

    def forget_acked_before(self, moment: float) -> None:
        """Records acked before ``moment`` that a commit round starting then did not cover were not the
        consumer's to commit (at or below its committed offset): they wait for nothing."""
        uncommitted = self._uncommitted
        while uncommitted and uncommitted[0][0] < moment:
            uncommitted.popleft()

    def waiting_s(self, now: float) -> float:
        """How long the oldest record acked and not yet committed has waited (0 when none waits)."""
        return now - self._uncommitted[0][0] if self._uncommitted else 0.0

    def drop(self) -> int:
        """The partition was revoked: forget its records (none is acked now); how many were unfinished."""
        unfinished = 0
        for tracked in self._records:
            tracked.dropped = True
            unfinished += tracked.outstanding > 0
        self._records.clear()
        self._uncommitted.clear()
        return unfinished

    def __len__(self) -> int:
        return len(self._records)
