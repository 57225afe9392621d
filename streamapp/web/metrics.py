"""``/metrics``: the same numbers as the stats page, in Prometheus' text format, via ``prometheus-client``.

A custom collector reads :class:`~streamapp.engine.stats.Stats` at scrape time, so the metrics can never
disagree with ``/coap/stats.json``. Each app has its own registry (tests build several apps in one process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from streamapp.engine.stats import LATENCY_BUCKETS, StatementStats, Stats

LABELS = ("statement", "topic", "resource")
COUNTERS = (
    ("records_delivered", "delivered", "Records delivered (2.xx response)."),
    ("requests_failed", "failed", "Requests that got no 2.xx response (every attempt counts)."),
    ("records_retried", "retried", "Retries under connect.coap.error.policy=RETRY."),
    ("records_skipped", "skipped", "Records skipped under NOOP after a failed delivery."),
    ("records_dead_lettered", "dead_lettered", "Records written to the dead-letter topic."),
    ("replies", "replies", "Reply records produced to the reply topic (one per CoAP response)."),
)


class StatsCollector(Collector):
    def __init__(
        self,
        stats: Stats,
        lag: Callable[[], Mapping[tuple[str, int], int | None]],
        tasks: Callable[[], int] | None = None,
        endpoints: Callable[[], int] | None = None,
    ) -> None:
        self._stats = stats
        self._lag = lag
        self._tasks = tasks
        self._endpoints = endpoints

    def collect(self) -> Iterator[Metric]:
        statements = list(self._stats.statements.values())

        def labels(s: StatementStats) -> list[str]:
            return [str(s.statement), s.source, s.resource]

        for name, attribute, doc in COUNTERS:
            counter = CounterMetricFamily(f"streamapp_{name}", doc, labels=LABELS)
            for s in statements:
                counter.add_metric(labels(s), getattr(s, attribute))
            yield counter
        in_flight = GaugeMetricFamily(
            "streamapp_records_in_flight", "Records in requests awaiting a response.", labels=LABELS
        )
        for s in statements:
            in_flight.add_metric(labels(s), s.in_flight)
        yield in_flight
        latency = HistogramMetricFamily(
            "streamapp_delivery_latency_seconds", "Time from request to 2.xx response.", labels=LABELS
        )
        for s in statements:
            cumulative, buckets = 0, []
            for bound, count in zip(LATENCY_BUCKETS, s.latency_buckets, strict=True):
                cumulative += count
                buckets.append((repr(bound), cumulative))
            buckets.append(("+Inf", s.latency_count))
            latency.add_metric(labels(s), buckets, s.latency_sum)
        yield latency
        servers = list(self._stats.servers.values())
        for name, attribute, doc in (
            ("server_requests_delivered", "delivered", "Requests a CoAP server answered 2.xx."),
            ("server_requests_failed", "failed", "Requests to a CoAP server without a 2.xx answer."),
        ):
            counter = CounterMetricFamily(f"streamapp_{name}", doc, labels=("server",))
            for entry in servers:
                counter.add_metric([entry.server], getattr(entry, attribute))
            yield counter
        server_flight = GaugeMetricFamily(
            "streamapp_server_requests_in_flight",
            "Requests awaiting a CoAP server's answer.",
            labels=("server",),
        )
        for entry in servers:
            server_flight.add_metric([entry.server], entry.in_flight)
        yield server_flight
        lag = GaugeMetricFamily(
            "streamapp_consumer_lag", "Records in the partition not yet acked.", labels=("topic", "partition")
        )
        for (topic, partition), value in sorted(self._lag().items()):
            if value is not None:
                lag.add_metric([topic, str(partition)], value)
        yield lag
        for name, value, doc in (
            (
                "records_retried_undecodable",
                self._stats.records_retried,
                "Records prepared again under RETRY before any statement (a schema registry that is down).",
            ),
            (
                "records_skipped_undecodable",
                self._stats.records_skipped,
                "Records skipped before any statement.",
            ),
            (
                "records_dead_lettered_undecodable",
                self._stats.records_dead_lettered,
                "Undecodable records dead-lettered.",
            ),
            (
                "tombstones_skipped",
                self._stats.tombstones_skipped,
                "Tombstones skipped (connect.coap.tombstone=skip).",
            ),
            (
                "commit_waits",
                self._stats.commit_waits,
                "Times a partition paused because its delivered records waited too long for a commit.",
            ),
        ):
            yield CounterMetricFamily(f"streamapp_{name}", doc, value=value)
        yield GaugeMetricFamily(
            "streamapp_partitions_waiting_for_commit",
            "Partitions sending nothing until a commit lands (the broker takes no commits).",
            value=len(self._stats.waiting_for_commit),
        )
        yield GaugeMetricFamily(
            "streamapp_uptime_seconds", "Seconds since the worker started.", value=self._stats.uptime_s
        )
        if self._endpoints is not None:
            yield GaugeMetricFamily(
                "streamapp_coap_endpoints",
                "CoAP source endpoints open (sockets or DTLS sessions), at most the window + 64 per server; "
                "beyond the window they rest until their Message IDs age out.",
                value=self._endpoints(),
            )
        if self._tasks is not None:
            yield GaugeMetricFamily(
                "streamapp_asyncio_tasks",
                "Tasks alive on the worker's event loop (flat under steady load; growth is a leak).",
                value=self._tasks(),
            )


def metrics_registry(
    stats: Stats,
    lag: Callable[[], Mapping[tuple[str, int], int | None]],
    tasks: Callable[[], int] | None = None,
    endpoints: Callable[[], int] | None = None,
) -> CollectorRegistry:
    """The worker's metrics, and the process' own (resident memory, open file descriptors, CPU: the
    figures a leak shows in) from prometheus-client's process collector."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StatsCollector(stats, lag, tasks, endpoints))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
