"""A response that matches no request in flight is the WARNING ``coap.unmatched_response`` with the details,
at most one line per interval (exchange.py's UnmatchedLog; the endpoint's own reports are proven against
real peers in tests/integration/test_exchange_rules.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from streamapp.coap import exchange
from streamapp.coap.exchange import UnmatchedLog, code_text


@pytest.fixture(autouse=True)
def uncached_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``capture_logs`` sees the exchange layer's lines even when an earlier test configured structlog to
    cache each logger on first use (streamapp.logs does): a fresh, uncached logger for each test."""
    monkeypatch.setattr(exchange, "log", structlog.get_logger("streamapp.coap"))
    cached = structlog.get_config()["cache_logger_on_first_use"]
    structlog.configure(cache_logger_on_first_use=False)
    yield
    structlog.configure(cache_logger_on_first_use=cached)


def test_an_unmatched_response_is_a_warning_naming_mid_token_and_code() -> None:
    with capture_logs() as logs:
        UnmatchedLog().report("127.0.0.1:5683", 4711, b"\x0a\x0b".hex(), code_text(0x44))
    (line,) = logs
    assert line["log_level"] == "warning" and line["event"] == "coap.unmatched_response"
    assert (line["remote"], line["mid"], line["token"], line["code"]) == (
        "127.0.0.1:5683",
        4711,
        "0a0b",
        "2.04 Changed",
    )


def test_a_flood_of_unmatched_responses_is_one_line_per_interval_counting_the_rest(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(exchange.time, "monotonic", lambda: clock[0])
    flood = UnmatchedLog()
    with capture_logs() as logs:
        for _ in range(500):
            flood.report("127.0.0.1:5683", 1, "", code_text(0x45))
        clock[0] += exchange.UNMATCHED_LINE_INTERVAL_S
        flood.report("127.0.0.1:5683", 1, "", code_text(0x45))
    assert [line["suppressed_since_last_line"] for line in logs] == [0, 499]
