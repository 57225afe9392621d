"""Confluent-framed Avro: magic byte 0, a 4-byte big-endian schema id, then the Avro binary body.

Writer schemas are fetched by id from the Schema Registry with ``python-schema-registry-client`` and kept
for the life of the worker (a schema id never changes meaning). Decoding is synchronous, so a record does not
pay for a coroutine: the pipeline first awaits :meth:`SchemaCache.prefetch` for the chunk of records it is
about to decode, which fetches any schema id not seen yet, once, however many records carry it.

A failed fetch is remembered only until the next prefetch, so a record whose schema could not be fetched
fails with a :class:`DecodeError` that tells the error policy whether trying again can help: unknown id
(404, a poison record) is final; an unreachable or failing registry is ``retriable``.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import fastavro
import httpx

from streamapp.codecs.avro_references import inline_references
from streamapp.codecs.avro_render import Render, UnsupportedSchema, compile_renderer, strip_logical_types
from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates

#: First byte of the Confluent Schema Registry wire format.
CONFLUENT_MAGIC = 0
HEADER_SIZE = 5


def framed_schema_id(data: bytes) -> int | None:
    """The schema id when ``data`` has the Confluent framing (magic 0 and a 4-byte id), else None."""
    if len(data) >= HEADER_SIZE and data[0] == CONFLUENT_MAGIC:
        return int.from_bytes(data[1:HEADER_SIZE], "big")
    return None


@dataclass(frozen=True)
class ReadPlan:
    """How records written with one schema id are read: fastavro's parsed schema and the renderer."""

    schema_id: int
    parsed: Any
    render: Render | None

    @classmethod
    def compile(cls, schema_id: int, schema: Any) -> ReadPlan:
        return cls(schema_id, fastavro.parse_schema(strip_logical_types(schema)), compile_renderer(schema))


@dataclass(frozen=True)
class _Failure:
    message: str
    retriable: bool


class SchemaSource(Protocol):
    """Where writer schemas come from: ``fetch`` returns the schema's JSON (parsed) or raises."""

    async def fetch(self, schema_id: int) -> Any: ...


def _schema_json(answer: dict[str, Any], what: str) -> Any:
    text = answer.get("schema")
    if not isinstance(text, str):
        raise UnsupportedSchema(f"{what}: the registry's answer has no schema")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UnsupportedSchema(f"{what}: the registry's schema is not JSON ({exc})") from None


def _reference(reference: Any, what: str) -> tuple[str, str, int]:
    try:
        return str(reference["name"]), str(reference["subject"]), int(reference["version"])
    except (TypeError, KeyError, ValueError):
        raise UnsupportedSchema(f"{what}: a malformed schema reference {reference!r}") from None


class SchemaNotFound(LookupError):
    pass


class RegistryUnavailable(ConnectionError):
    pass


#: The (subject, version) references being resolved, outermost first (to refuse a loop).
_Chain = tuple[tuple[str, int], ...]
_SchemaErrors = (SchemaNotFound, UnsupportedSchema, RegistryUnavailable)


