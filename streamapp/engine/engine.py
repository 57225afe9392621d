"""The delivery engine: the one owner of a record's life, from the agent's hand-over to its ack and commit,
as aiokafka's consumer owns its fetcher, coordinator and subscription state (docs/delivery-engine.md).

Three entry points, each called from one place, and nothing that calls back up:

- :meth:`DeliveryEngine.take` (the agent, per record): waits while the engine is full, prepares the
  record (``pipeline.py``: decode, select, render; a failure goes to the error policy here: prepared again
  under RETRY, handed over with no request when let go, or the stop) and hands it to dispatch
  (``dispatch.py``: lanes, the window, batches, resends). Delivered records are acked in offset order per
  partition (``offsets.py``) by one acks task.
- :meth:`DeliveryEngine.revoke` (the rebalance listener): what is in flight of the revoked partitions gets
  the stop grace to land, what was delivered is acked and committed, the rest is forgotten (its new owner
  reads it again).
- :meth:`DeliveryEngine.stop` (the app's stop): nothing new is sent, the requests in flight get the grace,
  what was delivered is acked and committed; the rest is read again by the next worker.

A record read under one assignment and handed over after a revocation is not taken: each record is read
under an :class:`Assignment` whose ``active`` turns false when partitions are revoked, and Kafka's new
assignment reads it again from the commit.

When the error policy stops the engine (THROW, RETRY exhausted) it stops sending and resolves
:meth:`stopped`, which the app awaits to stop the worker (``streamapp/app.py``): the engine itself only
ever calls what it was handed (:class:`~streamapp.engine.interfaces.Sender`, ``Ack``, ``Commit``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from streamapp.engine.dispatch import Dispatcher
from streamapp.engine.failures import Failures
from streamapp.engine.interfaces import Ack, Commit, Sender
from streamapp.engine.offsets import Acks
from streamapp.engine.pipeline import MAX_PAYLOAD, Prepared, TopicPipeline
from streamapp.engine.policy import Decision
from streamapp.engine.replies import Replies
from streamapp.engine.stats import Stats
from streamapp.errors import WorkerStopped
from streamapp.records import RawRecord, RecordCoordinates


class Assignment:
    """The partitions the worker holds now; ``active`` turns false when any of them is revoked, so a record
    read before that is not taken after it (it is read again)."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = True


async def _no_commit() -> None:
    return None


class DeliveryEngine:
    def __init__(
        self,
        pipelines: Mapping[str, TopicPipeline],
        sender: Sender,
        failures: Failures,
        stats: Stats,
        *,
        window: int,
        grace_s: float,
        commit: Commit = _no_commit,
        max_payload: int = MAX_PAYLOAD,
        max_pending: int | None = None,
        commit_interval_s: float | None = None,
        replies: Replies | None = None,
    ) -> None:
        """``pipelines``: each source topic's compiled statements; ``grace_s``: how long requests in flight
        may take to land when the worker stops or partitions are revoked; ``commit``: commits what was
        acked; ``commit_interval_s``: the commit cadence (bounded replay: docs/delivery-engine.md);
        ``replies``: produces the reply records of statements with a reply topic (docs/replies.md)."""
        self.pipelines = pipelines
        self._failures = failures
        self._stats = stats
        self._grace_s = grace_s
        self._commit = commit
        self.acks = Acks(lambda raw: stats.acked(raw.topic, raw.partition, raw.offset))
        self.dispatch = Dispatcher(
            sender,
            failures,
            stats,
            self.acks,
            window=window,
            max_payload=max_payload,
            max_pending=max_pending,
            on_stop=self._stopped_by_policy,
            commit_interval_s=commit_interval_s,
            replies=replies,
        )
        self._assignment = Assignment()
        self._acker: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[WorkerStopped] | None = None
        self._stopping: asyncio.Task[None] | None = None

    # --- what the probes and the stats page read --------------------------------------------------------

    @property
    def stop_reason(self) -> WorkerStopped | None:
        """Why the error policy stopped the engine, or None."""
        return self.dispatch.stopped

    @property
    def stopping(self) -> bool:
        """Sending nothing new: the worker stops (or the policy stopped the engine)."""
        return self.dispatch.halted

    def retrying(self) -> list[tuple[RecordCoordinates, int]]:
        """(first record, resends so far) of each request held by RETRY."""
        return self.dispatch.retrying()

    # --- the record path ----------------------------------------------------------------------------------

    async def take(self, raw: RawRecord, token: Any, ack: Ack) -> None:
        """One record, in its partition's offset order (``token`` is what ``ack`` acks: its Faust event);
        returns once dispatch has it, or it is not taken (the engine stops, or its partition was revoked
        meanwhile and is read again)."""
        if self._acker is None:
            self._acker = asyncio.ensure_future(self.acks.run())
        assignment = self._assignment
        dispatch = self.dispatch
        await dispatch.room()
        if dispatch.halted:
            return
        outcome = await self._prepare(self.pipelines[raw.topic], raw)
        if not assignment.active and not isinstance(outcome, WorkerStopped):
            return
        dispatch.take(raw, outcome, token, ack)

    async def _prepare(self, pipeline: TopicPipeline, raw: RawRecord) -> Prepared | WorkerStopped | None:
        """The record's requests; with none when the policy let it go; the stop; or None when the engine
        halted while the record waited to be prepared again."""
        attempts = 0
        while True:
            try:
                if pipeline.prefetches:
                    await pipeline.prefetch((raw,))
                return pipeline.prepare(raw)
            except Exception as exc:  # the record's own failure (or a bug): the policy decides
                decision = await self._failures.handle(
                    exc, (raw,), None, attempts, tuple(r.statement.index for r in pipeline.routes)
                )
                if isinstance(decision, WorkerStopped):
                    return decision
                if decision is not Decision.RETRY:
                    return pipeline.nothing(raw)  # let go (skipped or dead-lettered, and logged)
                attempts += 1
                await self._failures.wait_to_retry()
                if self.dispatch.halted:
                    return None

    # --- commits (Faust's monitor tells them: streamapp/kafka/commits.py) -----------------------------------

    def committed(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.dispatch.committed(offsets)

    def commit_round_over(self, started_at: float) -> None:
        self.dispatch.commit_round_over(started_at)

    # --- rebalancing and stopping -------------------------------------------------------------------------

    async def revoke(self, partitions: set[tuple[str, int]]) -> None:
        """These partitions go to another worker: land what is in flight of them within the grace, ack and
        commit what was delivered, forget the rest."""
        self._assignment.active = False
        self._assignment = Assignment()
        await self.dispatch.land(partitions, self._grace_s)
        await self._ack_and_commit()
        self.dispatch.forget(partitions)

    async def stop(self) -> None:
        """Send nothing new; give the requests in flight the grace, then ack and commit what was delivered.
        Shared by every caller: the grace runs once."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        await self.dispatch.drain(self._grace_s)
        await self._ack_and_commit()
        if self._acker is not None:
            self._acker.cancel()

    async def _ack_and_commit(self) -> None:
        await self.acks.flush()
        await self._commit()

    def _stopped_by_policy(self, reason: WorkerStopped) -> None:
        self._stopped_future().set_result(reason)

    def _stopped_future(self) -> asyncio.Future[WorkerStopped]:
        if self._stopped is None:
            self._stopped = asyncio.get_running_loop().create_future()
        return self._stopped

    async def stopped(self) -> WorkerStopped:
        """Wait until the error policy stops the engine; the reason."""
        return await asyncio.shield(self._stopped_future())
