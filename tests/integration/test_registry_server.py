"""The test Schema Registry answers the two reads the sink makes as Confluent's does, driven over HTTP by
the real client (python-schema-registry-client) the sink uses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from schema_registry.client import AsyncSchemaRegistryClient
from schema_registry.client.errors import ClientError

from tests.registry_server import CONTENT_TYPE, SchemaRegistryServer

READING = {"type": "record", "name": "Reading", "fields": [{"name": "t", "type": "double"}]}


@pytest.fixture
async def client(registry: SchemaRegistryServer) -> AsyncIterator[AsyncSchemaRegistryClient]:
    yield AsyncSchemaRegistryClient(url=registry.url)


async def test_a_schema_by_id_and_the_same_schema_under_two_subjects_is_one_id(
    registry: SchemaRegistryServer, client: AsyncSchemaRegistryClient
) -> None:
    first = registry.register("a-value", READING)
    assert registry.register("b-value", READING) == first
    assert registry.register("c-value", {**READING, "name": "Other"}) == first + 1
    schema = await client.get_by_id(first)
    assert schema is not None and schema.raw_schema == READING
    assert registry.fetches[first] == 1
    assert await client.get_by_id(999) is None


async def test_a_subject_version_latest_and_a_missing_one(
    registry: SchemaRegistryServer, client: AsyncSchemaRegistryClient
) -> None:
    one = registry.register("s", READING)
    two = registry.register("s", {**READING, "fields": [*READING["fields"], {"name": "u", "type": "int"}]})
    assert (await client.get_schema("s", "1")).schema_id == one
    assert (await client.get_schema("s", "latest")).schema_id == two
    assert await client.get_schema("s", "3") is None
    assert registry.version_fetches[("s", "1")] == 1
    registry.forget("s")
    assert await client.get_schema("s", "1") is None
    assert (await client.get_by_id(one)) is not None  # ids still answer after the subject is gone


async def test_fail_answers_confluent_error_json_and_other_paths_are_404(
    registry: SchemaRegistryServer, client: AsyncSchemaRegistryClient
) -> None:
    schema_id = registry.register("s", READING)
    registry.fail(503)
    with pytest.raises(ClientError) as info:
        await client.get_by_id(schema_id)
    assert info.value.http_code == 503
    registry.fail(None)
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{registry.url}/config")
    assert response.status_code == 404 and response.headers["content-type"].startswith(CONTENT_TYPE)
    assert json.loads(response.text)["error_code"] == 404
