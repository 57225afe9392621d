"""The dead-letter topic (``errors.deadletterqueue.topic.name``): a record the sink gives up on is produced
there with its original key, value and headers, and, with ``errors.deadletterqueue.context.headers.enable``,
the error context under Kafka Connect's header names (plus the CoAP code, statement and resource).

The record's offset is acked only after the dead-letter write is confirmed by the broker.
"""

from __future__ import annotations

import traceback

from streamapp.engine.interfaces import Produce
from streamapp.errors import DecodeError, DeliveryError, SelectError
from streamapp.records import RawRecord

#: Kafka Connect's DeadLetterQueueReporter header names.
CONNECT_PREFIX = "__connect.errors."
STREAMAPP_PREFIX = "__streamapp.errors."


def stage(error: BaseException) -> str:
    """Kafka Connect's name for where the record failed."""
    if isinstance(error, DecodeError):
        return "VALUE_CONVERTER"
    if isinstance(error, SelectError):
        return "TRANSFORMATION"
    return "TASK_PUT"


def context_headers(
    raw: RawRecord, error: BaseException, statement: int | None, connector: str
) -> list[tuple[str, bytes]]:
    headers = {
        "topic": raw.topic,
        "partition": str(raw.partition),
        "offset": str(raw.offset),
        "connector.name": connector,
        "task.id": "0",
        "stage": stage(error),
        "class.name": "streamapp.engine.dispatch.Dispatcher",
        "exception.class.name": f"{type(error).__module__}.{type(error).__name__}",
        "exception.message": str(error),
        "exception.stacktrace": "".join(traceback.format_exception(error)),
    }
    ours = {"statement": str(statement) if statement is not None else ""}
    if isinstance(error, DeliveryError):
        ours.update({"coap.code": error.code or "", "resource": error.resource})
    return [(CONNECT_PREFIX + k, v.encode()) for k, v in headers.items()] + [
        (STREAMAPP_PREFIX + k, v.encode()) for k, v in ours.items()
    ]


class DeadLetters:
    def __init__(self, topic: str, produce: Produce, *, context: bool, connector: str) -> None:
        self.topic = topic
        self._produce = produce
        self._context = context
        self._connector = connector

    async def send(self, raw: RawRecord, error: BaseException, statement: int | None) -> None:
        headers = list(raw.headers)
        if self._context:
            headers += context_headers(raw, error, statement, self._connector)
        await self._produce(self.topic, raw.key, raw.value, headers)
