"""``/metrics`` (``streamapp/web/metrics.py``) renders what ``Stats`` holds at scrape time, in Prometheus'
text format: the latency histogram's buckets, the per-statement counters with their labels, the worker's own
counts, and the process figures. The arithmetic itself: tests/unit/engine/test_stats.py."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from streamapp.engine.stats import Stats
from streamapp.kcql import parse_kcql
from streamapp.web.metrics import metrics_registry, render


def one_statement() -> Stats:
    return Stats.for_statements(parse_kcql("INSERT INTO r SELECT * FROM t"))


def samples(stats: Stats) -> dict[str, float]:
    text = render(metrics_registry(stats, dict)).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_latency_buckets_and_delivered_records_per_statement() -> None:
    stats = one_statement()
    for ms in range(1, 101):
        stats.statements[1].record_delivery(1, ms / 1000)
    families = {
        f.name: f for f in text_string_to_metric_families(render(metrics_registry(stats, dict)).decode())
    }
    latency = {
        s.labels["le"]: s.value
        for s in families["streamapp_delivery_latency_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert latency["0.01"] == 10 and latency["0.1"] == 100 and latency["+Inf"] == 100
    delivered = families["streamapp_records_delivered"].samples[0]
    assert delivered.value == 100 and delivered.labels == {"statement": "1", "topic": "t", "resource": "r"}


def test_the_worker_counts_agree_with_stats_json() -> None:
    stats = one_statement()
    stats.retried(None)
    stats.skipped(None)
    stats.dead_lettered(None)
    stats.dead_lettered(None)
    stats.retried(1)  # the statement's own: not counted as an undecodable record's
    snap = stats.snapshot()
    worker = tuple(snap[f"records_{m}"] for m in ("retried", "skipped", "dead_lettered"))
    got = samples(stats)
    metric = tuple(
        got[f"streamapp_records_{m}_undecodable_total"] for m in ("retried", "skipped", "dead_lettered")
    )
    assert worker == metric == (1, 1, 2)
    assert got["streamapp_records_retried_total"] == 1


def test_metrics_carry_the_process_figures_and_the_task_count() -> None:
    stats = one_statement()
    text = render(metrics_registry(stats, dict, lambda: 17)).decode()
    got = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert got["streamapp_asyncio_tasks"] == 17
    assert got["process_resident_memory_bytes"] > 0 and got["process_open_fds"] > 0
