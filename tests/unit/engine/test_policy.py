"""The error policy's decision table (docs/guarantees.md)."""

from __future__ import annotations

import pytest

from streamapp.engine.policy import Decision, ErrorPolicy
from streamapp.errors import DecodeError, DeliveryError, SelectError
from streamapp.records import RecordCoordinates

WHERE = RecordCoordinates("t", 0, 1)
SERVER_DOWN = DeliveryError(WHERE, "no response", resource="r", retriable=True)
NOT_FOUND = DeliveryError(WHERE, "4.04", resource="r", code="4.04", retriable=False)
POISON = DecodeError(WHERE, "invalid JSON")
UNSELECTABLE = SelectError(WHERE, "a.b: not an object")
REGISTRY_DOWN = DecodeError(WHERE, "registry unreachable", retriable=True)


@pytest.mark.parametrize(
    ("policy", "dlq", "error", "attempts", "decision"),
    [
        # retriable delivery failures
        ("THROW", False, SERVER_DOWN, 0, Decision.STOP),
        ("NOOP", False, SERVER_DOWN, 0, Decision.SKIP),
        ("NOOP", True, SERVER_DOWN, 0, Decision.DEAD_LETTER),
        ("RETRY", False, SERVER_DOWN, 0, Decision.RETRY),
        ("RETRY", False, SERVER_DOWN, 2, Decision.RETRY),
        ("RETRY", False, SERVER_DOWN, 3, Decision.STOP),  # exhausted: as THROW
        ("RETRY", True, SERVER_DOWN, 3, Decision.STOP),
        ("RETRY", False, REGISTRY_DOWN, 0, Decision.RETRY),  # the record is fine, the registry is not
        # failures that would repeat: never retried, dead-lettered when configured, else per policy
        ("RETRY", False, NOT_FOUND, 0, Decision.STOP),
        ("RETRY", True, NOT_FOUND, 0, Decision.DEAD_LETTER),
        ("THROW", True, NOT_FOUND, 0, Decision.DEAD_LETTER),
        ("THROW", False, POISON, 0, Decision.STOP),
        ("THROW", True, POISON, 0, Decision.DEAD_LETTER),
        ("NOOP", False, POISON, 0, Decision.SKIP),
        ("NOOP", True, UNSELECTABLE, 0, Decision.DEAD_LETTER),
        ("RETRY", False, UNSELECTABLE, 0, Decision.STOP),
        # anything unexpected stops, whatever the policy says about retries
        ("RETRY", False, RuntimeError("bug"), 0, Decision.STOP),
        ("NOOP", True, RuntimeError("bug"), 0, Decision.STOP),
    ],
)
def test_decide(policy: str, dlq: bool, error: BaseException, attempts: int, decision: Decision) -> None:
    rules = ErrorPolicy(policy, max_retries=3, retry_interval_s=0.0, dead_letter_topic="dlq" if dlq else None)
    assert rules.decide(error, attempts) is decision
