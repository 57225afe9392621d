"""aiocoap's INFO line about a response that matches no request becomes a WARNING with the details."""

from __future__ import annotations

import logging

import aiocoap
from aiocoap.numbers.codes import Code
from structlog.testing import capture_logs

from streamapp.coap.sender import UnmatchedResponses


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("coap", logging.INFO, __file__, 1, msg, args, None)


def test_an_unmatched_response_is_a_warning_naming_mid_token_and_code() -> None:
    response = aiocoap.Message(code=Code.CHANGED, mid=4711)
    response.token = b"\x0a\x0b"
    with capture_logs() as logs:
        line_in = record("Response %r could not be matched to any request", response)
        kept = UnmatchedResponses().filter(line_in)
    assert kept is False, "aiocoap's own INFO line is replaced, not repeated"
    (line,) = logs
    assert line["log_level"] == "warning" and line["event"] == "coap.unmatched_response"
    assert (line["mid"], line["token"], line["code"]) == (4711, "0a0b", "2.04 Changed")


def test_other_aiocoap_lines_pass_untouched() -> None:
    with capture_logs() as logs:
        assert UnmatchedResponses().filter(record("Sending message %r", "x")) is True
    assert logs == []


def test_a_flood_of_unmatched_responses_is_one_line_per_interval_counting_the_rest(monkeypatch) -> None:
    from streamapp.coap import sender

    clock = [1000.0]
    monkeypatch.setattr(sender.time, "monotonic", lambda: clock[0])
    flood = UnmatchedResponses()
    response = aiocoap.Message(code=Code.CONTENT)
    with capture_logs() as logs:
        for _ in range(500):
            flood.filter(record("Response %r could not be matched to any request", response))
        clock[0] += sender.UNMATCHED_LINE_INTERVAL_S
        flood.filter(record("Response %r could not be matched to any request", response))
    assert [line["suppressed_since_last_line"] for line in logs] == [0, 499]
