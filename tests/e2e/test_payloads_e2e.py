"""Every payload form end to end: records produced to the real broker in Avro, Kafka Connect JSON envelopes,
schemaless JSON, String values and Avro keys arrive at the CoAP server as the JSON a device expects.

The Avro schemas are in a real Schema Registry, the session's Apicurio Registry (``apicurio``,
streamapp_harness/apicurio.py, its Confluent-compatible API): registered through python-schema-registry-client
as a producer registers them, framed with the id it answered, and fetched by the worker with the same client.
Nothing here needs a registry fault, so the in-process double is not used; that the worker fetched each schema
exactly once (and asked nothing else) is read from Apicurio's access log.
"""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from schema_registry.client import AsyncSchemaRegistryClient
from schema_registry.client.schema import AvroSchema

from streamapp_harness.apicurio import CCOMPAT_PATH, ApicurioRegistry
from streamapp_harness.kafka_broker import KafkaBroker
from tests.recording_server import RecordingCoapServer

pytestmark = pytest.mark.slow

READING = {
    "type": "record",
    "name": "Reading",
    "namespace": "e2e",
    "fields": [
        {"name": "device", "type": "string"},
        {
            "name": "reading",
            "type": {
                "type": "record",
                "name": "Measure",
                "fields": [{"name": "temp", "type": "double"}, {"name": "unit", "type": "string"}],
            },
        },
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "raw", "type": ["null", "bytes"], "default": None},
    ],
}
DEVICE_KEY = {
    "type": "record",
    "name": "DeviceKey",
    "namespace": "e2e",
    "fields": [{"name": "id", "type": "string"}],
}


async def register(apicurio: ApicurioRegistry, subject: str, schema: dict[str, Any]) -> int:
    """Register ``schema`` as a producer's serializer does; the id it answers goes in the frame."""
    return await AsyncSchemaRegistryClient(apicurio.url).register(subject, AvroSchema(schema))


def fetched_once(apicurio: ApicurioRegistry, before: Counter[tuple[str, str]], schema_id: int) -> None:
    """Since ``before``, Apicurio answered one request: the schema by id (its log line may lag a moment)."""
    request = ("GET", f"{CCOMPAT_PATH}/schemas/ids/{schema_id}")
    apicurio.wait_served(*request, 1, since=before)
    assert apicurio.requests() - before == {request: 1}


def avro(schema_id: int, schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), datum)
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


def envelope(i: int) -> bytes:
    schema = {
        "type": "struct",
        "optional": False,
        "fields": [
            {"field": "id", "type": "int32"},
            {
                "field": "amount",
                "type": "bytes",
                "name": "org.apache.kafka.connect.data.Decimal",
                "parameters": {"scale": "3"},
            },
            {"field": "when", "type": "int64", "name": "org.apache.kafka.connect.data.Timestamp"},
            {"field": "on", "type": "int32", "name": "org.apache.kafka.connect.data.Date"},
        ],
    }
    unscaled = (i * 1001).to_bytes(4, "big", signed=True)
    payload = {"id": i, "amount": base64.b64encode(unscaled).decode(), "when": 1_700_000_000_000 + i, "on": 1}
    return json.dumps({"schema": schema, "payload": payload}).encode()


