"""Records' way through the sink: decode, route to every statement of their topic, select, send.

``RecordPipeline.deliver`` takes records in consumption order (one, or a chunk when a statement batches)
and tells which of them were delivered to *every* statement reading their topic (a 2.xx response), plus
the first error. Only those records may be acked; the error goes to the error policy.

Per partition, records are prepared (decoded, selected, their resources rendered) in order up to the first
that fails; then each statement sends its requests in partition order, one record per request, or with
``BATCH = n`` up to n consecutive records for the same resource as one JSON array (delivered or failed as
a whole). A record counts as delivered only if it precedes every failure of its partition.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
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


@dataclass(frozen=True)
class Outcome:
    """``delivered[i]``: record i reached every statement; ``error``: the first failure, if any, and
    ``failed_at`` the record it happened at (for a batch, the batch's first record)."""

    delivered: list[bool]
    error: BaseException | None = None
    failed_at: RecordCoordinates | None = None


@dataclass(frozen=True)
class _Prepared:
    """One record ready to send: per route, its Uri-Path segments and JSON bytes (None: a tombstone)."""

    where: RecordCoordinates
    requests: tuple[tuple[tuple[str, ...], bytes], ...] | None


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

    @property
    def max_batch(self) -> int:
        """The largest BATCH of this topic's statements (1 when none batches)."""
        return max((r.statement.batch or 1 for r in self.routes), default=1)

    async def deliver(self, raws: Sequence[RawRecord]) -> Outcome:
        delivered = [False] * len(raws)
        by_partition: dict[int, list[int]] = {}
        for index, raw in enumerate(raws):
            by_partition.setdefault(raw.partition, []).append(index)
        for indices in by_partition.values():
            partition = [raws[i] for i in indices]
            count, error = await self._deliver_partition(partition)
            for i in indices[:count]:
                delivered[i] = True
            if error is not None:
                return Outcome(delivered, error, partition[count].where)
        return Outcome(delivered)

    async def _deliver_partition(self, raws: list[RawRecord]) -> tuple[int, BaseException | None]:
        """Deliver one partition's records in order: (how many were delivered, the first error)."""
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
        failed = sorted(((index, error) for index, error in results if error is not None), key=lambda r: r[0])
        if failed:
            return failed[0]
        return len(prepared), failure

    def _prepare(self, raw: RawRecord) -> _Prepared:
        if raw.value is None:
            # connect.coap.tombstone=skip (the only mode so far): counted, never sent.
            self._stats.tombstones_skipped += 1
            return _Prepared(raw.where, None)
        record = Record(
            value=self._decode_value(raw.value, raw.where),
            key=self._key(raw),
            headers=raw.headers,
            topic=raw.topic,
            partition=raw.partition,
            offset=raw.offset,
            timestamp=raw.timestamp,
        )
        # Every statement's request is built before any is sent: a record that fails selection for one
        # statement is not half-delivered.
        return _Prepared(
            record.where,
            tuple((route.resource(record), self._payload(route, record)) for route in self.routes),
        )

    def _key(self, raw: RawRecord) -> Any:
        if self._decode_key is None or raw.key is None:
            return raw.key
        return self._decode_key(raw.key, raw.where)

    def _payload(self, route: Route, record: Record) -> bytes:
        try:
            return encode_json(route.select(record))
        except ValueError as exc:  # not JSON-serialisable (NaN from a float, ...)
            raise SelectError(record.where, f"statement {route.statement.index}: {exc}") from None

    async def _send_route(
        self, index: int, route: Route, prepared: list[_Prepared]
    ) -> tuple[int, BaseException | None]:
        """Send one statement's requests in order; (index of the first record not delivered, its error)."""
        batch = route.statement.batch
        position = 0
        while position < len(prepared):
            first = prepared[position]
            if first.requests is None:
                position += 1
                continue
            segments, payload = first.requests[index]
            end, parts = position + 1, [payload]
            if batch is not None:
                while end < len(prepared) and len(parts) < batch:
                    following = prepared[end].requests
                    if following is not None:
                        if following[index][0] != segments:
                            break  # a batch goes to one resource
                        parts.append(following[index][1])
                    end += 1
                payload = b"[" + b",".join(parts) + b"]"
            try:
                await self._send(route, segments, payload, first.where, len(parts))
            except Exception as exc:  # the policy decides; nothing from here on is acked
                return position, exc
            position = end
        return len(prepared), None

    async def _send(
        self, route: Route, segments: tuple[str, ...], payload: bytes, where: RecordCoordinates, records: int
    ) -> None:
        stats = self._stats.statements[route.statement.index]
        stats.in_flight += records
        try:
            await self._sender.send(segments, payload, where, route.options)
        except StreamappError as exc:
            stats.record_failure(str(exc))
            raise
        finally:
            stats.in_flight -= records
        stats.delivered += records
