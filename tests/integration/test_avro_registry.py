"""Avro decoding with writer schemas fetched over HTTP by the real python-schema-registry-client: golden
files, the one-fetch-per-id cache, unknown ids, references; a registry that is down, slow, or answers garbage.

Which registry: decoding runs against a real one, the session's Apicurio Registry (``apicurio``,
streamapp_harness/apicurio.py, its Confluent-compatible API), with schemas registered through
python-schema-registry-client as a producer registers them and framed with the id it answered; what the
decoder asked is read from Apicurio's access log (``apicurio.requests()``), exactly, as the double counted it.
The in-process double (``registry``, tests/registry_server.py) stays for the faults a real registry cannot be
made to produce on demand: HTTP 503, a slow answer, garbage bodies, and a referenced subject that is gone
(Apicurio, like Confluent, refuses to delete a subject others reference: 422, error code 42206).
"""

from __future__ import annotations

import collections
import io
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from schema_registry.client import AsyncSchemaRegistryClient
from schema_registry.client.schema import AvroSchema

from streamapp.codecs import build_codecs
from streamapp.codecs.avro import AvroDecoder, RegistrySource, SchemaCache
from streamapp.codecs.output import encode_json
from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates
from streamapp_harness.apicurio import CCOMPAT_PATH, ApicurioRegistry
from streamapp_harness.process import free_port
from tests.registry_server import SchemaRegistryServer

GOLDEN = Path(__file__).parents[1] / "golden" / "avro"
WHERE = RecordCoordinates("readings", 0, 12)
SCHEMA = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}


def framed(schema_id: int, n: int) -> bytes:
    zigzag = (n << 1) ^ (n >> 63)
    body = bytearray()
    while True:
        byte, zigzag = zigzag & 0x7F, zigzag >> 7
        body.append(byte | (0x80 if zigzag else 0))
        if not zigzag:
            return b"\x00" + schema_id.to_bytes(4, "big") + bytes(body)


@pytest.fixture
def client(apicurio: ApicurioRegistry) -> AsyncSchemaRegistryClient:
    """The producer's side: python-schema-registry-client on Apicurio's ccompat URL."""
    return AsyncSchemaRegistryClient(apicurio.url)


@pytest.fixture
def prefix(unique: str) -> str:
    """This test's subjects start with it (the registry is the session's; ``unique`` alone is only the
    test's name, which another module may share)."""
    return f"avro-registry.{unique}"


def by_id(schema_id: int) -> tuple[str, str]:
    """The request the decoder makes for a schema id, as Apicurio's access log names it."""
    return "GET", f"{CCOMPAT_PATH}/schemas/ids/{schema_id}"


def by_version(subject: str, version: int) -> tuple[str, str]:
    """The request the decoder makes for a referenced subject version."""
    return "GET", f"{CCOMPAT_PATH}/subjects/{subject}/versions/{version}"


def served_since(
    apicurio: ApicurioRegistry, before: collections.Counter[tuple[str, str]], *expected: tuple[str, str]
) -> collections.Counter[tuple[str, str]]:
    """Every read (GET) Apicurio answered after ``before``, once each of ``expected`` is among them (its
    access log line may follow the answer by a moment). The test's own registrations (POST) are left out:
    their log lines may land after ``before`` was taken, though they were sent before it."""
    for method, path in expected:
        apicurio.wait_served(method, path, 1, since=before)
    served = apicurio.requests() - before
    return collections.Counter({request: n for request, n in served.items() if request[0] != "POST"})


@pytest.mark.parametrize("case", sorted(p.stem for p in GOLDEN.glob("*.input")))
async def test_golden(
    case: str, apicurio: ApicurioRegistry, client: AsyncSchemaRegistryClient, prefix: str
) -> None:
    """Golden input bytes, re-framed with the id the registry gave their schema, render the expected JSON."""
    schema_id = await client.register(f"{prefix}-value", AvroSchema((GOLDEN / f"{case}.avsc").read_text()))
    data = (GOLDEN / f"{case}.input").read_bytes()
    data = b"\x00" + schema_id.to_bytes(4, "big") + data[5:]
    codecs = build_codecs("avro", registry_url=apicurio.url)
    await codecs.prefetch([data])
    assert encode_json(codecs.value(data, WHERE)) == (GOLDEN / f"{case}.expected").read_bytes()


async def test_ten_thousand_records_with_one_schema_id_cause_one_fetch(
    apicurio: ApicurioRegistry, client: AsyncSchemaRegistryClient, prefix: str
) -> None:
    schema_id = await client.register(f"{prefix}-value", AvroSchema(SCHEMA))
    before = apicurio.requests()
    cache = SchemaCache(RegistrySource(apicurio.url))
    decode = AvroDecoder(cache)
    records = [framed(schema_id, n) for n in range(10_000)]
    decoded = []
    for start in range(0, len(records), 100):  # chunks, as the pipeline prefetches them
        chunk = records[start : start + 100]
        await cache.prefetch(chunk)
        decoded.extend(decode(data, WHERE)["n"] for data in chunk)
    assert decoded == list(range(10_000))
    assert served_since(apicurio, before, by_id(schema_id)) == {by_id(schema_id): 1}
    assert cache.fetches == 1


