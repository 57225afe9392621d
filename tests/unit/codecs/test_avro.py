"""Confluent-framed Avro: reading and rendering every Avro type, the schema cache, and every bad input."""

from __future__ import annotations

import asyncio
import io
import json
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamapp.codecs import build_codecs
from streamapp.codecs.avro import AvroDecoder, RegistryUnavailable, SchemaCache, SchemaNotFound
from streamapp.codecs.avro_render import UnsupportedSchema, compile_renderer
from streamapp.codecs.logical import decimal_from_unscaled
from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates
from tests.paths import GOLDEN

WHERE = RecordCoordinates("readings", 2, 41)


class MemorySource:
    """Schemas by id, counting fetches; ``errors[id]`` makes that fetch raise."""

    def __init__(self, schemas: dict[int, Any] | None = None) -> None:
        self.schemas = dict(schemas or {})
        self.errors: dict[int, Exception] = {}
        self.fetched: list[int] = []
        self.gate: asyncio.Event | None = None

    async def fetch(self, schema_id: int) -> Any:
        self.fetched.append(schema_id)
        if self.gate is not None:
            await self.gate.wait()
        if schema_id in self.errors:
            raise self.errors[schema_id]
        if schema_id not in self.schemas:
            raise SchemaNotFound(f"schema id {schema_id} is not in the schema registry")
        return self.schemas[schema_id]


def framed(schema_id: int, schema: Any, datum: Any) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), datum)
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


async def decode(schema: Any, datum: Any, schema_id: int = 1) -> Any:
    source = MemorySource({schema_id: schema})
    cache = SchemaCache(source)
    data = framed(schema_id, schema, datum)
    await cache.prefetch([data])
    return AvroDecoder(cache)(data, WHERE)


def record(*fields: tuple[str, Any], name: str = "R") -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": [{"name": n, "type": t} for n, t in fields]}


async def test_a_plain_record_is_returned_as_read() -> None:
    schema = record(("a", "int"), ("b", "string"), ("c", {"type": "map", "values": "double"}))
    assert await decode(schema, {"a": 1, "b": "x", "c": {"k": 0.5}}) == {"a": 1, "b": "x", "c": {"k": 0.5}}
    assert compile_renderer(schema) is None  # nothing to convert: records are not walked


async def test_bytes_and_fixed_become_base64() -> None:
    schema = record(
        ("b", "bytes"), ("f", {"type": "fixed", "name": "F", "size": 2}), ("o", ["null", "bytes"])
    )
    assert await decode(schema, {"b": b"\xff\x00", "f": b"ab", "o": b"\x01"}) == {
        "b": "/wA=",
        "f": "YWI=",
        "o": "AQ==",
    }


async def test_decimal_is_exact_with_its_scale() -> None:
    schema = record(("d", {"type": "bytes", "logicalType": "decimal", "precision": 40, "scale": 12}))
    value = Decimal("-1234567890123456789012345678.000000000001")
    assert await decode(schema, {"d": value}) == {"d": value}
    assert str((await decode(schema, {"d": Decimal("1.5")}))["d"]) == "1.500000000000"


@given(st.integers(min_value=-(2**127), max_value=2**127 - 1), st.integers(min_value=0, max_value=30))
def test_decimal_from_unscaled_is_exact(unscaled: int, scale: int) -> None:
    value = decimal_from_unscaled(unscaled, scale)
    assert value.as_tuple().exponent == -scale
    sign, digits, _ = value.as_tuple()
    assert (-1 if sign else 1) * int("".join(map(str, digits))) == unscaled  # no rounding at any size
    assert Decimal(str(value)) == value


async def test_dates_times_and_timestamps() -> None:
    schema = record(
        ("d", {"type": "int", "logicalType": "date"}),
        ("t", {"type": "int", "logicalType": "time-millis"}),
        ("ts", {"type": "long", "logicalType": "timestamp-millis"}),
        ("tsu", {"type": "long", "logicalType": "timestamp-micros"}),
        ("u", {"type": "string", "logicalType": "uuid"}),
    )
    raw = fastavro.parse_schema(
        record(("d", "int"), ("t", "int"), ("ts", "long"), ("tsu", "long"), ("u", "string"))
    )
    body = io.BytesIO()
    fastavro.schemaless_writer(body, raw, {"d": 0, "t": 1, "ts": -5, "tsu": 7_000, "u": "abc"})
    source = MemorySource({3: schema})
    cache = SchemaCache(source)
    data = b"\x00\x00\x00\x00\x03" + body.getvalue()
    await cache.prefetch([data])
    assert AvroDecoder(cache)(data, WHERE) == {
        "d": "1970-01-01",
        "t": "00:00:00.001",
        "ts": -5,
        "tsu": 7,
        "u": "abc",
    }


