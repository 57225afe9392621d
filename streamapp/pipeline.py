"""Records' way through the sink: decode, route to every statement of their topic, select, send.

``RecordPipeline.deliver`` takes records in consumption order (one, or a chunk when a statement batches)
and tells which of them were delivered to *every* statement reading their topic (a 2.xx response), plus
the first error. Only those records may be acked; the error goes to the error policy.

Per partition, records are prepared (decoded, selected, their resources rendered) in order up to the first
that fails; then each statement sends its requests in partition order, one record per request, or with
``BATCH = n`` up to n consecutive records for the same resource as one JSON array (delivered or failed as
a whole). A record counts as delivered only if it precedes every failure of its partition.

A record that reached some statements but not all is remembered (``_reached``): when the same records are
delivered again (the RETRY policy), a statement skips what it already delivered, so nothing delivered is
resent because another statement failed. The memory is dropped once the record is delivered everywhere or
the policy lets it go (:meth:`RecordPipeline.forget`).

Tombstones (null values) follow each statement's ``tombstone`` option: skipped (counted), sent as a
request with an empty body, or as a CoAP DELETE to the record's resource; they are never part of a batch.
A JSON body larger than ``max_payload`` bytes is refused before any request (a batch closes before it
would grow past it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from streamapp.coap.sender import CoapSender, RequestOptions
from streamapp.codecs import Codecs, Record
from streamapp.codecs.output import DecimalFormat, encode_json
from streamapp.errors import DecodeError, RecordCoordinates, SelectError, StreamappError
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
    delete_options: RequestOptions

    @classmethod
    def compile(cls, statement: Statement, defaults: RequestOptions | None = None) -> Route:
        options = (defaults or RequestOptions()).overridden(statement.properties)
        return cls(
            statement,
            compile_selector(statement),
            compile_resource(statement),
            options,
            replace(options, method="DELETE"),
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


#: Default of ``connect.coap.max.payload``: the largest JSON body sent in one request.
MAX_PAYLOAD = 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    """``delivered[i]``: record i reached every statement; ``error``: the first failure, if any,
    ``failed_at`` the record it happened at (for a batch, the batch's first record) and ``statement`` the
    statement that failed (None when the record could not be decoded or selected for any)."""

    delivered: list[bool]
    error: BaseException | None = None
    failed_at: RecordCoordinates | None = None
    statement: int | None = None


@dataclass(frozen=True, slots=True)
class _Request:
    """One record's request for one statement: Uri-Path segments, body, and whether it is a DELETE."""

    segments: tuple[str, ...]
    payload: bytes
    delete: bool = False

    @property
    def batchable(self) -> bool:
        return bool(self.payload) and not self.delete


@dataclass(frozen=True)
class _Prepared:
    """One record ready to send: per route, its request (None: a tombstone this statement skips)."""

    where: RecordCoordinates
    requests: tuple[_Request | None, ...]


class RecordPipeline:
    def __init__(
        self,
        routes: Iterable[Route],
        codecs: Codecs,
        sender: CoapSender,
        stats: Stats,
        *,
        max_payload: int = MAX_PAYLOAD,
        decimals: DecimalFormat = "number",
    ) -> None:
        self.routes = tuple(routes)
        self._codecs = codecs
        # Keys are decoded only when a statement reads them (``_key``, ``{_key.id}``): most sinks never look.
        self._decode_keys = any(r.statement.uses_key for r in self.routes)
        self._sender = sender
        self._stats = stats
        self._max_payload = max_payload
        self._decimals = decimals
        #: Records delivered to some statements but not all: the route indexes that have them.
        self._reached: dict[RecordCoordinates, set[int]] = {}

    @property
    def max_batch(self) -> int:
        """The largest BATCH of this topic's statements (1 when none batches)."""
        return max((r.statement.batch or 1 for r in self.routes), default=1)

    @property
    def max_inflight(self) -> int:
        """The most requests one of this topic's statements may have in flight (1: one at a time)."""
        return max((r.options.max_inflight for r in self.routes), default=1)

    async def deliver(self, raws: Sequence[RawRecord]) -> Outcome:
        delivered = [False] * len(raws)
        await self._codecs.prefetch(raw.value for raw in raws)
        if self._decode_keys:
            await self._codecs.prefetch(raw.key for raw in raws)
        by_partition: dict[int, list[int]] = {}
        for index, raw in enumerate(raws):
            by_partition.setdefault(raw.partition, []).append(index)
        for indices in by_partition.values():
            partition = [raws[i] for i in indices]
            count, error, route = await self._deliver_partition(partition)
            for i in indices[:count]:
                delivered[i] = True
                self._reached.pop(raws[i].where, None)
            if error is not None:
                statement = None if route is None else self.routes[route].statement.index
                return Outcome(delivered, error, partition[count].where, statement)
        return Outcome(delivered)

    def forget(self, where: RecordCoordinates) -> None:
        """The policy let this record go (skipped or dead-lettered): stop remembering where it arrived."""
        self._reached.pop(where, None)

    async def _deliver_partition(self, raws: list[RawRecord]) -> tuple[int, BaseException | None, int | None]:
        """Deliver one partition's records in order: (how many were delivered, the first error, the index of
        the route that failed, None if the error is the record's own)."""
        prepared: list[_Prepared] = []
        failure: BaseException | None = None
        for raw in raws:
            try:
                prepared.append(self._prepare(raw))
            except Exception as exc:  # a record that cannot be prepared stops its partition here
                failure = exc
                break
        results = await asyncio.gather(
            *(self._send_route(i, route, prepared) for i, route in enumerate(self.routes))
        )
        failed = sorted(
            (position, route, error) for route, (position, error) in enumerate(results) if error is not None
        )
        if failed:
            position, route, error = failed[0]
            return position, error, route
        return len(prepared), failure, None

    def _prepare(self, raw: RawRecord) -> _Prepared:
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
            return _Prepared(record.where, tuple(self._tombstone(route, record) for route in self.routes))
        return _Prepared(
            record.where,
            tuple(_Request(route.resource(record), self._payload(route, record)) for route in self.routes),
        )

    def _tombstone(self, route: Route, record: Record) -> _Request | None:
        mode = route.options.tombstone
        if mode == "skip":
            self._stats.tombstones_skipped += 1
            return None
        return _Request(route.resource(record), b"", delete=mode == "delete")

    def _key(self, raw: RawRecord) -> Any:
        if not self._decode_keys or raw.key is None:
            return raw.key
        return self._codecs.key(raw.key, raw.where)

    def _payload(self, route: Route, record: Record) -> bytes:
        try:
            body = encode_json(route.select(record), self._decimals)
        except (ValueError, TypeError) as exc:  # not JSON-serialisable (NaN from a float, ...)
            raise SelectError(record.where, f"statement {route.statement.index}: {exc}") from None
        if len(body) > self._max_payload:
            raise DecodeError(
                record.where,
                f"statement {route.statement.index}: the JSON body is {len(body)} bytes, more than "
                f"connect.coap.max.payload ({self._max_payload} bytes); not sent",
            )
        return body

    async def _send_route(
        self, index: int, route: Route, prepared: list[_Prepared]
    ) -> tuple[int, BaseException | None]:
        """Send one statement's requests; (index of the first record not delivered, its error).

        With ``max.inflight`` > 1 each resource's records go in order while different resources go
        concurrently (at most ``max.inflight`` requests at once); records of other resources after a failure
        may then be delivered already: they are remembered, not resent, when the failed one is retried.
        """
        if route.options.max_inflight <= 1:
            return await self._send_in_order(index, route, prepared)
        groups: dict[tuple[str, ...], list[int]] = {}
        for position, record in enumerate(prepared):
            request = self._pending_request(record, index)
            if request is not None:
                groups.setdefault(request.segments, []).append(position)
        slots = asyncio.Semaphore(route.options.max_inflight)

        async def send_group(positions: list[int]) -> tuple[int, BaseException | None]:
            count, error = await self._send_in_order(index, route, [prepared[p] for p in positions], slots)
            return (positions[count], error) if error is not None else (len(prepared), None)

        results = await asyncio.gather(*(send_group(positions) for positions in groups.values()))
        return min(results, key=lambda result: result[0], default=(len(prepared), None))

    async def _send_in_order(
        self,
        index: int,
        route: Route,
        prepared: list[_Prepared],
        slots: asyncio.Semaphore | None = None,
    ) -> tuple[int, BaseException | None]:
        """Send these records' requests one after another, batching as the statement says."""
        batch = route.statement.batch
        position = 0
        while position < len(prepared):
            first = self._pending_request(prepared[position], index)
            if first is None:
                position += 1
                continue
            end, parts, size = position + 1, [first.payload], len(first.payload) + 2
            if batch is not None and first.batchable:
                while end < len(prepared) and len(parts) < batch:
                    following = self._pending_request(prepared[end], index)
                    if following is not None:
                        if not following.batchable or following.segments != first.segments:
                            break  # a batch goes to one resource, and holds JSON bodies only
                        size += len(following.payload) + 1
                        if size > self._max_payload:
                            break
                        parts.append(following.payload)
                    end += 1
            joined = batch is not None and first.batchable
            payload = b"[" + b",".join(parts) + b"]" if joined else first.payload
            options = route.delete_options if first.delete else route.options
            where = prepared[position].where
            try:
                if slots is None:
                    await self._send(route, options, first.segments, payload, where, len(parts))
                else:
                    async with slots:
                        await self._send(route, options, first.segments, payload, where, len(parts))
            except Exception as exc:  # the policy decides; nothing from here on is acked
                return position, exc
            for sent in prepared[position:end]:
                if sent.requests[index] is not None:
                    self._reached.setdefault(sent.where, set()).add(index)
            position = end
        return len(prepared), None

    def _pending_request(self, prepared: _Prepared, route: int) -> _Request | None:
        """The record's request for this route, unless there is none or the route already delivered it."""
        reached = self._reached.get(prepared.where)
        if reached is not None and route in reached:
            return None
        return prepared.requests[route]

    async def _send(
        self,
        route: Route,
        options: RequestOptions,
        segments: tuple[str, ...],
        payload: bytes,
        where: RecordCoordinates,
        records: int,
    ) -> None:
        stats = self._stats.statements[route.statement.index]
        stats.in_flight += records
        started = time.perf_counter()
        try:
            await self._sender.send(segments, payload, where, options)
        except StreamappError as exc:
            stats.record_failure(exc)
            raise
        finally:
            stats.in_flight -= records
        stats.record_delivery(records, time.perf_counter() - started)
