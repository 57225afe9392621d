"""Stats arithmetic (``streamapp/engine/stats.py``) behind the page and ``/metrics``: rate windows,
percentiles, last error, per-statement and per-server counts. How ``/metrics`` renders them:
tests/unit/web/test_metrics.py."""

from __future__ import annotations

from streamapp.engine.stats import HISTORY_S, SPARK_BAR_S, DeliveryRate, Stats
from streamapp.errors import DeliveryError
from streamapp.kcql import parse_kcql
from streamapp.records import RecordCoordinates


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


def test_percentiles_and_last_error() -> None:
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


def test_a_request_changes_its_statement_and_server_from_send_to_answer() -> None:
    stats = Stats.for_statements(
        parse_kcql("INSERT INTO r SELECT * FROM t; INSERT INTO s SELECT * FROM t"), default_server="coap://a"
    )
    batch = stats.request(1, None, 5)
    single = stats.request(2, "coap://b", 1)
    assert (stats.statements[1].in_flight, stats.server(None).in_flight) == (5, 1)
    assert stats.server("coap://b").in_flight == 1
    batch.ended()
    batch.delivered()
    single.ended()
    single.failed(RuntimeError("not a record's error"))  # counted for the server only
    again = stats.request(2, "coap://b", 1)
    again.ended()
    where = RecordCoordinates("t", 0, 3)
    again.failed(DeliveryError(where, "timeout", resource="s", code=None, retriable=True))
    one, two = stats.statements[1], stats.statements[2]
    assert (one.in_flight, one.delivered, one.failed, one.latency_count) == (0, 5, 0, 1)
    assert (two.in_flight, two.delivered, two.failed, two.last_error_record) == (0, 0, 1, "t/0@3")
    a, b = stats.server(None), stats.server("coap://b")
    assert (a.in_flight, a.delivered, a.failed) == (0, 1, 0)
    assert (b.in_flight, b.delivered, b.failed) == (0, 0, 2)


def test_policy_outcomes_count_per_statement_or_for_the_worker() -> None:
    stats = Stats.for_statements(parse_kcql("INSERT INTO r SELECT * FROM t"))
    stats.retried(1)
    stats.retried(None)
    stats.skipped(1)
    stats.skipped(None)
    stats.dead_lettered(1)
    stats.dead_lettered(None)
    stats.dead_lettered(None)
    stats.tombstone_skipped()
    entry = stats.statements[1]
    assert (entry.retried, entry.skipped, entry.dead_lettered) == (1, 1, 1)
    snap = stats.snapshot()
    worker = ("records_retried", "records_skipped", "records_dead_lettered", "tombstones_skipped")
    assert tuple(snap[k] for k in worker) == (1, 1, 2, 1)