async def test_arrays_maps_and_optional_values_are_rendered_inside() -> None:
    dec = {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 1}
    schema = record(
        ("a", {"type": "array", "items": dec}),
        ("m", {"type": "map", "values": ["null", dec]}),
        ("e", {"type": "enum", "name": "E", "symbols": ["X", "Y"]}),
    )
    got = await decode(schema, {"a": [Decimal("1.5")], "m": {"k": None, "j": Decimal("2.0")}, "e": "Y"})
    assert got == {"a": [Decimal("1.5")], "m": {"k": None, "j": Decimal("2.0")}, "e": "Y"}


async def test_named_types_are_found_by_namespace() -> None:
    inner = {
        "type": "fixed",
        "name": "Money",
        "size": 4,
        "logicalType": "decimal",
        "precision": 8,
        "scale": 2,
    }
    schema = {
        "type": "record",
        "name": "Outer",
        "namespace": "com.example",
        "fields": [
            {"name": "a", "type": inner},
            {"name": "b", "type": "Money"},
            {"name": "c", "type": "com.example.Money"},
        ],
    }
    got = await decode(schema, {"a": Decimal("0.01"), "b": Decimal("-0.02"), "c": Decimal("3.00")})
    assert got == {"a": Decimal("0.01"), "b": Decimal("-0.02"), "c": Decimal("3.00")}


def test_an_ambiguous_union_is_refused_with_its_branches() -> None:
    schema = record(("x", ["int", {"type": "int", "logicalType": "date"}]))
    with pytest.raises(UnsupportedSchema, match="two branches read as int"):
        compile_renderer(schema)


async def test_schemas_are_fetched_once_per_id_even_when_asked_concurrently() -> None:
    schema = record(("a", "int"))
    source = MemorySource({9: schema})
    source.gate = asyncio.Event()
    cache = SchemaCache(source)
    blobs = [framed(9, schema, {"a": n}) for n in range(1000)]
    waiting = [asyncio.create_task(cache.prefetch(blobs)) for _ in range(5)]
    await asyncio.sleep(0)  # let every prefetch reach the pending fetch
    source.gate.set()
    await asyncio.gather(*waiting)
    await cache.prefetch(blobs)
    decoder = AvroDecoder(cache)
    assert [decoder(b, WHERE)["a"] for b in blobs] == list(range(1000))
    assert source.fetched == [9]
    assert cache.fetches == 1


async def test_unknown_schema_id_is_a_final_decode_error() -> None:
    cache = SchemaCache(MemorySource())
    data = b"\x00\x00\x00\x01\x00\x02"
    await cache.prefetch([data])
    with pytest.raises(DecodeError) as info:
        AvroDecoder(cache)(data, WHERE)
    assert str(info.value) == (
        "record readings/2@41: Avro value: schema id 256 is not in the schema registry"
    )
    assert info.value.retriable is False


async def test_unreachable_registry_is_retriable_and_retried_on_the_next_prefetch() -> None:
    schema = record(("a", "int"))
    source = MemorySource({4: schema})
    source.errors[4] = RegistryUnavailable("schema registry http://127.0.0.1:1 unreachable: ConnectError")
    cache = SchemaCache(source)
    data = framed(4, schema, {"a": 1})
    await cache.prefetch([data])
    with pytest.raises(DecodeError, match="unreachable") as info:
        AvroDecoder(cache)(data, WHERE)
    assert info.value.retriable is True
    del source.errors[4]
    await cache.prefetch([data])
    assert AvroDecoder(cache)(data, WHERE) == {"a": 1}
    assert source.fetched == [4, 4]