class RegistrySource:
    """The Confluent Schema Registry over HTTP, through ``python-schema-registry-client``'s transport.

    The client's ``get_by_id`` parses the schema itself and so fails on a schema with references (a named
    type defined under another subject); the schema's JSON is read through the client's URLs and
    ``request`` instead, and the referenced definitions are fetched (each subject version once, also when
    several schemas need it at the same time) and put in place (:mod:`streamapp.codecs.avro_references`).
    """

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        from schema_registry.client import AsyncSchemaRegistryClient

        self.url = url
        self._client = AsyncSchemaRegistryClient(url, timeout=httpx.Timeout(timeout_s))
        #: (subject, version) -> its schema with references inlined (a registered version never changes);
        #: a task, so that concurrent fetches share one request. A failed one is dropped to be tried again.
        self._versions: dict[tuple[str, int], asyncio.Task[Any]] = {}

    async def fetch(self, schema_id: int) -> Any:
        what = f"schema id {schema_id}"
        answer = await self._get("get_by_id", what, schema_id=schema_id)
        if answer is None:
            raise SchemaNotFound(f"{what} is not in the schema registry {self._shown_url}")
        kind = answer.get("schemaType", "AVRO")
        if kind != "AVRO":
            raise UnsupportedSchema(f"{what} is a {kind} schema, not Avro")
        return await self._resolved(answer, what, ())

    async def _resolved(self, answer: dict[str, Any], what: str, chain: _Chain) -> Any:
        """The schema of a registry answer, with the definitions it references inlined."""
        schema = _schema_json(answer, what)
        references = answer.get("references") or []
        if not references:
            return schema
        definitions = {}
        for reference in references:
            name, subject, version = _reference(reference, what)
            try:
                definitions[name] = await self._version(subject, version, chain)
            except _SchemaErrors as exc:
                raise type(exc)(f"{what}: reference {name!r}: {exc}") from None
        return inline_references(schema, definitions)

    async def _version(self, subject: str, version: int, chain: _Chain) -> Any:
        key = (subject, version)
        if key in chain:
            raise UnsupportedSchema(f"the references of subject {subject!r} version {version} form a loop")
        task = self._versions.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch_version(subject, version, (*chain, key)))
            self._versions[key] = task
            task.add_done_callback(lambda done: self._forget_failed(key, done))
        return await asyncio.shield(task)

    def _forget_failed(self, key: tuple[str, int], task: asyncio.Task[Any]) -> None:
        failed = task.cancelled() or task.exception() is not None
        if failed and self._versions.get(key) is task:
            del self._versions[key]

    async def _fetch_version(self, subject: str, version: int, chain: _Chain) -> Any:
        what = f"subject {subject!r} version {version}"
        answer = await self._get("get_schema", what, subject=subject, version=version)
        if answer is None:
            raise SchemaNotFound(f"{what} is not in the schema registry {self._shown_url}")
        return await self._resolved(answer, what, chain)

    async def _get(self, path: str, what: str, **values: Any) -> dict[str, Any] | None:
        """The JSON answer for one of the client's paths; None for 404; RegistryUnavailable otherwise."""
        url, method = self._client.url_manager.url_for(path, **values)
        try:
            response = await self._client.request(url, method=method)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(
                f"schema registry {self._shown_url} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise RegistryUnavailable(
                f"schema registry {self._shown_url} answered HTTP {response.status_code} for {what}"
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise UnsupportedSchema(f"schema registry {self._shown_url} answered {what} with no JSON object")
        return answer

    @property
    def _shown_url(self) -> str:
        """The URL without credentials (``http://user:secret@host`` must not reach a log line)."""
        parts = httpx.URL(self.url)
        return str(parts.copy_with(username=None, password=None)) if parts.userinfo else self.url


class SchemaCache:
    """Schema id -> :class:`ReadPlan`, filled by :meth:`prefetch`; one fetch per id however many records."""

    def __init__(self, source: SchemaSource) -> None:
        self._source = source
        self._plans: dict[int, ReadPlan] = {}
        self._failures: dict[int, _Failure] = {}
        self._pending: dict[int, asyncio.Future[None]] = {}
        self.fetches = 0

    async def prefetch(self, blobs: Iterable[bytes | None]) -> None:
        """Fetch the schemas of every Confluent-framed blob whose id is not cached yet."""
        wanted = {
            schema_id
            for blob in blobs
            if blob is not None and (schema_id := framed_schema_id(blob)) is not None
        }
        missing = [schema_id for schema_id in wanted if schema_id not in self._plans]
        if missing:
            await asyncio.gather(*(self._fetch_once(schema_id) for schema_id in missing))

    async def _fetch_once(self, schema_id: int) -> None:
        if schema_id in self._plans:  # fetched while this call waited to run
            return
        pending = self._pending.get(schema_id)
        if pending is not None:  # another agent is fetching it right now
            await asyncio.shield(pending)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[schema_id] = done
        try:
            self.fetches += 1
            schema = await self._source.fetch(schema_id)
            self._plans[schema_id] = ReadPlan.compile(schema_id, schema)
            self._failures.pop(schema_id, None)
        except (TimeoutError, RegistryUnavailable) as exc:
            self._failures[schema_id] = _Failure(str(exc), retriable=True)
        except (SchemaNotFound, UnsupportedSchema) as exc:
            self._failures[schema_id] = _Failure(str(exc), retriable=False)
        except Exception as exc:  # a schema fastavro refuses, a malformed answer
            self._failures[schema_id] = _Failure(
                f"schema id {schema_id} cannot be used: {type(exc).__name__}: {exc}", retriable=False
            )
        finally:
            del self._pending[schema_id]
            done.set_result(None)

    def plan(self, schema_id: int, where: RecordCoordinates, what: str) -> ReadPlan:
        plan = self._plans.get(schema_id)
        if plan is not None:
            return plan
        failure = self._failures.get(schema_id)
        if failure is None:
            failure = _Failure(f"schema id {schema_id} was not fetched before decoding", retriable=True)
        raise DecodeError(where, f"Avro {what}: {failure.message}", retriable=failure.retriable)


class AvroDecoder:
    """A decoder (``(data, where) -> value``) for Confluent-framed Avro, reading schemas from a cache."""

    def __init__(self, cache: SchemaCache, what: str = "value") -> None:
        self.cache = cache
        self.what = what

    def __call__(self, data: bytes, where: RecordCoordinates) -> Any:
        schema_id = framed_schema_id(data)
        if schema_id is None:
            found = f"byte 0x{data[0]:02x}" if data else "an empty value"
            raise DecodeError(
                where,
                f"Avro {self.what}: not Confluent Avro framing (expected magic byte 0x00 and a 4-byte "
                f"schema id, found {found}{'' if len(data) >= HEADER_SIZE else f' in {len(data)} bytes'})",
            )
        return self.read(schema_id, data, where)

    def read(self, schema_id: int, data: bytes, where: RecordCoordinates) -> Any:
        plan = self.cache.plan(schema_id, where, self.what)
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            value = fastavro.schemaless_reader(
                body, plan.parsed, None, return_record_name=True, return_record_name_override=True
            )
        except Exception as exc:  # EOFError, IndexError (a varint past the end), UnicodeDecodeError, ...
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise DecodeError(
                where,
                f"Avro {self.what}: truncated or corrupt body for schema id {schema_id} ({detail})",
            ) from None
        left = len(data) - body.tell()
        if left:
            raise DecodeError(
                where,
                f"Avro {self.what}: {left} bytes left after the record read with schema id {schema_id} "
                "(written with another schema, or corrupt)",
            )
        if plan.render is None:
            return value
        try:
            return plan.render(value)
        except Exception as exc:  # e.g. a date out of Python's range
            raise DecodeError(
                where, f"Avro {self.what}: cannot render schema id {schema_id}: {type(exc).__name__}: {exc}"
            ) from None
