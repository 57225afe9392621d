"""The delivery engine (``streamapp/engine/``) without Faust: records are handed over as the agent hands
them, tokens are the records' positions in the list, and ``deliver`` waits (with a deadline) until every
record is acked or the engine stopped. With a fake sender (``tests/fakes.py``) nothing opens a socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamapp.coap.request_options import RequestOptions
from streamapp.codecs import Codecs, build_codecs
from streamapp.engine import DeliveryEngine
from streamapp.engine.dead_letters import DeadLetters
from streamapp.engine.dispatch import Dispatcher
from streamapp.engine.failures import Failures
from streamapp.engine.interfaces import Sender
from streamapp.engine.pipeline import MAX_PAYLOAD, Route, TopicPipeline
from streamapp.engine.policy import ErrorPolicy
from streamapp.engine.replies import Replies
from streamapp.engine.stats import Stats
from streamapp.errors import WorkerStopped
from streamapp.kcql import parse_kcql
from streamapp.records import RawRecord


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
    engine: DeliveryEngine
    pipelines: dict[str, TopicPipeline]
    stats: Stats
    sleeps: Sleeps
    acked: list[int] = field(default_factory=list)
    #: What had been acked at each commit the engine asked for.
    commits: list[list[int]] = field(default_factory=list)

    async def ack(self, token: Any) -> None:
        self.acked.append(token)

    @property
    def dispatch(self) -> Dispatcher:
        return self.engine.dispatch

    async def take(self, raw: RawRecord, token: int) -> None:
        await self.engine.take(raw, token, self.ack)

    async def deliver(self, raws: Sequence[RawRecord], timeout: float = 30.0) -> Delivered:
        """Hand over these records, tokens 0..n-1 (so a second call's tokens start at 0 again)."""
        start = len(self.acked)
        for i, raw in enumerate(raws):
            await self.take(raw, i)
        deadline = time.monotonic() + timeout
        while not self._settled():
            if time.monotonic() > deadline:
                raise TimeoutError(f"engine not settled within {timeout}s: acked {self.acked[start:]}")
            await self.engine.acks.flush()
            await asyncio.sleep(0.005)
        if self.engine.stop_reason is not None:
            await self.dispatch.drain(5.0)
        await self.engine.acks.flush()
        order = self.acked[start:]
        done = set(order)
        return Delivered([i in done for i in range(len(raws))], order, self.engine.stop_reason)

    def _settled(self) -> bool:
        if self.engine.stop_reason is not None:
            return self.dispatch.in_flight.total == 0
        return self.dispatch.pending == 0 and self.dispatch.in_flight.total == 0


def engine(
    kcql: str,
    sender: Sender,
    policy: ErrorPolicy | None = None,
    dead_letters: DeadLetters | None = None,
    *,
    codecs: Codecs | None = None,
    defaults: RequestOptions | None = None,
    max_payload: int = MAX_PAYLOAD,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    commit_interval_s: float | None = None,
    replies: Replies | None = None,
    max_pending: int | None = None,
    grace_s: float = 5.0,
) -> Engine:
    """The engine for ``kcql`` on ``sender``: THROW unless ``policy`` says otherwise, a retry clock that does
    not wait (``sleep`` to hold it), at most ``max_pending`` records inside before the intake waits, and
    ``grace_s`` for requests in flight when partitions are revoked or the engine stops."""
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
    commits: list[list[int]] = []
    acked: list[int] = []

    async def commit() -> None:
        commits.append(list(acked))

    delivery = DeliveryEngine(
        pipelines,
        sender,
        failures,
        stats,
        window=sender.window,
        grace_s=grace_s,
        commit=commit,
        max_payload=max_payload,
        commit_interval_s=commit_interval_s,
        replies=replies,
        max_pending=max_pending,
    )
    return Engine(delivery, pipelines, stats, sleeps, acked, commits)
