"""Stats arithmetic behind the page and /metrics: rate windows, percentiles, histogram buckets, last error."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from streamapp.errors import DeliveryError
from streamapp.kcql import parse_kcql
from streamapp.metrics import metrics_registry, render
from streamapp.records import RecordCoordinates
from streamapp.stats import HISTORY_S, SPARK_BAR_S, DeliveryRate, Stats


def test_rate_over_the_last_minute_and_ten_second_bars() -> None:
    rate = DeliveryRate()
    now = 1_800_000_000.0
    for second in range(120):  # 2 minutes at 3 records/s
        rate.add(3, now=now - 119 + second)
    assert rate.per_second(now=now) == 3.0
    bars = rate.bars(now=now)
    assert len(bars) == HISTORY_S // SPARK_BAR_S
    assert bars[-12:-1] == [3.0] * 11 and bars[:40] == [0.0] * 40


def test_history_is_bounded() -> None:
    rate = DeliveryRate()
    for second in range(5 * HISTORY_S):
        rate.add(1, now=1_800_000_000.0 + second)
    assert len(rate.seconds) <= HISTORY_S


def test_percentiles_buckets_and_last_error() -> None:
    stats = Stats.for_statements(parse_kcql("INSERT INTO r SELECT * FROM t"))
    entry = stats.statements[1]
    for ms in range(1, 101):
        entry.record_delivery(1, ms / 1000)
    assert entry.percentiles(0.5, 0.99) == (0.051, 0.1)
    where = RecordCoordinates("t", 2, 9)
    entry.record_failure(DeliveryError(where, "4.04 Not Found", resource="r", code="4.04", retriable=False))
    snap = entry.snapshot()
    assert snap["last_error"]["record"] == "t/2@9" and snap["last_error"]["code"] == "4.04"
    assert (snap["delivered"], snap["failed"]) == (100, 1)

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