async def test_unknown_schema_id_is_a_poison_record(apicurio: ApicurioRegistry) -> None:
    unknown = 2**31 - 1  # beyond any id the session registers
    codecs = build_codecs("avro", registry_url=apicurio.url)
    data = framed(unknown, 1)
    await codecs.prefetch([data])
    with pytest.raises(DecodeError) as info:
        codecs.value(data, WHERE)
    assert str(info.value) == (
        f"record readings/0@12: Avro value: schema id {unknown} is not in the schema registry {apicurio.url}"
    )
    assert info.value.where == WHERE
    assert info.value.retriable is False


async def test_registry_unreachable_is_retriable_and_recovers(registry: SchemaRegistryServer) -> None:
    schema_id = registry.register("readings-value", json.dumps(SCHEMA))
    data = framed(schema_id, 5)
    codecs = build_codecs("auto", registry_url=registry.url)
    registry.fail(503)
    await codecs.prefetch([data])
    with pytest.raises(DecodeError, match="answered HTTP 503 for schema id") as info:
        codecs.value(data, WHERE)
    assert info.value.retriable is True
    registry.fail(None)
    await codecs.prefetch([data])
    assert codecs.value(data, WHERE) == {"n": 5}


async def test_nobody_listening_is_retriable_and_hides_credentials() -> None:
    url = f"http://ops:s3cret@127.0.0.1:{free_port()}"
    codecs = build_codecs("avro", registry_url=url)
    data = framed(1, 1)
    await codecs.prefetch([data])
    with pytest.raises(
        DecodeError, match=r"Avro value: schema registry http://127\.0\.0\.1:\d+ unreachable: "
    ) as info:
        codecs.value(data, WHERE)
    assert info.value.retriable is True
    assert "s3cret" not in str(info.value)


GEO = {
    "type": "record",
    "name": "Geo",
    "namespace": "com.acme",
    "fields": [{"name": "lat", "type": "double"}],
}
ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "com.acme",
    "fields": [{"name": "city", "type": "string"}, {"name": "at", "type": "com.acme.Geo"}],
}
PERSON = {
    "type": "record",
    "name": "Person",
    "namespace": "com.acme",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "home", "type": "com.acme.Address"},
        {"name": "work", "type": ["null", "Address"]},
        {"name": "paid", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}},
    ],
}
#: PERSON as one self-contained schema, written out by hand: what a producer's serializer writes with.
PERSON_WHOLE = {
    **PERSON,
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "home", "type": {**ADDRESS, "fields": [ADDRESS["fields"][0], {"name": "at", "type": GEO}]}},
        {"name": "work", "type": ["null", "Address"]},
        PERSON["fields"][3],
    ],
}


def register_people(registry: SchemaRegistryServer) -> int:
    """Geo, Address and Person in the double (for the fault that needs it), under subjects of those names."""
    registry.register("geo", json.dumps(GEO))
    address_refs = [{"name": "com.acme.Geo", "subject": "geo", "version": 1}]
    registry.register("address", json.dumps(ADDRESS), references=address_refs)
    person_refs = [{"name": "com.acme.Address", "subject": "address", "version": 1}]
    return registry.register("people-value", json.dumps(PERSON), references=person_refs)


