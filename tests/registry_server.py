"""A small in-memory Schema Registry for tests that speaks the Confluent REST API over HTTP.

:class:`SchemaRegistryServer` runs an aiohttp app in its own thread with its own event loop (like
:class:`tests.recording_server.RecordingCoapServer`), so it serves synchronous and async tests alike and a
busy test loop never delays its answers.

Usage::

    with SchemaRegistryServer() as registry:
        schema_id = registry.register("my.topic-value", {"type": "record", "name": "R", "fields": []})
        ...  # point the sink at registry.url
        assert registry.fetches[schema_id] == 1  # the sink fetched the schema once and cached it
        registry.fail(503)  # every request now answers 503 with a Confluent error body
        registry.fail(None)  # back to normal

Behaviour, as far as Confluent's registry defines it:

* Schema ids are global, start at 1 and increase. The same schema (same type, same JSON after parsing, same
  references) gets the same id under every subject; registering it again under one subject returns the
  existing id and adds no version. Versions count from 1 per subject and are never reused, also not after
  the subject is deleted (deletes are soft as far as ids go: ``GET /schemas/ids/{id}`` still answers).
* AVRO schemas are checked with ``fastavro.parse_schema`` (named types from ``references`` are resolved),
  JSON schemas with ``jsonschema``'s meta-schema, PROTOBUF text is stored unchecked; invalid -> 422/42201.
* Every answer, errors and unknown paths included, is JSON of type ``application/vnd.schemaregistry.v1+json``;
  errors look like ``{"error_code": 40403, "message": "Schema not found"}``.
* Compatibility is not checked: ``/compatibility/...`` answers ``is_compatible: true`` for any valid schema
  and existing subject/version. ``GET /config/{subject}`` falls back to the global level (like Confluent's
  ``defaultToGlobal=true``).
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import fastavro
import jsonschema
from aiohttp import web

from tests.threaded_server import ThreadedServer

__all__ = ["CONTENT_TYPE", "SchemaRegistryServer"]

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

SCHEMA_TYPES = ("AVRO", "JSON", "PROTOBUF")
COMPATIBILITY_LEVELS = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)

# Confluent's error codes.
SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
INVALID_COMPATIBILITY_LEVEL = 42203
SERVER_ERROR = 50001

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_Refs = tuple[tuple[str, str, int], ...]  # schema references as (name, subject, version)


class _RegistryError(Exception):
    """An answer other than success; handlers raise it, the middleware renders it."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class _Schema:
    id: int
    text: str
    schema_type: str
    references: _Refs

    def body(self) -> dict[str, Any]:
        """The fields Confluent adds to a schema in answers: ``schema``, and the others when not default."""
        out: dict[str, Any] = {"schema": self.text}
        if self.schema_type != "AVRO":
            out["schemaType"] = self.schema_type
        if self.references:
            out["references"] = [{"name": n, "subject": s, "version": v} for n, s, v in self.references]
        return out


@dataclass
class _Subject:
    versions: dict[int, int] = field(default_factory=dict)  # version -> schema id, in registration order


def _json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, content_type=CONTENT_TYPE)


def _error_response(status: int, error_code: int, message: str) -> web.Response:
    return _json_response({"error_code": error_code, "message": message}, status=status)


def _parse_references(raw: Any) -> _Refs:
    if raw is None:
        return ()
    try:
        return tuple((str(r["name"]), str(r["subject"]), int(r["version"])) for r in raw)
    except (TypeError, KeyError, ValueError) as exc:
        raise _RegistryError(422, INVALID_SCHEMA, f"Invalid references: {raw!r}") from exc


def _parse_version(raw: str) -> int | None:
    """``"latest"``/``"-1"`` -> None (latest), ``"3"`` -> 3; anything else is 422/42202."""
    if raw in ("latest", "-1"):
        return None
    try:
        version = int(raw)
    except ValueError:
        version = 0
    if not 1 <= version <= 2**31 - 1:
        raise _RegistryError(
            422,
            INVALID_VERSION,
            f"The specified version '{raw}' is not a valid version id. "
            'Allowed values are between [1, 2^31-1] and the string "latest"',
        )
    return version


