"""A record's preparation: decode it, and for every statement reading its topic select its fields, render
its resource and encode its JSON body, before anything is sent.

``TopicPipeline.prepare`` turns one Kafka record into its requests (one per statement; None where a
statement skips a tombstone). Every statement's request is built before any is sent, so a record that
cannot be decoded or selected for one statement is not half-delivered: it fails as a whole, with its
coordinates, and goes to the error policy. Sending, ordering and batching are the dispatcher's
(``dispatch.py``; docs/delivery-engine.md).

Tombstones (null values) follow each statement's ``tombstone`` option: skipped (counted), sent as a
request with an empty body, or as a CoAP DELETE to the record's resource; they are never part of a batch.
A JSON body larger than ``max_payload`` bytes is refused before any request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from streamapp.coap.request_options import RequestOptions
from streamapp.codecs import Codecs
from streamapp.codecs.output import DecimalFormat, encode_json
from streamapp.config.keys import default_of
from streamapp.engine.addressing import QueryRenderer, ServerRenderer, compile_query, compile_server
from streamapp.engine.stats import Stats
from streamapp.errors import ConfigError, DecodeError, SelectError
from streamapp.kcql import Statement
from streamapp.kcql.selector import ResourceRenderer, Selector, compile_resource, compile_selector
from streamapp.records import RawRecord, Record, RecordCoordinates


@dataclass(frozen=True)
class Route:
    """A compiled statement: where its records go, how they are shaped and how they are sent."""

    statement: Statement
    select: Selector
    resource: ResourceRenderer
    options: RequestOptions
    delete_options: RequestOptions
    server: ServerRenderer
    query: QueryRenderer

    @classmethod
    def compile(cls, statement: Statement, defaults: RequestOptions | None = None) -> Route:
        """Raises ``ConfigError`` for a fixed server that cannot be one (a template fails per record)."""
        options = (defaults or RequestOptions()).overridden(statement.properties)
        try:
            server = compile_server(statement)
        except ValueError as exc:
            raise ConfigError("connect.coap.kcql", f"statement {statement.index}: {exc}") from None
        return cls(
            statement,
            compile_selector(statement),
            compile_resource(statement),
            options,
            replace(options, method="DELETE"),
            server,
            compile_query(statement),
        )

    def request(self, record: Record, payload: bytes, *, delete: bool = False) -> Request:
        return Request(self.resource(record), payload, delete, self.server(record), self.query(record))


#: Default of ``connect.coap.max.payload``: the largest JSON body sent in one request.
MAX_PAYLOAD: int = default_of("connect.coap.max.payload")


@dataclass(frozen=True, slots=True)
class Request:
    """One record's request for one statement: Uri-Path segments, body, and whether it is a DELETE."""

    segments: tuple[str, ...]
    payload: bytes
    delete: bool = False
    #: The statement's own server for this record (``coap[s]://host[:port][/base]``); None = the worker's.
    server: str | None = None
    #: Uri-Query options.
    query: tuple[str, ...] = ()

    @property
    def batchable(self) -> bool:
        return bool(self.payload) and not self.delete


@dataclass(frozen=True)
class Prepared:
    """One record ready to send: per route, its request (None: a tombstone this statement skips, or none
    at all for a record the error policy let go before any request)."""

    where: RecordCoordinates
    #: The statements reading the record's topic (its pipeline's routes), with ``requests`` in their order.
    routes: tuple[Route, ...]
    requests: tuple[Request | None, ...]


class TopicPipeline:
    """The compiled statements of one source topic and how its records are decoded."""

    def __init__(
        self,
        routes: Iterable[Route],
        codecs: Codecs,
        stats: Stats,
        *,
        max_payload: int = MAX_PAYLOAD,
        decimals: DecimalFormat = "number",
    ) -> None:
        self.routes = tuple(routes)
        self._codecs = codecs
        # Keys are decoded only when a statement reads them (``_key``, ``{_key.id}``): most sinks never look.
        self._decode_keys = any(r.statement.uses_key for r in self.routes)
        self._stats = stats
        self.max_payload = max_payload
        self._decimals = decimals

    def nothing(self, raw: RawRecord) -> Prepared:
        """The record with no request for any statement: let go by the error policy before any."""
        return Prepared(raw.where, self.routes, (None,) * len(self.routes))

    @property
    def prefetches(self) -> bool:
        """Whether decoding needs something fetched first (Avro writer schemas from the registry)."""
        return self._codecs.schemas is not None

    async def prefetch(self, raws: Sequence[RawRecord]) -> None:
        """Fetch what decoding these records needs (Avro writer schemas); a no-op for other payloads."""
        await self._codecs.prefetch(raw.value for raw in raws)
        if self._decode_keys:
            await self._codecs.prefetch(raw.key for raw in raws)

    def prepare(self, raw: RawRecord) -> Prepared:
        record = Record(
            value=None if raw.value is None else self._codecs.value(raw.value, raw.where),
            key=self._key(raw),
            headers=raw.headers,
            topic=raw.topic,
            partition=raw.partition,
            offset=raw.offset,
            timestamp=raw.timestamp,
        )
        # Every statement's request is built before any is sent: a record that fails selection for one
        # statement is not half-delivered.
        if raw.value is None:
            requests = tuple(self._tombstone(route, record) for route in self.routes)
            return Prepared(record.where, self.routes, requests)
        return Prepared(
            record.where,
            self.routes,
            tuple(route.request(record, self._payload(route, record)) for route in self.routes),
        )

    def _tombstone(self, route: Route, record: Record) -> Request | None:
        mode = route.options.tombstone
        if mode == "skip":
            self._stats.tombstone_skipped()
            return None
        return route.request(record, b"", delete=mode == "delete")

    def _key(self, raw: RawRecord) -> Any:
        if not self._decode_keys or raw.key is None:
            return raw.key
        return self._codecs.key(raw.key, raw.where)

    def _payload(self, route: Route, record: Record) -> bytes:
        try:
            body = encode_json(route.select(record), self._decimals)
        except (ValueError, TypeError) as exc:  # not JSON-serialisable (NaN from a float, ...)
            raise SelectError(record.where, f"statement {route.statement.index}: {exc}") from None
        if len(body) > self.max_payload:
            raise DecodeError(
                record.where,
                f"statement {route.statement.index}: the JSON body is {len(body)} bytes, more than "
                f"connect.coap.max.payload ({self.max_payload} bytes); not sent",
            )
        return body
