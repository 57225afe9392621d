"""Which commits landed, for the delivery engine's bounded replay (docs/delivery-engine.md).

Faust commits acked offsets on its own timer and tells its sensors about each commit round: it is about
to commit (``on_commit_initiated``), these offsets were committed (``on_tp_commit``, the hook its
Prometheus, statsd and Datadog monitors use), the round is over (``on_commit_completed``). A round that
cannot reach the broker does not end: aiokafka retries it until it lands, and only then do the hooks
fire, which is what the engine waits for. :class:`CommitMonitor` is Faust's monitor with these passed on
to a :class:`CommitListener` (the dispatcher), in the app's loop.

It also keeps none of the per-record figures Faust's monitor collects (messages in and out, events per
stream, each partition's end offset): nothing of streamapp reads them (the stats page, ``/metrics`` and the
lag are ``streamapp/engine/stats.py``'s and the consumer's), and they cost a few dictionary updates and clock
reads for every record (docs/delivery-engine.md, "Where the time goes").

Faust also calls ``on_tp_commit`` when the commit came back refused because the group moved on (the worker
is about to lose those partitions in the rebalance it has not seen yet): the engine then goes on for that
short while, as it did before a commit could pause it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol

from faust.sensors import Monitor
from faust.types import TP

from streamapp.patches.faust import created_consumer

#: (topic, partition) -> the next offset to read, as committed.
Committed = Mapping[tuple[str, int], int]


class CommitListener(Protocol):
    def committed(self, offsets: Committed) -> None:
        """These offsets were committed."""

    def commit_round_over(self, started_at: float) -> None:
        """A commit round that began at ``started_at`` (``time.monotonic()``) is over: whatever was acked
        before it and is not committed now was not Faust's to commit."""


class CommitMonitor(Monitor):
    """Faust's monitor (``faust.App(Monitor=CommitMonitor)``), telling ``listener`` about each commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listener: CommitListener | None = None

    # Per record: nothing kept (see the module docstring).
    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: TP, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: TP, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_message_out(self, tp: TP, offset: int, message: Any) -> None:
        return None

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        return None

    def on_commit_initiated(self, consumer: Any) -> Any:
        return (super().on_commit_initiated(consumer), time.monotonic())

    def on_tp_commit(self, tp_offsets: MutableMapping[TP, int]) -> None:
        super().on_tp_commit(tp_offsets)
        if self.listener is not None:
            self.listener.committed({(tp.topic, tp.partition): offset for tp, offset in tp_offsets.items()})

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        own, started_at = state
        super().on_commit_completed(consumer, own)
        if self.listener is not None:
            self.listener.commit_round_over(started_at)


def faust_commit(app: Any) -> Callable[[], Awaitable[object]]:
    """The engine's ``Commit``: Faust's consumer commits what was acked. Before the worker started there is
    no consumer (``app.consumer`` would create one: ``created_consumer`` does not) and nothing to commit."""

    async def commit() -> object:
        consumer = created_consumer(app)
        if consumer is None:
            return False
        return await consumer.commit()

    return commit
