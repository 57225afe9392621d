"""The record types of the record path, in the order a record takes them (docs/architecture.md).

``RawRecord`` is what the agent reads from Kafka (bytes); ``Record`` is the same record decoded, as the
selector and the templates see it; ``RecordCoordinates`` is where either lives in Kafka, named by every
record-level error and log line. ``Answer`` is what the CoAP server answered to a record's request, which
a reply topic carries back to Kafka (docs/replies.md).

``RawRecord`` and ``RecordCoordinates`` are named tuples: one of each is made for every record (a frozen
dataclass costs several times as much to build), and they are immutable all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class RecordCoordinates(NamedTuple):
    """Where a record lives in Kafka; printed in every record-level error."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


class Answer(NamedTuple):
    """A CoAP server's final response to a request: the code (class << 5 | detail, RFC 7252 §3), the
    payload as received (the first block's) and the Content-Format (None when the response has none)."""

    code: int
    payload: bytes
    content_format: int | None = None

    @property
    def dotted(self) -> str:
        """The code as RFC 7252 writes it: ``2.04``."""
        return f"{self.code >> 5}.{self.code & 0x1F:02d}"


class RawRecord(NamedTuple):
    """What the agent hands over: the Kafka message, undecoded."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: float | None

    @property
    def where(self) -> RecordCoordinates:
        return RecordCoordinates(self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class Record:
    """A decoded Kafka record, as the selector sees it."""

    value: Any
    key: Any
    headers: tuple[tuple[str, bytes], ...]
    topic: str
    partition: int
    offset: int
    timestamp: float | None

    @property
    def where(self) -> RecordCoordinates:
        return RecordCoordinates(self.topic, self.partition, self.offset)
