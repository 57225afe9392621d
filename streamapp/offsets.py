"""Which records may be acked: per partition, a record's offset is committed only once it and every earlier
offset of its partition were delivered or let go by the error policy.

Requests complete in any order (different resources, different partitions, a window of several), so a
record can be finished before an earlier one of its partition. Faust commits the first run of consecutive
acked offsets it knows, starting from the lowest one acked, so acking a later offset first could commit
past an earlier one still in flight. :class:`PartitionLog` therefore hands records to :class:`Acks` in
offset order only: the head of the partition's log, while it is finished.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

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
    """Records of one agent's stream that may be acked, acked in the order given by a background task.

    ``Stream.ack`` is a coroutine; request completions are callbacks. One long-lived task per agent does
    the acking, woken when records arrive, so a completion costs no task of its own.
    """

    def __init__(self, on_acked: Callable[[RawRecord], None]) -> None:
        self._ack: Callable[[Any], Awaitable[object]] | None = None
        self._on_acked = on_acked
        self._ready: list[Tracked] = []
        self._wake = asyncio.Event()

    def bind(self, ack: Callable[[Any], Awaitable[object]]) -> None:
        """What acks a record's token (the agent's ``stream.ack``, known once its stream runs)."""
        self._ack = ack

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
        if self._ack is None:
            return  # not bound to a stream yet: kept until it is
        while self._ready:
            ready, self._ready = self._ready, []
            for tracked in ready:
                await self._ack(tracked.token)
                self._on_acked(tracked.raw)


class PartitionLog:
    """The records of one partition that are in the engine, in offset order."""

    __slots__ = ("_acks", "_records")

    def __init__(self, acks: Acks) -> None:
        self._acks = acks
        self._records: deque[Tracked] = deque()

    def track(self, raw: RawRecord, token: Any) -> Tracked:
        tracked = Tracked(raw, token, self)
        self._records.append(tracked)
        return tracked

    def advance(self) -> None:
        """Hand the finished records at the head over to be acked."""
        records = self._records
        while records and records[0].outstanding == 0:
            self._acks.add(records.popleft())

    def drop(self) -> int:
        """The partition was revoked: forget its records (none is acked now); how many were unfinished."""
        unfinished = 0
        for tracked in self._records:
            tracked.dropped = True
            unfinished += tracked.outstanding > 0
        self._records.clear()
        return unfinished

    def __len__(self) -> int:
        return len(self._records)
