"""Answers back to Kafka: one reply record per CoAP response, on the statement's reply topic
(``connect.coap.reply.topic``, ``PROPERTIES(reply.topic=...)``; docs/replies.md).

The device's answer to a command is what an IoT platform waits for (Eclipse Hono's command & control
publishes it on a response topic), and what stream-reactor's sink threw away. The reply record:

- key: the source record's key; value: the response payload as received (None when empty);
- headers: every header of the source record, so a ``correlation-id`` travels back, then ``coap.code``
  (``2.05``), ``coap.uri`` (the request's full URI), ``coap.content.format`` (when the response has one),
  ``source.topic``, ``source.partition``, ``source.offset`` and ``kcql.statement`` (1-based);
- a BATCH request (one request, several records) replies once: key and headers of the batch's first
  record, ``source.offset`` the first record's offset and ``source.offset.last`` the last one's.

Dispatch produces the reply before it settles the request, so the source offset is committed only after
the broker has the reply (at-least-once: a record replayed after a crash may reply twice). A reply that
cannot be produced is a failure of the request for the error policy (``ReplyError``).
"""

from __future__ import annotations

from streamapp.engine.interfaces import Produce
from streamapp.errors import DeliveryError
from streamapp.records import Answer, RawRecord

#: The reply headers streamapp adds after the source record's own.
CODE, URI, CONTENT_FORMAT = "coap.code", "coap.uri", "coap.content.format"
SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET = "source.topic", "source.partition", "source.offset"
SOURCE_OFFSET_LAST, STATEMENT = "source.offset.last", "kcql.statement"


class ReplyError(DeliveryError):
    """The response arrived but its reply record could not be produced; the message names the topic."""


def reply_headers(
    records: list[RawRecord], answer: Answer, uri: str, statement: int
) -> list[tuple[str, bytes]]:
    """The reply's headers: the first source record's own, then what the module docstring lists."""
    first = records[0]
    headers = list(first.headers)
    headers.append((CODE, answer.dotted.encode()))
    headers.append((URI, uri.encode()))
    if answer.content_format is not None:
        headers.append((CONTENT_FORMAT, str(answer.content_format).encode()))
    headers += [
        (SOURCE_TOPIC, first.topic.encode()),
        (SOURCE_PARTITION, str(first.partition).encode()),
        (SOURCE_OFFSET, str(first.offset).encode()),
    ]
    if len(records) > 1:
        headers.append((SOURCE_OFFSET_LAST, str(records[-1].offset).encode()))
    headers.append((STATEMENT, str(statement).encode()))
    return headers


class Replies:
    """Produces reply records through the ``produce`` it is handed (the app's Kafka producer)."""

    def __init__(self, produce: Produce) -> None:
        self._produce = produce

    async def send(
        self, topic: str, records: list[RawRecord], answer: Answer, uri: str, statement: int
    ) -> None:
        """Produce the reply to ``answer``; returns once the broker has it, else raises ReplyError."""
        first = records[0]
        try:
            await self._produce(
                topic,
                first.key,
                answer.payload or None,
                reply_headers(records, answer, uri, statement),
            )
        except Exception as exc:
            raise ReplyError(
                first.where,
                f"{uri} answered {answer.dotted}, but its reply could not be produced to topic "
                f"{topic!r}: {exc}",
                resource=uri,
                code=answer.dotted,
                retriable=True,
                answer=answer,
            ) from exc
