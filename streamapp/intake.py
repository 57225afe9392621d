"""Step 3 of a record's way (docs/architecture.md): a raw record from the agent becomes its requests, one
per statement, before the dispatcher sees it.

``Intake.take`` waits while the engine is full, prepares the record (``TopicPipeline``: decode, select,
render) and hands the result over. A record that cannot be prepared goes to the error policy here: a
retriable failure (a schema registry that is down) is prepared again under RETRY, holding this topic's
intake; a record the policy lets go (NOOP, dead letter) is handed over with no request, so that it is
acked in its partition's order; a stop is handed over as the stop. Nothing here calls back into the agent,
and the dispatcher never calls back into the intake.
"""

from __future__ import annotations

from typing import Any

from streamapp.dispatch import Dispatcher
from streamapp.errors import WorkerStopped
from streamapp.handler import Failures
from streamapp.offsets import Acks
from streamapp.pipeline import Prepared, TopicPipeline
from streamapp.policy import Decision
from streamapp.records import RawRecord


class Intake:
    def __init__(self, dispatcher: Dispatcher, failures: Failures) -> None:
        self._dispatcher = dispatcher
        self._failures = failures

    async def take(self, pipeline: TopicPipeline, raw: RawRecord, token: Any, acks: Acks) -> None:
        """One record, in its partition's offset order; returns once the dispatcher has it (or it is not
        taken: the engine stops, or its partition was revoked meanwhile and is read again)."""
        dispatcher = self._dispatcher
        generation = dispatcher.generation
        await dispatcher.room()
        if dispatcher.halted:
            return
        outcome = await self._prepare(pipeline, raw)
        dispatcher.take(raw, outcome, token, acks, generation)

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
                if self._dispatcher.halted:
                    return None