class SchemaRegistryServer(ThreadedServer):
    """In-memory Confluent-compatible Schema Registry on ``host`` (127.0.0.1), served from a daemon thread.

    ``port=None`` lets the OS choose a free port at bind time (no race for it). The chosen port is kept, so
    ``stop()`` then ``start()`` serves again at the same :attr:`url` with the same schemas (a registry that
    went away and came back). All public methods are thread-safe.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, *, startup_timeout: float = 10.0
    ) -> None:
        super().__init__(startup_timeout)
        self.host = host
        self._port: int | None = port or None
        self._lock = threading.Lock()
        self._schemas: dict[int, _Schema] = {}
        self._ids_by_key: dict[tuple[str, str, _Refs], int] = {}
        self._subjects: dict[str, _Subject] = {}
        self._last_version: dict[str, int] = {}  # survives deletes, so versions are never reused
        self._compatibility: dict[str | None, str] = {None: "BACKWARD"}
        self._fail_status: int | None = None
        self.fetches: collections.Counter[int] = collections.Counter()
        #: GETs of ``/subjects/{subject}/versions/{version}`` by (subject, version as written).
        self.version_fetches: collections.Counter[tuple[str, str]] = collections.Counter()
        self._runner: web.AppRunner | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SchemaRegistryServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """``"http://127.0.0.1:P"`` (no trailing slash); still valid after :meth:`stop`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    thread_name = "schema-registry-server"

    # start() returns once aiohttp's site.start() did: the socket is listening, nothing to poll for. (A probe
    # connection would even hurt: on Python 3.11 a connection still being accepted when the server closes
    # leaks its socket, a ResourceWarning in a quick start/stop.) stop() keeps the port and the schemas.

    async def _open(self) -> None:
        self._runner, self._port = await self._serve()

    async def _close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _serve(self) -> tuple[web.AppRunner, int]:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(
            [
                web.get("/subjects", self._get_subjects),
                web.post("/subjects/{subject}/versions", self._post_version),
                web.get("/subjects/{subject}/versions", self._get_versions),
                web.get("/subjects/{subject}/versions/{version}", self._get_version, name="get_version"),
                web.delete("/subjects/{subject}/versions/{version}", self._delete_version),
                web.post("/subjects/{subject}", self._lookup),
                web.delete("/subjects/{subject}", self._delete_subject),
                web.get(r"/schemas/ids/{schema_id:-?\d+}", self._get_by_id, name="get_by_id"),
                web.get(r"/schemas/ids/{schema_id:-?\d+}/versions", self._get_id_versions),
                web.get("/schemas/types", self._get_types),
                # The client asks for the global level at "config/" (an empty subject), so both spellings.
                web.get("/config", self._get_config),
                web.get("/config/", self._get_config),
                web.get("/config/{subject}", self._get_config),
                web.put("/config", self._put_config),
                web.put("/config/", self._put_config),
                web.put("/config/{subject}", self._put_config),
                web.post("/compatibility/subjects/{subject}/versions/{version}", self._compatibility_check),
            ]
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port or 0)
            await site.start()
            port = int(runner.addresses[0][1])
        except BaseException:
            await runner.cleanup()
            raise
        return runner, port

    # -- test controls (thread-safe) -----------------------------------------------------------------------

    def register(
        self,
        subject: str,
        schema: str | dict[str, Any],
        schema_type: str = "AVRO",
        *,
        references: list[dict[str, Any]] | None = None,
    ) -> int:
        """Register ``schema`` under ``subject`` without HTTP and return its id; ``ValueError`` if invalid."""
        text = schema if isinstance(schema, str) else json.dumps(schema)
        try:
            with self._lock:
                return self._register_locked(subject, text, schema_type, _parse_references(references))
        except _RegistryError as exc:
            raise ValueError(exc.message) from exc

    def fail(self, status: int | None) -> None:
        """While set, every request is answered ``status`` with error code 50001; ``None`` = normal again.

        Requests are still counted in :attr:`fetches` while failing.
        """
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"fail() takes an HTTP error status (400-599) or None, not {status}")
        self._fail_status = status

    def reset_counts(self) -> None:
        """Empty :attr:`fetches` and :attr:`version_fetches` (in place: references to them stay valid)."""
        with self._lock:
            self.fetches.clear()
            self.version_fetches.clear()

    # -- the store (call with self._lock held) ---------------------------------------------------------------

    def _register_locked(self, subject: str, text: str, schema_type: str, references: _Refs) -> int:
        key = (schema_type, self._validate_locked(text, schema_type, references), references)
        schema_id = self._ids_by_key.get(key)
        entry = self._subjects.get(subject)
        if schema_id is not None and entry is not None and schema_id in entry.versions.values():
            return schema_id
        if schema_id is None:
            schema_id = len(self._schemas) + 1
            self._schemas[schema_id] = _Schema(schema_id, text, schema_type, references)
            self._ids_by_key[key] = schema_id
        version = self._last_version.get(subject, 0) + 1
        self._last_version[subject] = version
        self._subjects.setdefault(subject, _Subject()).versions[version] = schema_id
        return schema_id

    def _validate_locked(self, text: str, schema_type: str, references: _Refs) -> str:
        """Check the schema and return its canonical form (what identity is decided on)."""
        if schema_type not in SCHEMA_TYPES:
            raise _RegistryError(422, INVALID_SCHEMA, f"Invalid schema type {schema_type!r}")
        if schema_type == "PROTOBUF":
            if not text.strip():
                raise _RegistryError(422, INVALID_SCHEMA, "Empty schema")
            return text.strip()
        try:
            parsed = json.loads(text)
            if schema_type == "AVRO":
                named: dict[str, Any] = {}
                self._load_avro_references_locked(references, named, depth=0)
                fastavro.parse_schema(parsed, named_schemas=named)
            else:
                jsonschema.validators.validator_for(parsed).check_schema(parsed)
        except _RegistryError:
            raise
        except Exception as exc:  # fastavro and jsonschema raise many types for a bad schema
            raise _RegistryError(422, INVALID_SCHEMA, f"Invalid schema: {exc}") from exc
        return json.dumps(parsed, sort_keys=True, separators=(",", ":"))

    def _load_avro_references_locked(self, references: _Refs, named: dict[str, Any], depth: int) -> None:
        if depth > 32:
            raise _RegistryError(422, INVALID_SCHEMA, "Schema references nest too deep")
        for name, subject, version in references:
            schema = self._lookup_version_locked(subject, version, missing=INVALID_SCHEMA)
            self._load_avro_references_locked(schema.references, named, depth + 1)
            try:
                fastavro.parse_schema(json.loads(schema.text), named_schemas=named)
            except Exception as exc:
                raise _RegistryError(422, INVALID_SCHEMA, f"Invalid reference {name!r}: {exc}") from exc

    def _subject_locked(self, subject: str) -> _Subject:
        entry = self._subjects.get(subject)
        if entry is None or not entry.versions:
            raise _RegistryError(404, SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")
        return entry

    def _resolve_version_locked(self, subject: str, version: int | None) -> int:
        """The existing version number ``version`` names (None = latest), else 40401/40402."""
        versions = self._subject_locked(subject).versions
        if version is None:
            return max(versions)
        if version not in versions:
            raise _RegistryError(404, VERSION_NOT_FOUND, f"Version {version} not found.")
        return version

    def _lookup_version_locked(self, subject: str, version: int, missing: int) -> _Schema:
        schema_id = self._subjects.get(subject, _Subject()).versions.get(version)
        if schema_id is None:
            status = 422 if missing == INVALID_SCHEMA else 404
            raise _RegistryError(status, missing, f"Reference {subject!r} version {version} not found")
        return self._schemas[schema_id]

    def _version_body_locked(self, subject: str, version: int) -> dict[str, Any]:
        schema = self._schemas[self._subjects[subject].versions[version]]
        return {"subject": subject, "version": version, "id": schema.id, **schema.body()}

    # -- HTTP (runs in the server thread) ------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Count schema and version fetches, apply :meth:`fail`, render every error as Confluent JSON."""
        if request.match_info.route.name == "get_by_id":
            with self._lock:
                self.fetches[int(request.match_info["schema_id"])] += 1
        elif request.match_info.route.name == "get_version":
            with self._lock:
                self.version_fetches[request.match_info["subject"], request.match_info["version"]] += 1
        status = self._fail_status
        if status is not None:
            return _error_response(status, SERVER_ERROR, f"Simulated failure (HTTP {status})")
        try:
            return await handler(request)
        except _RegistryError as exc:
            return _error_response(exc.status, exc.error_code, exc.message)
        except web.HTTPException as exc:  # unknown path, wrong method: Confluent answers JSON there too
            return _error_response(exc.status, exc.status, f"HTTP {exc.status} {exc.reason}")
        except Exception as exc:
            return _error_response(500, SERVER_ERROR, f"Error in the test registry: {exc!r}")

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.text() or "{}")
        except json.JSONDecodeError as exc:
            raise _RegistryError(400, 400, f"Malformed JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise _RegistryError(422, 422, "The request body must be a JSON object")
        return body

    async def _schema_from_body(self, request: web.Request) -> tuple[str, str, _Refs]:
        body = await self._json_body(request)
        text = body.get("schema")
        if not isinstance(text, str) or not text:
            raise _RegistryError(422, INVALID_SCHEMA, "Empty schema")
        return text, str(body.get("schemaType") or "AVRO"), _parse_references(body.get("references"))

    async def _post_version(self, request: web.Request) -> web.Response:
        text, schema_type, references = await self._schema_from_body(request)
        with self._lock:
            schema_id = self._register_locked(request.match_info["subject"], text, schema_type, references)
        return _json_response({"id": schema_id})

    async def _lookup(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        text, schema_type, references = await self._schema_from_body(request)
        with self._lock:
            versions = self._subject_locked(subject).versions
            key = (schema_type, self._validate_locked(text, schema_type, references), references)
            schema_id = self._ids_by_key.get(key)
            found = [v for v, i in versions.items() if i == schema_id]
            if not found:
                raise _RegistryError(404, SCHEMA_NOT_FOUND, "Schema not found")
            return _json_response(self._version_body_locked(subject, found[0]))

    async def _get_by_id(self, request: web.Request) -> web.Response:
        with self._lock:
            schema = self._schemas.get(int(request.match_info["schema_id"]))
        if schema is None:
            raise _RegistryError(404, SCHEMA_NOT_FOUND, "Schema not found")
        return _json_response(schema.body())

    async def _get_id_versions(self, request: web.Request) -> web.Response:
        schema_id = int(request.match_info["schema_id"])
        with self._lock:
            if schema_id not in self._schemas:
                raise _RegistryError(404, SCHEMA_NOT_FOUND, "Schema not found")
            pairs = [
                {"subject": subject, "version": version}
                for subject, entry in self._subjects.items()
                for version, sid in entry.versions.items()
                if sid == schema_id
            ]
        return _json_response(pairs)

    async def _get_types(self, request: web.Request) -> web.Response:
        return _json_response(list(SCHEMA_TYPES))

    async def _get_subjects(self, request: web.Request) -> web.Response:
        with self._lock:
            return _json_response(sorted(s for s, entry in self._subjects.items() if entry.versions))

    async def _get_versions(self, request: web.Request) -> web.Response:
        with self._lock:
            return _json_response(list(self._subject_locked(request.match_info["subject"]).versions))

    async def _get_version(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        wanted = _parse_version(request.match_info["version"])
        with self._lock:
            return _json_response(
                self._version_body_locked(subject, self._resolve_version_locked(subject, wanted))
            )

    async def _delete_version(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        wanted = _parse_version(request.match_info["version"])
        with self._lock:
            version = self._resolve_version_locked(subject, wanted)
            del self._subjects[subject].versions[version]
        return _json_response(version)

    async def _delete_subject(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        with self._lock:
            versions = list(self._subject_locked(subject).versions)
            del self._subjects[subject]
            self._compatibility.pop(subject, None)
        return _json_response(versions)

    async def _get_config(self, request: web.Request) -> web.Response:
        subject = request.match_info.get("subject") or None
        with self._lock:
            level = self._compatibility.get(subject, self._compatibility[None])
        return _json_response({"compatibilityLevel": level})

    async def _put_config(self, request: web.Request) -> web.Response:
        subject = request.match_info.get("subject") or None
        level = (await self._json_body(request)).get("compatibility")
        if level not in COMPATIBILITY_LEVELS:
            raise _RegistryError(422, INVALID_COMPATIBILITY_LEVEL, f"Invalid compatibility level: {level!r}")
        with self._lock:
            self._compatibility[subject] = level
        return _json_response({"compatibility": level})

    async def _compatibility_check(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        wanted = _parse_version(request.match_info["version"])
        text, schema_type, references = await self._schema_from_body(request)
        with self._lock:
            self._validate_locked(text, schema_type, references)
            self._resolve_version_locked(subject, wanted)
        body: dict[str, Any] = {"is_compatible": True}
        if request.query.get("verbose", "").lower() == "true":
            body["messages"] = []
        return _json_response(body)
