"""One record's way through the sink: decode, route to every statement of its topic, select, send.

``RecordPipeline.deliver`` returns only when every statement reading the record's topic has had it
delivered (a 2.xx response), and raises the first error otherwise; the caller decides, through the error
policy, whether the record's offset may be committed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streamapp.coap.sender import CoapSender, RequestOptions
from streamapp.codecs import Decoder, Record
from streamapp.errors import RecordCoordinates, SelectError, StreamappError
from streamapp.kcql import Statement
from streamapp.selector import ResourceRenderer, Selector, compile_resource, compile_selector
from streamapp.stats import Stats


@dataclass(frozen=True)
class Route:
    """A compiled statement: where its records go, how they are shaped and how they are sent."""

    statement: Statement
    select: Selector
    resource: ResourceRenderer
    options: RequestOptions

    @classmethod
    def compile(cls, statement: Statement, defaults: RequestOptions | None = None) -> Route:
        return cls(
            statement,
            compile_selector(statement),
            compile_resource(statement),
            (defaults or RequestOptions()).overridden(statement.properties),
        )


@dataclass(frozen=True)
class RawRecord:
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


def encode_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


class RecordPipeline:
    def __init__(
        self,
        routes: Iterable[Route],
        decode_value: Decoder,
        sender: CoapSender,
        stats: Stats,
        decode_key: Decoder | None = None,
    ) -> None:
        self.routes = tuple(routes)
        self._decode_value = decode_value
        # Keys are decoded only when a statement reads them (``_key``, ``{_key.id}``): most sinks never look.
        self._decode_key = decode_key if any(r.statement.uses_key for r in self.routes) else None
        self._sender = sender
        self._stats = stats

    async def deliver(self, raw: RawRecord) -> None:
        if raw.value is None:
            # connect.coap.tombstone=skip (the only mode so far): counted, never sent.
            self._stats.tombstones_skipped += 1
            return
        record = Record(
            value=self._decode_value(raw.value, raw.where),
            key=self._key(raw),
            headers=raw.headers,
            topic=raw.topic,
            partition=raw.partition,
            offset=raw.offset,
            timestamp=raw.timestamp,
        )
        # Select for every statement before sending anything: a record that fails selection for one
        # statement is not half-delivered.
        requests = [(route, route.resource(record), self._payload(route, record)) for route in self.routes]
        if len(requests) == 1:
            await self._send(*requests[0], record.where)
            return
        results = await asyncio.gather(
            *(self._send(*request, record.where) for request in requests), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _key(self, raw: RawRecord) -> Any:
        if self._decode_key is None or raw.key is None:
            return raw.key
        return self._decode_key(raw.key, raw.where)

    def _payload(self, route: Route, record: Record) -> bytes:
        try:
            return encode_json(route.select(record))
        except ValueError as exc:  # not JSON-serialisable (NaN from a float, ...)
            raise SelectError(record.where, f"statement {route.statement.index}: {exc}") from None

    async def _send(
        self, route: Route, segments: tuple[str, ...], payload: bytes, where: RecordCoordinates
    ) -> None:
        stats = self._stats.statements[route.statement.index]
        stats.in_flight += 1
        try:
            await self._sender.send(segments, payload, where, route.options)
        except StreamappError as exc:
            stats.record_failure(str(exc))
            raise
        finally:
            stats.in_flight -= 1
        stats.delivered += 1