async def test_a_schema_that_is_not_avro_is_refused() -> None:
    source = MemorySource({5: "not a schema"})
    source.errors[5] = UnsupportedSchema("schema id 5 is a JSON schema, not Avro")
    cache = SchemaCache(source)
    await cache.prefetch([b"\x00\x00\x00\x00\x05\x02"])
    with pytest.raises(DecodeError, match="schema id 5 is a JSON schema, not Avro"):
        AvroDecoder(cache)(b"\x00\x00\x00\x00\x05\x02", WHERE)


async def test_a_schema_fastavro_refuses_is_a_final_error() -> None:
    cache = SchemaCache(
        MemorySource({6: {"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}})
    )
    await cache.prefetch([b"\x00\x00\x00\x00\x06\x02"])
    with pytest.raises(DecodeError, match="schema id 6 cannot be used") as info:
        AvroDecoder(cache)(b"\x00\x00\x00\x00\x06\x02", WHERE)
    assert info.value.retriable is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b'{"a": 1}',
            "not Confluent Avro framing (expected magic byte 0x00 and a 4-byte schema id, found byte 0x7b)",
        ),
        (b"\x00\x00\x01", "found byte 0x00 in 3 bytes"),
        (b"", "found an empty value"),
        (b"\x01\x00\x00\x00\x07\x02", "found byte 0x01"),
    ],
)
async def test_wrong_framing(data: bytes, message: str) -> None:
    cache = SchemaCache(MemorySource())
    with pytest.raises(DecodeError, match=r"record readings/2@41: Avro value: ") as info:
        AvroDecoder(cache)(data, WHERE)
    assert message in str(info.value)


async def test_truncated_and_overlong_bodies() -> None:
    schema = record(("s", "string"), ("n", "long"))
    cache = SchemaCache(MemorySource({7: schema}))
    data = framed(7, schema, {"s": "hello", "n": 123456})
    await cache.prefetch([data])
    decoder = AvroDecoder(cache)
    for cut in range(5, len(data)):
        with pytest.raises(DecodeError, match="truncated or corrupt body for schema id 7"):
            decoder(data[:cut], WHERE)
    with pytest.raises(DecodeError, match="2 bytes left after the record read with schema id 7"):
        decoder(data + b"\x02\x04", WHERE)


async def test_corrupt_body_is_a_decode_error() -> None:
    schema = record(("s", ["null", "string"]))
    cache = SchemaCache(MemorySource({8: schema}))
    await cache.prefetch([b"\x00\x00\x00\x00\x08\x0c"])
    with pytest.raises(DecodeError, match="schema id 8"):
        AvroDecoder(cache)(b"\x00\x00\x00\x00\x08\x0c", WHERE)  # union branch 6 of 2
    await cache.prefetch([b"\x00\x00\x00\x00\x08\x02\x04\xff\xfe"])
    with pytest.raises(DecodeError, match=r"corrupt body for schema id 8 \(UnicodeDecodeError"):
        AvroDecoder(cache)(b"\x00\x00\x00\x00\x08\x02\x04\xff\xfe", WHERE)


async def test_auto_reads_avro_keys_and_values_through_one_cache() -> None:
    value_schema = record(("t", "double"))
    key_schema = record(("id", "string"), name="K")
    source = MemorySource({1: value_schema, 2: key_schema})
    codecs = build_codecs("auto", "auto", schema_source=source)
    value = framed(1, value_schema, {"t": 21.5})
    key = framed(2, key_schema, {"id": "dev-1"})
    await codecs.prefetch([value, key, b'{"json": true}', None])
    assert codecs.value(value, WHERE) == {"t": 21.5}
    assert codecs.key(key, WHERE) == {"id": "dev-1"}
    assert codecs.value(b'{"json": true}', WHERE) == {"json": True}
    assert codecs.key(b"plain-key", WHERE) == "plain-key"
    with pytest.raises(DecodeError, match=r"Avro key: not Confluent Avro framing"):
        build_codecs("auto", "avro", schema_source=source).key(b"plain-key", WHERE)


def test_golden_inputs_match_their_schema_files() -> None:
    """The generator's outputs are what is committed (guards against editing one and not the other)."""
    schema_files = sorted((GOLDEN / "avro").glob("*.avsc"))
    assert schema_files, f"no golden Avro schemas in {GOLDEN / 'avro'}"
    for schema_file in schema_files:
        fastavro.parse_schema(json.loads(schema_file.read_text()))
        assert schema_file.with_suffix(".input").read_bytes()[0] == 0
        assert schema_file.with_suffix(".expected").exists()