async def test_auto_delivers_avro_connect_json_and_plain_json_with_tombstone_delete(
    broker: KafkaBroker,
    recorder: RecordingCoapServer,
    apicurio: ApicurioRegistry,
    start_worker,
    unique: str,
) -> None:
    avro_topic, connect_topic, plain_topic = (f"{unique}-{form}" for form in ("avro", "connect", "plain"))
    for topic in (avro_topic, connect_topic, plain_topic):
        await broker.create_topic(topic, partitions=2)
    schema_id = await register(apicurio, f"{avro_topic}-value", READING)
    before = apicurio.requests()
    n = 30
    await broker.produce(
        avro_topic,
        [
            avro(
                schema_id,
                READING,
                {
                    "device": f"d{i % 3}",
                    "reading": {"temp": 20 + i / 4, "unit": "C"},
                    "price": Decimal(i * 7) / 100,
                    "day": 19782 + i,
                    "at": 1_700_000_000_000 + i,
                    "raw": bytes([i]) if i % 2 else None,
                },
            )
            for i in range(n)
        ],
        partitions=[i % 2 for i in range(n)],
    )
    await broker.produce(connect_topic, [envelope(i) for i in range(n)], partitions=[i % 2 for i in range(n)])
    plain_values: list[bytes | None] = [json.dumps({"n": i}).encode() for i in range(n)] + [None]
    await broker.produce(plain_topic, plain_values, keys=[b"dev-x"] * (n + 1), partitions=[0] * (n + 1))
    kcql = (
        f"INSERT INTO avro/{{device}} SELECT reading.temp AS t, price, day, at, raw FROM {avro_topic}; "
        f"INSERT INTO connect SELECT * FROM {connect_topic}; "
        f"INSERT INTO plain/{{_key}} SELECT n FROM {plain_topic} PROPERTIES(tombstone=delete)"
    )
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": kcql,
            "schema.registry.url": apicurio.url,
        }
    )
    worker.wait_until(lambda: len(recorder.requests) >= 3 * n + 1, what=f"{3 * n + 1} requests")

    avro_requests = [r for r in recorder.requests if r.path.startswith("/avro/")]
    assert len(avro_requests) == n
    for request in avro_requests:
        i = json.loads(request.payload)["at"] - 1_700_000_000_000
        raw = f'"{base64.b64encode(bytes([i])).decode()}"' if i % 2 else "null"
        day = "2024-02-29" if i == 0 else f"2024-03-{i:02d}"
        expected = f'{{"t":{20 + i / 4!r},"price":{Decimal(i * 7) / 100:.2f},"day":"{day}",'
        expected += f'"at":{1_700_000_000_000 + i},"raw":{raw}}}'
        assert request.payload == expected.encode(), f"record {i}"
        assert request.path == f"/avro/d{i % 3}"
    fetched_once(apicurio, before, schema_id)

    connect = [json.loads(r.payload, parse_float=Decimal) for r in recorder.requests_for("connect")]
    assert sorted(c["id"] for c in connect) == list(range(n))
    for c in connect:
        i = c["id"]
        assert c == {
            "id": i,
            "amount": Decimal(i * 1001) / 1000,
            "when": 1_700_000_000_000 + i,
            "on": "1970-01-02",
        }
    assert any(b'"amount":0.000,' in r.payload for r in recorder.requests_for("connect"))  # scale kept

    plain = recorder.requests_for("plain/dev-x")
    assert [(r.method, r.payload) for r in plain] == [
        ("PUT", json.dumps({"n": i}, separators=(",", ":")).encode()) for i in range(n)
    ] + [("DELETE", b"")]
    assert worker.stop() == 0


async def test_string_values_with_avro_keys_and_a_located_error_for_bad_json(
    broker: KafkaBroker,
    recorder: RecordingCoapServer,
    apicurio: ApicurioRegistry,
    start_worker,
    unique: str,
) -> None:
    topic = f"{unique}-strings"
    await broker.create_topic(topic, partitions=1)
    key_id = await register(apicurio, f"{topic}-key", DEVICE_KEY)
    before = apicurio.requests()
    n = 20
    values = [json.dumps({"v": i, "note": "ok"}).encode() for i in range(n)] + [b"{not json"]
    keys = [avro(key_id, DEVICE_KEY, {"id": f"dev-{i % 4}"}) for i in range(n + 1)]
    produced = await broker.produce(topic, values, keys=keys, partitions=[0] * (n + 1))
    bad_offset = produced[-1][1]
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": f"INSERT INTO s/{{_key.id}} SELECT _key.id AS id, v FROM {topic}",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "key.converter": "io.confluent.connect.avro.AvroConverter",
            "key.converter.schema.registry.url": apicurio.url,
        }
    )
    assert worker.wait_exit(timeout=120) != 0
    got = [(r.path, json.loads(r.payload)) for r in recorder.requests]
    assert got == [(f"/s/dev-{i % 4}", {"id": f"dev-{i % 4}", "v": i}) for i in range(n)]
    (stop,) = worker.events("worker.stopping")
    assert (stop["topic"], stop["partition"], stop["offset"]) == (topic, 0, bad_offset)
    assert stop["why"].startswith(
        f"connect.coap.error.policy=THROW: record {topic}/0@{bad_offset}: "
        "invalid JSON in string value: Expecting property name"
    )
    fetched_once(apicurio, before, key_id)
