"""What happens to a record that cannot be delivered, decoded or selected (``connect.coap.error.policy``).

The rules of docs/guarantees.md, as :meth:`ErrorPolicy.decide` applies it to one failed record:

- a record that cannot be decoded or selected (and a delivery refused with a non-retriable code, 4.04 say)
  would fail the same way again: it is never retried; it goes to the dead-letter topic when one is
  configured, else NOOP skips it and THROW/RETRY stop;
- NOOP: log with the record's coordinates, count, dead-letter if configured, go on;
- THROW: stop the worker, non-zero exit; the record is not committed and is read again on restart;
- RETRY: wait ``retry.interval`` and send the same record again, at most ``max.retries`` times, holding its
  partition; exhausted, behave as THROW.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from streamapp.config.keys import default_of, default_seconds
from streamapp.config.settings import Settings
from streamapp.errors import (
    DecodeError,
    DeliveryError,
    RecordError,
    SelectError,
    StreamappError,
    WorkerStopped,
)
from streamapp.logs import get_logger
from streamapp.records import RecordCoordinates

log = get_logger(__name__)


class Decision(enum.Enum):
    STOP = "stop"  # THROW: the worker exits, the record stays uncommitted
    SKIP = "skip"  # NOOP: the record is acked without delivery (logged, counted)
    DEAD_LETTER = "dead-letter"  # to the dead-letter topic, then acked
    RETRY = "retry"  # wait, then send the same record again


@dataclass(frozen=True)
class ErrorPolicy:
    """The error policy's keys (defaults from ``KEYS``), and what they decide for a failed record."""

    name: str = default_of("connect.coap.error.policy")
    max_retries: int = default_of("connect.coap.max.retries")
    retry_interval_s: float = default_seconds("connect.coap.retry.interval")
    dead_letter_topic: str | None = default_of("errors.deadletterqueue.topic.name")

    @classmethod
    def from_settings(cls, settings: Settings) -> ErrorPolicy:
        return cls(
            name=settings.error_policy,
            max_retries=settings.max_retries,
            retry_interval_s=settings.retry_interval_s,
            dead_letter_topic=settings.dead_letter_topic,
        )

    def decide(self, error: BaseException, attempts: int) -> Decision:
        """What to do with a record that failed with ``error`` after ``attempts`` retries already."""
        if not isinstance(error, RecordError):
            return Decision.STOP  # not a record's problem but ours (a bug): never skipped, never retried
        retriable = error.retriable
        if not retriable and isinstance(error, (DecodeError, SelectError, DeliveryError)):
            # It would fail the same way again.
            if self.dead_letter_topic is not None:
                return Decision.DEAD_LETTER
            return Decision.SKIP if self.name == "NOOP" else Decision.STOP
        if self.name == "NOOP":
            return Decision.DEAD_LETTER if self.dead_letter_topic is not None else Decision.SKIP
        if self.name == "RETRY" and retriable and attempts < self.max_retries:
            return Decision.RETRY
        return Decision.STOP

    def describe_stop(self, attempts: int) -> str:
        """How the policy came to stop, for the log line and the exit reason."""
        if self.name == "RETRY" and attempts:
            return f"connect.coap.error.policy=RETRY, gave up after {attempts} retries"
        return f"connect.coap.error.policy={self.name}"


def record_fields(error: BaseException, where: RecordCoordinates) -> dict[str, object]:
    """The structured fields every error line about a record carries."""
    fields: dict[str, object] = {
        "topic": where.topic,
        "partition": where.partition,
        "offset": where.offset,
        "error_class": type(error).__name__,
    }
    if isinstance(error, RecordError):
        fields["retriable"] = error.retriable  # e.g. a schema registry that was down: the record is fine
    if isinstance(error, DeliveryError):
        fields.update(resource=error.resource, code=error.code)
    return fields


def reason(error: BaseException) -> str:
    return str(error) if isinstance(error, StreamappError) else f"{type(error).__name__}: {error}"


def stopping(
    error: BaseException,
    where: RecordCoordinates,
    why: str = "connect.coap.error.policy=THROW",
    statement: int | None = None,
    statements: tuple[int, ...] = (),
) -> WorkerStopped:
    """Log the stop with the record's coordinates and return the exception the caller raises to stop the
    worker (the caller raises it: it decides whether the stop waits for what is in flight). A record that
    failed before any statement names the ``statements`` it was read for."""
    where_in = {"statement": statement} if statement is not None else {"statements": statements}
    log.error("worker.stopping", why=f"{why}: {reason(error)}", **record_fields(error, where), **where_in)
    return WorkerStopped(
        f"{why}: {reason(error)}. Record {where} was not committed: "
        "it is read again when the worker restarts."
    )
