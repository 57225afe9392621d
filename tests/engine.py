"""The delivery engine (``streamapp/dispatch.py``) without Faust: records are given to the intake as the
agent gives them, tokens are the records' positions in the list, and ``deliver`` waits (with a deadline) until
every record is acked or the engine stopped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from streamapp.coap.sender import CoapSender, RequestOptions
from streamapp.codecs import Codecs, build_codecs
from streamapp.dead_letter import DeadLetters
from streamapp.dispatch import Dispatcher
from streamapp.errors import WorkerStopped
from streamapp.handler import Failures
from streamapp.intake import Intake
from streamapp.kcql import parse_kcql
from streamapp.offsets import Acks
from streamapp.pipeline import MAX_PAYLOAD, Route, TopicPipeline
from streamapp.policy import ErrorPolicy
from streamapp.records import RawRecord
from streamapp.stats import Stats


class Sleeps:
    """A clock that does not wait: records the retry intervals asked for."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


@dataclass
class Delivered:
    """``acked[i]``: record i was acked; ``order``: the tokens in the order they were acked."""

    acked: list[bool]
    order: list[int]
    stop: WorkerStopped | None = None


@dataclass
class Engine:
    dispatcher: Dispatcher
    intake: Intake
    pipelines: dict[str, TopicPipeline]
    stats: Stats
    sleeps: Sleeps
    acked: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        async def ack(token: int) -> None:
            self.acked.append(token)

        self.acks = Acks(lambda raw: self.stats.acked(raw.topic, raw.partition, raw.offset))
        self.acks.bind(ack)  # type: ignore[arg-type]

    async def deliver(self, raws: Sequence[RawRecord], timeout: float = 30.0) -> Delivered:
        """Submit these records, tokens 0..n-1 (so a second call's tokens start at 0 again)."""
        start = len(self.acked)
        acks = self.acks
        for i, raw in enumerate(raws):
            await self.intake.take(self.pipelines[raw.topic], raw, i, acks)
        deadline = time.monotonic() + timeout
        while not self._settled(raws, start):
            if time.monotonic() > deadline:
                raise TimeoutError(f"engine not settled within {timeout}s: acked {self.acked[start:]}")
            await acks.flush()
            await asyncio.sleep(0.005)
        if self.dispatcher.stopped is not None:
            await self.dispatcher.drain(5.0)
        await acks.flush()
        order = self.acked[start:]
        done = set(order)
        return Delivered([i in done for i in range(len(raws))], order, self.dispatcher.stopped)

    def _settled(self, raws: Sequence[RawRecord], start: int) -> bool:
        if self.dispatcher.stopped is not None:
            return self.dispatcher.in_flight == 0
        return self.dispatcher.pending == 0 and self.dispatcher.in_flight == 0


def engine(
    kcql: str,
    sender: CoapSender,
    policy: ErrorPolicy | None = None,
    dead_letters: DeadLetters | None = None,
    *,
    codecs: Codecs | None = None,
    defaults: RequestOptions | None = None,
    max_payload: int = MAX_PAYLOAD,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    commit_interval_s: float | None = None,
) -> Engine:
    statements = parse_kcql(kcql)
    stats = Stats.for_statements(statements)
    defaults = defaults or RequestOptions(timeout_s=5.0, max_inflight=sender.window)
    routes = [Route.compile(s, defaults) for s in statements]
    codecs = codecs or build_codecs("json", "auto")
    pipelines = {
        topic: TopicPipeline(
            [r for r in routes if r.statement.source == topic], codecs, stats, max_payload=max_payload
        )
        for topic in dict.fromkeys(s.source for s in statements)
    }
    sleeps = Sleeps()
    failures = Failures(policy or ErrorPolicy("THROW"), stats, dead_letters, sleep=sleep or sleeps)
    dispatcher = Dispatcher(
        sender,
        failures,
        stats,
        window=sender.window,
        max_payload=max_payload,
        commit_interval_s=commit_interval_s,
    )
    return Engine(dispatcher, Intake(dispatcher, failures), pipelines, stats, sleeps)
