"""A Confluent-compatible Schema Registry double for registry faults: the two reads the sink's client makes,
over real HTTP, and the failures a real registry cannot be made to produce on demand.

Faults only: plain decoding is tested against a real registry, Apicurio Registry (the session fixture
``apicurio``, streamapp_harness/apicurio.py). This double stays where a test needs an answer that is late
(:meth:`SchemaRegistryServer.misbehave` ``delay_s``), garbage (``body``), an HTTP error (:meth:`fail`), a
referenced subject gone from under its referrers (:meth:`forget`: Apicurio and Confluent refuse that delete),
or a registry that fails in the middle of a worker's run (tests/e2e/test_secrets_e2e.py).

The sink (``streamapp/codecs/avro.py``, through python-schema-registry-client) asks for
``GET /schemas/ids/{id}`` (a record's schema) and ``GET /subjects/{subject}/versions/{version}`` (a schema
reference). This server answers those as Confluent's does, from schemas a test registers in-process, and
answers every other path 404 in Confluent's error JSON. It runs in its own thread and loop
(:class:`tests.threaded_server.ThreadedServer`), so a busy test loop never delays it.

Usage::

    with SchemaRegistryServer() as registry:
        schema_id = registry.register("my.topic-value", {"type": "record", "name": "R", "fields": []})
        ...  # point the sink at registry.url
        assert registry.fetches[schema_id] == 1  # fetched once, then cached
        registry.fail(503)  # every request answers 503 with a Confluent error body; fail(None) ends it
        registry.forget("my.topic-value")  # the subject's versions are gone (the ids still answer)

As in Confluent's registry: ids are global from 1; the same schema text, type and references get the same id
under every subject; versions count from 1 per subject.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
from typing import Any

from aiohttp import web

from tests.threaded_server import ThreadedServer

__all__ = ["CONTENT_TYPE", "SchemaRegistryServer"]

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SUBJECT_NOT_FOUND, VERSION_NOT_FOUND, SCHEMA_NOT_FOUND, SERVER_ERROR = 40401, 40402, 40403, 50001


def _answer(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, content_type=CONTENT_TYPE)


def _error(status: int, code: int, message: str) -> web.Response:
    return _answer({"error_code": code, "message": message}, status)


class SchemaRegistryServer(ThreadedServer):
    """In-memory registry on 127.0.0.1 and a free port (kept across :meth:`stop`/:meth:`start`)."""

    thread_name = "schema-registry-server"

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.host = host
        self._port = 0
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()
        self._schemas: dict[int, dict[str, Any]] = {}  # id -> the body Confluent answers for it
        self._ids: dict[str, int] = {}  # canonical (text, type, references) -> id
        self._subjects: dict[str, list[int]] = {}  # subject -> schema id per version (index + 1)
        self._fail_status: int | None = None
        self._delay_s = 0.0
        self._garbage: bytes | None = None
        #: GETs of ``/schemas/ids/{id}`` by id, and of ``/subjects/{s}/versions/{v}`` by (s, v as written).
        self.fetches: collections.Counter[int] = collections.Counter()
        self.version_fetches: collections.Counter[tuple[str, str]] = collections.Counter()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    # -- test controls (thread-safe) -----------------------------------------------------------------------

    def register(
        self,
        subject: str,
        schema: str | dict[str, Any],
        schema_type: str = "AVRO",
        *,
        references: list[dict[str, Any]] | None = None,
    ) -> int:
        """Register ``schema`` under ``subject`` (no HTTP) and return its id."""
        text = schema if isinstance(schema, str) else json.dumps(schema)
        body: dict[str, Any] = {"schema": text}
        if schema_type != "AVRO":
            body["schemaType"] = schema_type
        if references:
            body["references"] = [
                {"name": r["name"], "subject": r["subject"], "version": int(r["version"])} for r in references
            ]
        key = json.dumps(body, sort_keys=True)
        with self._lock:
            schema_id = self._ids.setdefault(key, len(self._ids) + 1)
            self._schemas[schema_id] = body
            versions = self._subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
        return schema_id

    def forget(self, subject: str) -> None:
        """Delete ``subject`` (its schemas keep answering by id, as after a soft delete)."""
        with self._lock:
            del self._subjects[subject]

    def misbehave(self, *, delay_s: float = 0.0, body: bytes | None = None) -> None:
        """While set, a schema by id is answered ``delay_s`` late, and with ``body`` (a 200 carrying
        whatever bytes) instead of the schema."""
        self._delay_s, self._garbage = delay_s, body

    def fail(self, status: int | None) -> None:
        """While set, every request answers ``status`` with error code 50001 (still counted)."""
        self._fail_status = status

    # -- HTTP (in the server thread) -----------------------------------------------------------------------

    async def _open(self) -> None:
        app = web.Application()
        app.router.add_get(r"/schemas/ids/{schema_id:\d+}", self._by_id)
        app.router.add_get("/subjects/{subject}/versions/{version}", self._by_version)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()  # listening once this returns: nothing to poll for
        self._port = int(self._runner.addresses[0][1])

    async def _close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _by_id(self, request: web.Request) -> web.Response:
        schema_id = int(request.match_info["schema_id"])
        with self._lock:
            self.fetches[schema_id] += 1
            body = self._schemas.get(schema_id)
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        if self._garbage is not None:
            return web.Response(body=self._garbage, content_type="application/json")
        if self._fail_status is not None:
            return _error(self._fail_status, SERVER_ERROR, f"Simulated failure (HTTP {self._fail_status})")
        return _answer(body) if body is not None else _error(404, SCHEMA_NOT_FOUND, "Schema not found")

    async def _by_version(self, request: web.Request) -> web.Response:
        subject, written = request.match_info["subject"], request.match_info["version"]
        with self._lock:
            self.version_fetches[subject, written] += 1
            versions = self._subjects.get(subject)
        if self._fail_status is not None:
            return _error(self._fail_status, SERVER_ERROR, f"Simulated failure (HTTP {self._fail_status})")
        if versions is None:
            return _error(404, SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")
        number = len(versions) if written in ("latest", "-1") else int(written) if written.isdigit() else 0
        if not 1 <= number <= len(versions):
            return _error(404, VERSION_NOT_FOUND, f"Version {written} not found.")
        schema_id = versions[number - 1]
        return _answer({"subject": subject, "version": number, "id": schema_id, **self._schemas[schema_id]})

    async def _unknown(self, request: web.Request) -> web.Response:
        return _error(404, 404, f"HTTP 404 Not Found: {request.method} {request.path}")
