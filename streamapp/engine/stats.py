"""Delivery counters per KCQL statement, read by the stats page, ``/coap/stats.json`` and ``/metrics``.

Only the event loop thread touches these, so plain integers are exact without locks. Besides counters a
statement keeps the last ten minutes of deliveries per second (records/s over the last minute and the
sparkline), the latencies of its recent requests (p50/p99) and cumulative latency buckets (the Prometheus
histogram), all bounded in memory.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from streamapp.errors import DeliveryError, RecordError, StreamappError
from streamapp.kcql import Statement

#: Upper bounds (seconds) of the delivery-latency histogram buckets; +Inf is implied.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Seconds of per-second delivery counts kept (the sparkline shows them in 10 s bars).
HISTORY_S = 600
SPARK_BAR_S = 10
#: Recent latencies kept for the percentiles.
LATENCY_SAMPLES = 2048


@dataclass
class DeliveryRate:
    """Deliveries per wall-clock second over the last ``HISTORY_S`` seconds."""

    seconds: deque[tuple[int, int]] = field(default_factory=deque)  # (unix second, deliveries)

    def add(self, count: int, now: float | None = None) -> None:
        second = int(time.time() if now is None else now)
        if self.seconds and self.seconds[-1][0] == second:
            self.seconds[-1] = (second, self.seconds[-1][1] + count)
        else:
            self.seconds.append((second, count))
        while self.seconds and self.seconds[0][0] <= second - HISTORY_S:
            self.seconds.popleft()

    def per_second(self, window_s: int = 60, now: float | None = None) -> float:
        since = int(time.time() if now is None else now) - window_s
        return sum(c for s, c in self.seconds if s > since) / window_s

    def bars(self, now: float | None = None) -> list[float]:
        """Records/s in each ``SPARK_BAR_S`` bar of the history, oldest first (the bar in progress last)."""
        end = int(time.time() if now is None else now) // SPARK_BAR_S
        count = HISTORY_S // SPARK_BAR_S
        totals = [0] * count
        for second, deliveries in self.seconds:
            slot = second // SPARK_BAR_S - (end - count + 1)
            if 0 <= slot < count:
                totals[slot] += deliveries
        return [round(t / SPARK_BAR_S, 2) for t in totals]


@dataclass
class StatementStats:
    statement: int
    source: str
    resource: str
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    #: Reply records produced to the statement's reply topic (docs/replies.md).
    replies: int = 0
    in_flight: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_error_record: str | None = None  # topic/partition@offset
    last_error_code: str | None = None
    rate: DeliveryRate = field(default_factory=DeliveryRate)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_count: int = 0
    latency_sum: float = 0.0

    def record_delivery(self, records: int, seconds: float) -> None:
        """One request (``records`` records: more than one for a batch) answered 2.xx after ``seconds``."""
        self.delivered += records
        self.rate.add(records)
        self.latencies.append(seconds)
        self.latency_count += 1
        self.latency_sum += seconds
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if index < len(LATENCY_BUCKETS):
            self.latency_buckets[index] += 1

    def record_failure(self, error: BaseException) -> None:
        self.failed += 1
        self.last_error = str(error)
        self.last_error_at = time.time()
        self.last_error_record = str(error.where) if isinstance(error, RecordError) else None
        self.last_error_code = error.code if isinstance(error, DeliveryError) else None

    def percentiles(self, *fractions: float) -> tuple[float | None, ...]:
        """Latencies at these fractions of the recent sample (one sort for all of them)."""
        if not self.latencies:
            return tuple(None for _ in fractions)
        ordered = sorted(self.latencies)
        return tuple(ordered[min(len(ordered) - 1, int(f * len(ordered)))] for f in fractions)

    def snapshot(self) -> dict[str, Any]:
        p50, p99 = self.percentiles(0.50, 0.99)
        return {
            "statement": self.statement,
            "source": self.source,
            "resource": self.resource,
            "delivered": self.delivered,
            "failed": self.failed,
            "retried": self.retried,
            "skipped": self.skipped,
            "dead_lettered": self.dead_lettered,
            "replies": self.replies,
            "in_flight": self.in_flight,
            "records_per_s_1m": round(self.rate.per_second(), 2),
            "latency_ms_p50": None if p50 is None else round(p50 * 1000, 2),
            "latency_ms_p99": None if p99 is None else round(p99 * 1000, 2),
            "rate_history": self.rate.bars(),
            "last_error": None
            if self.last_error is None
            else {
                "message": self.last_error,
                "at": self.last_error_at,
                "record": self.last_error_record,
                "code": self.last_error_code,
            },
        }


@dataclass
class ServerStats:
    """One CoAP server's requests (docs/addressing.md): a statement may address many servers."""

    server: str
    delivered: int = 0  # requests answered 2.xx (a batch is one request)
    failed: int = 0
    in_flight: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "delivered": self.delivered,
            "failed": self.failed,
            "in_flight": self.in_flight,
        }


