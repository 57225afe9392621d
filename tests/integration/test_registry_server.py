"""The test Schema Registry, driven over HTTP by the real client (python-schema-registry-client).

The client caches what it registers and fetches, so reads that must reach the server use a fresh client
from ``make_client``.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from schema_registry.client import AsyncSchemaRegistryClient
from schema_registry.client.errors import ClientError
from schema_registry.client.schema import AvroSchema, JsonSchema

from tests.registry_server import CONTENT_TYPE, SchemaRegistryServer

SUBJECT = "my.topic-value"

READING_V1: dict[str, Any] = {
    "type": "record",
    "name": "Reading",
    "namespace": "com.example.sensors",
    "fields": [
        {"name": "device", "type": "string"},
        {"name": "temperature", "type": "double"},
    ],
}
READING_V2: dict[str, Any] = {
    **READING_V1,
    "fields": [*READING_V1["fields"], {"name": "unit", "type": "string", "default": "C"}],
}
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"device": {"type": "string"}, "temperature": {"type": "number"}},
    "required": ["device"],
}


@pytest.fixture
def registry() -> Iterator[SchemaRegistryServer]:
    with SchemaRegistryServer() as server:
        yield server


@pytest.fixture
def make_client(registry: SchemaRegistryServer) -> Callable[[], AsyncSchemaRegistryClient]:
    """A factory of clients with empty caches, each with a short timeout so a hang fails fast."""
    return lambda: AsyncSchemaRegistryClient(url=registry.url, timeout=httpx.Timeout(5.0))


@pytest.fixture
def client(make_client: Callable[[], AsyncSchemaRegistryClient]) -> AsyncSchemaRegistryClient:
    return make_client()


@pytest.mark.parametrize("subject", [SUBJECT, "odd subject: ü+&=-value"])
async def test_register_is_idempotent_and_get_by_id_returns_the_schema(
    subject: str, client: AsyncSchemaRegistryClient, make_client: Callable[[], AsyncSchemaRegistryClient]
) -> None:
    schema_id = await client.register(subject, READING_V1)

    assert schema_id == 1
    assert await make_client().register(subject, READING_V1) == schema_id  # lookup, not a new version
    fetched = await make_client().get_by_id(schema_id)
    assert isinstance(fetched, AvroSchema)
    assert fetched.raw_schema == READING_V1
    assert await client.get_versions(subject) == [1]
    assert await client.get_subjects() == [subject]


async def test_ids_are_global_and_shared_across_subjects(
    registry: SchemaRegistryServer, client: AsyncSchemaRegistryClient
) -> None:
    first = registry.register("a-value", READING_V1)
    second = registry.register("a-value", READING_V2)
    # The same schema under another subject reuses its id; re-registered text may differ in layout.
    shared = await client.register("b-value", AvroSchema(READING_V1))
    assert (
        registry.register(
            "a-value",
            '{"type":"record","name":"Reading","namespace":"com.example.sensors",'
            '"fields":[{"name":"device","type":"string"},'
            '{"name":"temperature","type":"double"}]}',
        )
        == first
    )

    assert (first, second, shared) == (1, 2, 1)
    pairs = await client.get_schema_subject_versions(first)
    assert pairs is not None
    assert sorted((p.subject, p.version) for p in pairs) == [("a-value", 1), ("b-value", 1)]


async def test_get_by_id_of_an_unknown_id_is_none(client: AsyncSchemaRegistryClient) -> None:
    assert await client.get_by_id(42) is None


async def test_get_schema_latest_and_by_version(
    registry: SchemaRegistryServer, client: AsyncSchemaRegistryClient
) -> None:
    v1_id = registry.register(SUBJECT, READING_V1)
    v2_id = registry.register(SUBJECT, READING_V2)

    latest = await client.get_schema(SUBJECT)
    first = await client.get_schema(SUBJECT, version=1)

    assert latest is not None
    assert (latest.subject, latest.version, latest.schema_id) == (SUBJECT, 2, v2_id)
    assert latest.schema.raw_schema == READING_V2
    assert first is not None
    assert (first.version, first.schema_id) == (1, v1_id)
    assert first.schema.raw_schema == READING_V1
    assert await client.get_schema(SUBJECT, version=3) is None
    assert await client.get_schema("no-such-subject") is None


async def test_check_version(registry: SchemaRegistryServer, client: AsyncSchemaRegistryClient) -> None:
    schema_id = registry.register(SUBJECT, READING_V1)

    found = await client.check_version(SUBJECT, READING_V1)

    assert found is not None
    assert (found.subject, found.schema_id, found.version) == (SUBJECT, schema_id, 1)
    assert await client.check_version(SUBJECT, READING_V2) is None
    assert await client.check_version("no-such-subject", READING_V1) is None


async def test_get_subjects_and_delete_subject(
    registry: SchemaRegistryServer, client: AsyncSchemaRegistryClient, make_client: Callable[[], Any]
) -> None:
    schema_id = registry.register("a-value", READING_V1)
    registry.register("a-value", READING_V2)
    registry.register("b-value", READING_V1)

    assert await client.get_subjects() == ["a-value", "b-value"]
    assert await client.delete_subject("a-value") == [1, 2]
    assert await client.get_subjects() == ["b-value"]
    assert await client.delete_subject("a-value") == []  # 404 40401, which the client maps to []
    assert await client.get_versions("a-value") == []
    # Deletes are soft for ids (as in Confluent): the id still resolves; versions are never reused.
    assert await make_client().get_by_id(schema_id) is not None
    registry.register("a-value", READING_V1)
    assert await client.get_versions("a-value") == [3]


async def test_json_schema_round_trips_as_json(
    client: AsyncSchemaRegistryClient, make_client: Callable[[], AsyncSchemaRegistryClient]
) -> None:
    schema_id = await client.register("json-value", JSON_SCHEMA, schema_type="JSON")

    fetched = await make_client().get_by_id(schema_id)
    latest = await make_client().get_schema("json-value")

    assert isinstance(fetched, JsonSchema)
    assert fetched.schema_type == "JSON"
    assert fetched.raw_schema == JSON_SCHEMA
    assert latest is not None
    assert isinstance(latest.schema, JsonSchema)


async def test_invalid_schemas_are_rejected(
    registry: SchemaRegistryServer, client: AsyncSchemaRegistryClient
) -> None:
    # The client checks Avro itself before sending, so the invalid schema goes over plain HTTP here.
    bad = {"type": "record", "name": "Bad", "fields": [{"name": "x", "type": "no.such.Type"}]}
    async with httpx.AsyncClient(base_url=registry.url, timeout=5.0) as http:
        response = await http.post(f"/subjects/{SUBJECT}/versions", json={"schema": json.dumps(bad)})

    assert response.status_code == 422
    assert response.json()["error_code"] == 42201
    with pytest.raises(ValueError, match="Invalid schema"):
        registry.register(SUBJECT, bad)
    assert await client.get_subjects() == []


async def test_percent_encoded_subjects_are_decoded(
    registry: SchemaRegistryServer, client: AsyncSchemaRegistryClient
) -> None:
    # python-schema-registry-client puts subjects into paths unencoded; a careful client encodes them.
    async with httpx.AsyncClient(base_url=registry.url, timeout=5.0) as http:
        response = await http.post(
            "/subjects/what%3F%23%20is%25this-value/versions", json={"schema": json.dumps(READING_V1)}
        )

    assert response.json() == {"id": 1}
    assert await client.get_subjects() == ["what?# is%this-value"]


async def test_fetches_counts_only_get_schema_by_id(
    registry: SchemaRegistryServer,
    client: AsyncSchemaRegistryClient,
    make_client: Callable[[], AsyncSchemaRegistryClient],
) -> None:
    schema_id = registry.register(SUBJECT, READING_V1)

    await client.get_by_id(schema_id)
    await client.get_by_id(schema_id)  # served from the client's cache: no request
    await client.get_by_id(99)
    await client.get_schema(SUBJECT)
    await client.check_version(SUBJECT, READING_V2)
    await client.get_schema_subject_versions(schema_id)
    await client.get_subjects()
    await client.register("other-value", READING_V2)
    await make_client().get_by_id(schema_id)

    assert registry.fetches == collections.Counter({schema_id: 2, 99: 1})
    registry.reset_counts()
    assert registry.fetches == collections.Counter()


async def test_fail_answers_the_status_with_a_confluent_error(
    registry: SchemaRegistryServer, make_client: Callable[[], AsyncSchemaRegistryClient]
) -> None:
    schema_id = registry.register(SUBJECT, READING_V1)
    registry.fail(500)

    with pytest.raises(ClientError) as caught:
        await make_client().get_by_id(schema_id)

    assert caught.value.http_code == 500
    assert caught.value.server_traceback == {
        "error_code": 50001,
        "message": "Simulated failure (HTTP 500)",
    }
    assert registry.fetches[schema_id] == 1  # failed requests are counted too
    registry.fail(None)
    assert await make_client().get_by_id(schema_id) is not None


async def test_stopped_server_gives_a_connection_error_and_restarts_on_the_same_url(
    registry: SchemaRegistryServer, make_client: Callable[[], AsyncSchemaRegistryClient]
) -> None:
    schema_id = registry.register(SUBJECT, READING_V1)
    url = registry.url
    registry.stop()

    with pytest.raises(httpx.ConnectError):
        await make_client().get_by_id(schema_id)

    registry.start()
    assert registry.url == url
    assert await make_client().get_by_id(schema_id) is not None


async def test_compatibility_and_config(
    registry: SchemaRegistryServer, client: AsyncSchemaRegistryClient
) -> None:
    registry.register(SUBJECT, READING_V1)

    assert await client.get_compatibility() == "BACKWARD"
    assert await client.get_compatibility(SUBJECT) == "BACKWARD"
    assert await client.update_compatibility("FULL", SUBJECT) is True
    assert await client.get_compatibility(SUBJECT) == "FULL"
    assert await client.get_compatibility() == "BACKWARD"
    assert await client.test_compatibility(SUBJECT, READING_V2) is True
    assert await client.test_compatibility(SUBJECT, READING_V2, version=1) is True
    assert await client.test_compatibility(SUBJECT, READING_V2, version=5) is False  # 404 40402
    assert await client.test_compatibility("no-such-subject", READING_V2) is False  # 404 40401


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error_code"),
    [
        ("GET", "/schemas/ids/7", None, 404, 40403),
        ("POST", "/subjects/missing-value", {"schema": '"string"'}, 404, 40401),
        ("GET", f"/subjects/{SUBJECT}/versions/9", None, 404, 40402),
        ("GET", f"/subjects/{SUBJECT}/versions/zero", None, 422, 42202),
        ("POST", f"/subjects/{SUBJECT}/versions", {"schema": "{not json"}, 422, 42201),
        ("PUT", "/config", {"compatibility": "SIDEWAYS"}, 422, 42203),
        ("GET", "/no/such/path", None, 404, 404),
    ],
)
async def test_errors_are_confluent_json(
    registry: SchemaRegistryServer,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    error_code: int,
) -> None:
    registry.register(SUBJECT, READING_V1)
    async with httpx.AsyncClient(base_url=registry.url, timeout=5.0) as http:
        response = await http.request(method, path, json=body)

    assert response.status_code == status
    assert response.headers["content-type"].startswith(CONTENT_TYPE)
    assert response.json()["error_code"] == error_code
    assert isinstance(response.json()["message"], str)
