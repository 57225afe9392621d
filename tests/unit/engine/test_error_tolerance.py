"""Kafka Connect's error keys: ``errors.tolerance`` as the error policy, ``errors.log.enable`` and
``errors.log.include.messages`` on the failure lines (checked with structlog's ``capture_logs``)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from streamapp.config.settings import Settings
from streamapp.engine.failures import MESSAGE_TEXT_LIMIT, Failures
from streamapp.engine.policy import Decision, ErrorPolicy
from streamapp.engine.stats import Stats
from streamapp.errors import ConfigError, DecodeError, DeliveryError, WorkerStopped
from streamapp.kcql import parse_kcql
from streamapp.records import RawRecord

BASE = {"connect.coap.uri": "coap://127.0.0.1", "connect.coap.kcql": "INSERT INTO r SELECT * FROM t"}


def load(**given: str) -> Settings:
    return Settings.from_mapping({**BASE, **given})


@pytest.mark.parametrize(("tolerance", "policy"), [("all", "NOOP"), ("none", "THROW"), ("ALL", "NOOP")])
def test_tolerance_is_read_as_the_error_policy(tolerance: str, policy: str) -> None:
    assert load(**{"errors.tolerance": tolerance}).error_policy == policy


def test_tolerance_and_a_policy_that_agree_are_fine() -> None:
    s = load(**{"errors.tolerance": "all", "connect.coap.error.policy": "NOOP"})
    assert s.error_policy == "NOOP"


@pytest.mark.parametrize(("tolerance", "policy"), [("all", "THROW"), ("all", "RETRY"), ("none", "NOOP")])
def test_tolerance_and_a_policy_that_disagree_name_both_keys(tolerance: str, policy: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(**{"errors.tolerance": tolerance, "connect.coap.error.policy": policy})
    assert info.value.key == "errors.tolerance" and "connect.coap.error.policy" in str(info.value)


def test_without_tolerance_the_policy_is_streamapps_own_default() -> None:
    assert load().error_policy == "THROW"


def failures(**kwargs: bool) -> Failures:
    statements = parse_kcql(BASE["connect.coap.kcql"])
    return Failures(ErrorPolicy("NOOP"), Stats.for_statements(statements), **kwargs)


def record(value: bytes) -> RawRecord:
    return RawRecord("t", 2, 41, b"device-7", value, (), None)


async def test_skips_are_logged_by_default_with_their_coordinates() -> None:
    handler = failures()
    with capture_logs() as lines:
        decision = await handler.handle(DecodeError(record(b"{").where, "bad"), [record(b"{")], 1, 0)
    assert decision is Decision.SKIP
    (line,) = lines
    assert line["event"] == "record.skipped" and line["log_level"] == "warning"
    assert (line["topic"], line["partition"], line["offset"], line["statement"]) == ("t", 2, 41, 1)
    assert "record_key" not in line and "record_value" not in line
    assert handler.stats.statements[1].skipped == 1


async def test_errors_log_enable_false_counts_without_a_line() -> None:
    handler = failures(log_records=False)
    with capture_logs() as lines:
        await handler.handle(DecodeError(record(b"{").where, "bad"), [record(b"{")], 1, 0)
    assert lines == []
    assert handler.stats.statements[1].skipped == 1


async def test_include_messages_adds_key_and_clipped_value() -> None:
    handler = failures(include_messages=True)
    big = b"x" * (MESSAGE_TEXT_LIMIT + 10)
    with capture_logs() as lines:
        await handler.handle(DecodeError(record(big).where, "bad"), [record(big)], 1, 0)
    (line,) = lines
    assert line["record_key"] == "device-7"
    assert line["record_value"].startswith("x" * MESSAGE_TEXT_LIMIT)
    assert line["record_value"].endswith(f"... ({MESSAGE_TEXT_LIMIT + 10} bytes)")


@pytest.mark.parametrize(
    ("policy", "attempts", "event", "level"),
    [
        ("NOOP", 0, "record.skipped", "warning"),
        ("RETRY", 0, "record.retry", "warning"),
        ("RETRY", 20, "worker.stopping", "error"),  # retries exhausted
        ("THROW", 0, "worker.stopping", "error"),
    ],
)
async def test_every_failure_line_names_statement_record_resource_and_code(
    policy: str, attempts: int, event: str, level: str
) -> None:
    """The promise of docs/running.md ("Logs"): each failure line carries
    statement/topic/partition/offset/resource/code, under a constant event name (the reason is a field, never
    part of the event)."""
    statements = parse_kcql(BASE["connect.coap.kcql"])
    handler = Failures(ErrorPolicy(policy), Stats.for_statements(statements))
    raw = record(b"{}")
    error = DeliveryError(raw.where, "coap://h/r answered 5.03", resource="r", code="5.03", retriable=True)
    with capture_logs() as lines:
        outcome = await handler.handle(error, [raw], 1, attempts)
    (line,) = lines
    assert (line["event"], line["log_level"]) == (event, level)
    assert {k: line[k] for k in ("statement", "topic", "partition", "offset", "resource", "code")} == {
        "statement": 1,
        "topic": "t",
        "partition": 2,
        "offset": 41,
        "resource": "r",
        "code": "5.03",
    }
    assert "answered 5.03" in line["why"]
    if event == "worker.stopping":
        assert isinstance(outcome, WorkerStopped) and "t/2@41" in str(outcome)


async def test_a_record_that_failed_before_any_statement_names_the_statements_it_was_read_for() -> None:
    handler = failures()
    with capture_logs() as lines:
        await handler.handle(DecodeError(record(b"{").where, "bad"), [record(b"{")], None, 0, (1, 2))
    (line,) = lines
    assert line["statements"] == (1, 2) and "statement" not in line
    assert handler.stats.records_skipped == 1