class RequestFigures:
    """The figures one request changes, from when it is sent until it is answered or fails."""

    __slots__ = ("_records", "_server", "_started", "_statement")

    def __init__(self, statement: StatementStats, server: ServerStats, records: int) -> None:
        self._statement, self._server, self._records = statement, server, records
        statement.in_flight += records
        server.in_flight += 1
        self._started = time.perf_counter()

    def ended(self) -> None:
        """No longer in flight (answered, failed or cancelled)."""
        self._statement.in_flight -= self._records
        self._server.in_flight -= 1

    def delivered(self) -> None:
        self._server.delivered += 1
        self._statement.record_delivery(self._records, time.perf_counter() - self._started)

    def failed(self, error: BaseException) -> None:
        """Counted for the server whatever the error; for the statement when it is one of ours (a
        record's error, with the record named as the last error)."""
        self._server.failed += 1
        if isinstance(error, StreamappError):
            self._statement.record_failure(error)


#: How many servers the stats keep apart; requests to more are counted under OTHER_SERVERS (a template
#: over the hosts of a fleet must not grow the stats, the page or the metrics without bound).
MAX_SERVERS = 256
OTHER_SERVERS = "(other servers)"


@dataclass
class Stats:
    started_at: float = field(default_factory=time.time)
    statements: dict[int, StatementStats] = field(default_factory=dict)
    #: The worker's own server (``connect.coap.uri``): where requests of statements without one go.
    default_server: str = ""
    servers: dict[str, ServerStats] = field(default_factory=dict)
    tombstones_skipped: int = 0
    #: Records that failed before reaching any statement (undecodable, unselectable): prepared again under
    #: RETRY (a schema registry that is down), or let go by the policy.
    records_retried: int = 0
    records_skipped: int = 0
    records_dead_lettered: int = 0
    #: (topic, partition) -> the next offset to be acked (everything before it was delivered or let go).
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Partitions paused until a commit lands (docs/delivery-engine.md, "Bounded replay"), and how many
    #: times one paused.
    waiting_for_commit: set[tuple[str, int]] = field(default_factory=set)
    commit_waits: int = 0

    def acked(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        if offset + 1 > self.positions.get(key, -1):
            self.positions[key] = offset + 1

    # The counters change here only, through these methods (docs/architecture.md, "Seeing it").

    def request(self, statement: int, server: str | None, records: int) -> RequestFigures:
        """A request of ``statement`` carrying ``records`` records sent to ``server`` (None: the worker's)."""
        return RequestFigures(self.statements[statement], self.server(server), records)

    def retried(self, statement: int | None) -> None:
        """The error policy sends a record of ``statement`` again; ``statement`` None: it prepares again a
        record that failed before reaching any statement (a schema registry that is down)."""
        if statement is None:
            self.records_retried += 1
        else:
            self.statements[statement].retried += 1

    def skipped(self, statement: int | None) -> None:
        """The error policy let one record go (NOOP); ``statement`` None: it failed before reaching any
        statement (undecodable, unselectable)."""
        if statement is None:
            self.records_skipped += 1
        else:
            self.statements[statement].skipped += 1

    def dead_lettered(self, statement: int | None) -> None:
        """One record went to the dead-letter topic (``statement`` as for :meth:`skipped`)."""
        if statement is None:
            self.records_dead_lettered += 1
        else:
            self.statements[statement].dead_lettered += 1

    def replied(self, statement: int) -> None:
        """One reply record reached the statement's reply topic."""
        self.statements[statement].replies += 1

    def tombstone_skipped(self) -> None:
        self.tombstones_skipped += 1

    def commit_overdue(self, partition: tuple[str, int]) -> None:
        """The dispatcher paused ``partition``: its delivered records wait too long for a commit."""
        self.waiting_for_commit.add(partition)
        self.commit_waits += 1

    def commit_landed(self, partition: tuple[str, int]) -> None:
        """``partition`` goes on: a commit landed (or it was revoked)."""
        self.waiting_for_commit.discard(partition)

    def server(self, uri: str | None) -> ServerStats:
        """The figures of ``uri`` (None: the worker's own server)."""
        name = self.default_server if uri is None else uri
        entry = self.servers.get(name)
        if entry is None:
            if len(self.servers) >= MAX_SERVERS:
                name = OTHER_SERVERS
                entry = self.servers.get(name)
            if entry is None:
                entry = self.servers[name] = ServerStats(name)
        return entry

    @classmethod
    def for_statements(cls, statements: tuple[Statement, ...], default_server: str = "") -> Stats:
        return cls(
            statements={s.index: StatementStats(s.index, s.source, s.resource) for s in statements},
            default_server=default_server,
        )

    @property
    def uptime_s(self) -> float:
        return time.time() - self.started_at

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_s": round(self.uptime_s, 3),
            "tombstones_skipped": self.tombstones_skipped,
            "records_retried": self.records_retried,
            "records_skipped": self.records_skipped,
            "records_dead_lettered": self.records_dead_lettered,
            "partitions_waiting_for_commit": sorted(f"{t}/{p}" for t, p in self.waiting_for_commit),
            "commit_waits": self.commit_waits,
            "statements": [s.snapshot() for s in self.statements.values()],
            "servers": [s.snapshot() for s in self.servers.values()],
        }
