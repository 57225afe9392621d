"""One chunk of records through the pipeline and the error policy: which records may be acked, or why the
worker must stop.

This is the agent's loop body, kept free of Faust so it can be tested with a pipeline and a fake clock. A
retried record holds its topic's agent (so its partition, and the topic's other partitions, wait): later
records of its partition are never acked past it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from streamapp.dead_letter import DeadLetters
from streamapp.logs import get_logger
from streamapp.pipeline import RawRecord, RecordPipeline
from streamapp.policy import Decision, ErrorPolicy, WorkerStopped, reason, record_fields, throw
from streamapp.stats import Stats

log = get_logger("streamapp.policy")


@dataclass(frozen=True)
class Handled:
    """``acked[i]``: record i may be acked (delivered, skipped or dead-lettered); ``stop``: the worker must
    stop (its records not acked stay uncommitted)."""

    acked: list[bool]
    stop: WorkerStopped | None = None


class RecordHandler:
    def __init__(
        self,
        pipeline: RecordPipeline,
        policy: ErrorPolicy,
        stats: Stats,
        dead_letters: DeadLetters | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.pipeline = pipeline
        self.policy = policy
        self.stats = stats
        self.dead_letters = dead_letters
        self._sleep = sleep

    async def handle(self, raws: Sequence[RawRecord]) -> Handled:
        acked = [False] * len(raws)
        index_of = {raw.where: i for i, raw in enumerate(raws)}
        pending = list(range(len(raws)))
        attempts, last_failed = 0, None
        while pending:
            outcome = await self.pipeline.deliver([raws[i] for i in pending])
            for i, delivered in zip(pending, outcome.delivered, strict=True):
                acked[i] = acked[i] or delivered
            if outcome.error is None:
                break
            assert outcome.failed_at is not None
            where, error = outcome.failed_at, outcome.error
            if where != last_failed:
                attempts, last_failed = 0, where
            decision = self.policy.decide(error, attempts)
            fields = {**record_fields(error, where), "statement": outcome.statement}
            if decision is Decision.STOP:
                self._track_positions(raws, acked)
                return Handled(
                    acked, throw(error, where, self.policy.describe_stop(attempts), outcome.statement)
                )
            if decision is Decision.RETRY:
                attempts += 1
                self._count(outcome.statement, "retried")
                log.warning(
                    f"retry {attempts}/{self.policy.max_retries} in {self.policy.retry_interval_s:g} s "
                    f"(connect.coap.error.policy=RETRY): {reason(error)}",
                    **fields,
                )
                await self._sleep(self.policy.retry_interval_s)
            else:
                raw = raws[index_of[where]]
                if decision is Decision.DEAD_LETTER:
                    assert self.dead_letters is not None
                    await self.dead_letters.send(raw, error, outcome.statement)
                    self._count(outcome.statement, "dead_lettered")
                    log.warning(
                        f"sent to dead-letter topic {self.dead_letters.topic}: {reason(error)}", **fields
                    )
                else:
                    self._count(outcome.statement, "skipped")
                    log.warning(f"skipped (connect.coap.error.policy=NOOP): {reason(error)}", **fields)
                self.pipeline.forget(where)
                acked[index_of[where]] = True
            pending = [i for i in pending if not acked[i]]
        self._track_positions(raws, acked)
        return Handled(acked)

    def _track_positions(self, raws: Sequence[RawRecord], acked: list[bool]) -> None:
        for raw, done in zip(raws, acked, strict=True):
            if done:
                self.stats.acked(raw.topic, raw.partition, raw.offset)

    def _count(self, statement: int | None, counter: str) -> None:
        if statement is not None:
            entry = self.stats.statements[statement]
            setattr(entry, counter, getattr(entry, counter) + 1)
        elif counter == "skipped":
            self.stats.records_skipped += 1
        elif counter == "dead_lettered":
            self.stats.records_dead_lettered += 1
