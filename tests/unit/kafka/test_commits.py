"""What a commit means, and how the engine hears of one (``streamapp/kafka/commits.py``).

Kafka's committed offset is the next record to read: Faust commits the last acked offset plus one, and
:class:`CommitMonitor` passes the offsets of each commit on to the engine as they are (the engine's partition
logs read them so: tests/unit/engine/test_offsets.py). The premise behind acking in offset order
(``streamapp/engine/offsets.py``) is Faust's own rule, checked here on its consumer's code: it commits the
first run of consecutive acked offsets it knows, so a later offset acked first would be committed past an
earlier one still in flight. If a Faust upgrade changes that rule, these tests say so.
"""

from __future__ import annotations

import time
from collections import defaultdict
from types import SimpleNamespace

from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from streamapp.kafka.commits import CommitMonitor, Committed

TOPIC_PARTITION = TP("t", 0)


def faust_commit_offset(acked: list[int], committed: int | None) -> int | None:
    """The offset Faust's consumer (``Consumer._new_offset``) would commit for partition t/0, with these
    offsets acked and ``committed`` committed before (None: nothing yet)."""
    tp = TOPIC_PARTITION
    consumer = SimpleNamespace(
        _acked=defaultdict(list, {tp: list(acked)}),
        _acked_index=defaultdict(set, {tp: set(acked)}),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None, {tp: committed}),
    )
    return Consumer._new_offset(consumer, tp)  # type: ignore[arg-type]


def test_faust_commits_the_last_acked_offset_plus_one() -> None:
    assert faust_commit_offset([0, 1, 2, 3, 4], None) == 5
    assert faust_commit_offset([5, 6], 5) == 7


def test_faust_would_commit_past_a_record_acked_out_of_order() -> None:
    """Offsets 0 and 2 acked while 1 is still in flight: Faust commits 1 (the run 0), then, at its next
    commit, 3: past offset 1, which a crash would then lose. So the engine never acks 2 before 1."""
    assert faust_commit_offset([0, 2], None) == 1
    assert faust_commit_offset([2], 1) == 3


class Listener:
    def __init__(self) -> None:
        self.commits: list[Committed] = []
        self.rounds: list[float] = []

    def committed(self, offsets: Committed) -> None:
        self.commits.append(offsets)

    def commit_round_over(self, started_at: float) -> None:
        self.rounds.append(started_at)


def test_the_monitor_passes_each_commit_on_as_the_next_offset_to_read() -> None:
    monitor = CommitMonitor()
    listener = Listener()
    monitor.listener = listener
    monitor.on_tp_commit({TP("t", 0): 5, TP("u", 2): 1})
    assert listener.commits == [{("t", 0): 5, ("u", 2): 1}]
    assert monitor.tp_committed_offsets == {TP("t", 0): 5, TP("u", 2): 1}, "Faust's own figures are kept"


def test_the_monitor_tells_when_a_commit_round_began_once_it_is_over() -> None:
    monitor = CommitMonitor()
    listener = Listener()
    monitor.listener = listener
    before = time.monotonic()
    state = monitor.on_commit_initiated(consumer=None)  # type: ignore[arg-type]
    after = time.monotonic()
    assert listener.rounds == []
    monitor.on_commit_completed(None, state)  # type: ignore[arg-type]
    (started_at,) = listener.rounds
    assert before <= started_at <= after
    assert len(monitor.commit_latency) == 1, "Faust's own commit latency is still measured"


def test_without_a_listener_the_monitor_is_faust_s_own() -> None:
    monitor = CommitMonitor()
    monitor.on_tp_commit({TP("t", 0): 3})
    monitor.on_commit_completed(None, monitor.on_commit_initiated(None))  # type: ignore[arg-type]
    assert monitor.tp_committed_offsets == {TP("t", 0): 3}