async def register_with_references(
    client: AsyncSchemaRegistryClient, subject: str, schema: dict[str, Any], references: list[dict[str, Any]]
) -> int:
    """Register ``schema`` with Confluent's ``references``, as a producer's serializer posts it:
    python-schema-registry-client 2.6 has no ``references`` argument (and its fastavro parse refuses the
    named types defined elsewhere), so the body goes through the client's own transport."""
    response = await client.request(
        client.url_manager.url + f"subjects/{subject}/versions",
        method="POST",
        body={"schema": json.dumps(schema), "references": references},
    )
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def avro_framed(schema_id: int, schema: dict[str, object], record: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return b"\x00" + schema_id.to_bytes(4, "big") + buffer.getvalue()


async def test_a_schema_with_references_reads_with_the_referenced_definitions(
    apicurio: ApicurioRegistry, client: AsyncSchemaRegistryClient, prefix: str
) -> None:
    """Person -> Address (its own subject) -> Geo (its own subject): fetched through the registry, put in
    place, and rendered like any schema (a union of a referenced record, a decimal)."""
    geo, address = f"{prefix}-geo", f"{prefix}-address"
    await client.register(geo, AvroSchema(GEO))
    await register_with_references(
        client, address, ADDRESS, [{"name": "com.acme.Geo", "subject": geo, "version": 1}]
    )
    address_refs = [{"name": "com.acme.Address", "subject": address, "version": 1}]
    person_id = await register_with_references(client, f"{prefix}-people-value", PERSON, address_refs)
    # A second schema using the same Address: the referenced versions are fetched once for both.
    pair = {
        "type": "record",
        "name": "Pair",
        "namespace": "com.acme",
        "fields": [{"name": "a", "type": "Address"}],
    }
    pair_id = await register_with_references(client, f"{prefix}-pairs-value", pair, address_refs)
    record = {
        "name": "Ada",
        "home": {"city": "London", "at": {"lat": 51.5}},
        "work": {"city": "Paris", "at": {"lat": 48.9}},
        "paid": Decimal("1234.50"),
    }
    person = avro_framed(person_id, PERSON_WHOLE, record)
    pair_record = avro_framed(
        pair_id,
        {**pair, "fields": [{"name": "a", "type": PERSON_WHOLE["fields"][1]["type"]}]},
        {"a": record["home"]},
    )
    before = apicurio.requests()
    codecs = build_codecs("avro", registry_url=apicurio.url)
    await codecs.prefetch([person, pair_record])
    assert encode_json(codecs.value(person, WHERE)) == (
        b'{"name":"Ada","home":{"city":"London","at":{"lat":51.5}},'
        b'"work":{"city":"Paris","at":{"lat":48.9}},"paid":1234.50}'
    )
    assert encode_json(codecs.value(pair_record, WHERE)) == b'{"a":{"city":"London","at":{"lat":51.5}}}'
    wanted = [by_id(person_id), by_id(pair_id), by_version(address, 1), by_version(geo, 1)]
    assert served_since(apicurio, before, *wanted) == dict.fromkeys(wanted, 1)


async def test_a_reference_the_registry_no_longer_has_is_a_poison_record_naming_it(
    registry: SchemaRegistryServer,
) -> None:
    """On the double: a real registry refuses to delete a subject that others reference (Apicurio as
    Confluent: 422, error code 42206), so only the double can lose it under them."""
    person_id = register_people(registry)
    registry.forget("geo")
    data = avro_framed(
        person_id,
        PERSON_WHOLE,
        {"name": "A", "home": {"city": "c", "at": {"lat": 0.0}}, "work": None, "paid": Decimal("0.00")},
    )
    codecs = build_codecs("avro", registry_url=registry.url)
    await codecs.prefetch([data])
    with pytest.raises(DecodeError) as info:
        codecs.value(data, WHERE)
    assert str(info.value) == (
        f"record readings/0@12: Avro value: schema id {person_id}: reference 'com.acme.Address': "
        f"subject 'address' version 1: reference 'com.acme.Geo': "
        f"subject 'geo' version 1 is not in the schema registry {registry.url}"
    )
    assert info.value.retriable is False


async def test_a_slow_registry_is_a_retriable_located_error_within_the_client_timeout(
    registry: SchemaRegistryServer,
) -> None:
    schema_id = registry.register("readings-value", json.dumps(SCHEMA))
    registry.misbehave(delay_s=5.0)
    cache = SchemaCache(RegistrySource(registry.url, timeout_s=0.5))
    data = framed(schema_id, 1)
    started = time.monotonic()
    await cache.prefetch([data])
    assert time.monotonic() - started < 3.0
    with pytest.raises(DecodeError) as info:
        AvroDecoder(cache)(data, WHERE)
    assert info.value.retriable and info.value.where == WHERE
    assert "unreachable" in str(info.value), info.value


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"<html>proxy error</html>",
        b"[1, 2]",
        b'{"schema": 5}',
        b'{"schema": "{not json"}',
        b'{"schema": "{\\"type\\": \\"nonsense\\"}"}',
        b'{"schema": "\\"long\\"", "schemaType": "PROTOBUF"}',
        b'{"schema": "{\\"type\\": \\"record\\", \\"name\\": \\"R\\", \\"fields\\": 3}"}',
        b"\xff\xfe" * 100,
    ],
)
async def test_a_registry_answering_garbage_is_a_located_error(
    registry: SchemaRegistryServer, garbage: bytes
) -> None:
    schema_id = registry.register("readings-value", json.dumps(SCHEMA))
    registry.misbehave(body=garbage)
    cache = SchemaCache(RegistrySource(registry.url))
    data = framed(schema_id, 1)
    await cache.prefetch([data])
    with pytest.raises(DecodeError) as info:
        AvroDecoder(cache)(data, WHERE)
    assert info.value.where == WHERE and str(info.value).startswith("record readings/0@12: Avro value:")
