"""Decode throughput per payload form, each against the bare library call doing the same parse, same run.

``python -m bench.bench_decode [--records N] [--repeats R] [--results PATH]``

A 20-field device record (nested record, array, map, optional, decimal, date, timestamp) in every form the
sink reads: schemaless JSON, a String holding JSON, a Kafka Connect JSON envelope, and Confluent-framed Avro
(also through ``auto`` detection). For each form the candidate is the sink's decoder as the pipeline calls it
(value bytes -> JSON-ready value) and the baseline is the least a decoder of that form must do:

| case | candidate | baseline |
|---|---|---|
| json | ``json`` converter | ``json.loads`` |
| string | ``string`` converter | ``bytes.decode`` + ``json.loads`` |
| connect_json | ``json``, ``schemas.enable=true`` (parse, validate, render) | ``json.loads`` |
| avro | ``avro`` converter (framing, cached schema, render) | ``fastavro.schemaless_reader`` on the body |
| auto_avro | ``auto`` converter on Avro | ``fastavro.schemaless_reader`` on the body |

Gated: ``json`` and ``avro`` must keep at least half the baseline's rate (ratio > 0.5): the sink's own
checks, framing and rendering may cost, but not more than the parse itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro

from bench.harness import RESULTS, Comparison, finish, replay, time_passes
from streamapp.codecs import build_codecs
from streamapp.records import RecordCoordinates

BENCHMARK = "decode"
POOL = 1000
WHERE = RecordCoordinates("bench", 0, 0)
SCHEMA_ID = 1

DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}
AVRO_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Reading",
    "namespace": "bench",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "device", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "temp", "type": "double"},
        {"name": "humidity", "type": "int"},
        {"name": "pressure", "type": "double"},
        {"name": "battery", "type": "int"},
        {"name": "rssi", "type": "int"},
        {"name": "snr", "type": "double"},
        {"name": "status", "type": ["null", "string"]},
        {"name": "online", "type": "boolean"},
        {"name": "seq", "type": "long"},
        {"name": "firmware", "type": "string"},
        {"name": "region", "type": "string"},
        {"name": "price", "type": DECIMAL},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {
            "name": "location",
            "type": {
                "type": "record",
                "name": "Location",
                "fields": [
                    {"name": "lat", "type": "double"},
                    {"name": "lon", "type": "double"},
                    {"name": "building", "type": "string"},
                    {"name": "floor", "type": "int"},
                ],
            },
        },
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "counters", "type": {"type": "map", "values": "long"}},
        {"name": "note", "type": ["null", "string"]},
    ],
}

CONNECT_SCHEMA: dict[str, Any] = {
    "type": "struct",
    "name": "bench.Reading",
    "optional": False,
    "fields": [
        {"field": "id", "type": "int64"},
        {"field": "device", "type": "string"},
        {"field": "ts", "type": "int64", "name": "org.apache.kafka.connect.data.Timestamp"},
        {"field": "temp", "type": "double"},
        {"field": "humidity", "type": "int32"},
        {"field": "pressure", "type": "double"},
        {"field": "battery", "type": "int32"},
        {"field": "rssi", "type": "int32"},
        {"field": "snr", "type": "double"},
        {"field": "status", "type": "string", "optional": True},
        {"field": "online", "type": "boolean"},
        {"field": "seq", "type": "int64"},
        {"field": "firmware", "type": "string"},
        {"field": "region", "type": "string"},
        {
            "field": "price",
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "2"},
        },
        {"field": "day", "type": "int32", "name": "org.apache.kafka.connect.data.Date"},
        {
            "field": "location",
            "type": "struct",
            "fields": [
                {"field": "lat", "type": "double"},
                {"field": "lon", "type": "double"},
                {"field": "building", "type": "string"},
                {"field": "floor", "type": "int32"},
            ],
        },
        {"field": "tags", "type": "array", "items": {"type": "string"}},
        {"field": "counters", "type": "map", "keys": {"type": "string"}, "values": {"type": "int64"}},
        {"field": "note", "type": "string", "optional": True},
    ],
}


def make_value(i: int) -> dict[str, Any]:
    """One record's field values as Avro writes them (Decimal for the decimal, ints for date/timestamp)."""
    return {
        "id": i,
        "device": f"dev-{i % 97:03d}",
        "ts": 1_700_000_000_000 + i * 1000,
        "temp": 18 + (i % 50) * 0.25,
        "humidity": 30 + i % 60,
        "pressure": 990.0 + (i % 40) * 0.5,
        "battery": 100 - i % 100,
        "rssi": -40 - i % 50,
        "snr": (i % 20) / 2,
        "status": None if i % 10 == 9 else ("ok", "warn", "fault")[i % 3],
        "online": i % 5 != 0,
        "seq": i * 7,
        "firmware": f"1.{i % 4}.{i % 10}",
        "region": ("eu", "us", "ap")[i % 3],
        "price": Decimal(i * 37 % 100000) / 100,
        "day": 19_000 + i % 1000,
        "location": {
            "lat": 52.0 + (i % 100) / 1000,
            "lon": 4.0 + (i % 70) / 1000,
            "building": "B1",
            "floor": 3,
        },
        "tags": ["room", f"zone-{i % 4}"],
        "counters": {"tx": i, "rx": i * 2, "err": i % 3},
        "note": None if i % 4 else "serviced",
    }


def avro_framed(value: dict[str, Any], parsed: Any) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, value)
    return b"\x00" + SCHEMA_ID.to_bytes(4, "big") + body.getvalue()


def json_form(value: dict[str, Any]) -> dict[str, Any]:
    """The same record as a producer writing plain JSON would: decimal as a number, date as days."""
    return {**value, "price": float(value["price"])}


def connect_envelope(value: dict[str, Any]) -> bytes:
    unscaled = int(value["price"].scaleb(2))
    size = max(1, (unscaled.bit_length() + 8) // 8)
    payload = {**value, "price": base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode()}
    return json.dumps({"schema": CONNECT_SCHEMA, "payload": payload}).encode()


class _OneSchema:
    async def fetch(self, schema_id: int) -> Any:
        return AVRO_SCHEMA


Decode = Callable[[bytes], Any]


def loop(decode: Decode, stream: Sequence[bytes]) -> Callable[[], None]:
    def run() -> None:
        for data in stream:
            decode(data)

    return run


def compare(
    name: str,
    candidate: Decode,
    baseline: Decode,
    pool: Sequence[bytes],
    records: int,
    repeats: int,
    gate: float | None,
) -> Comparison:
    for data in pool:  # both must accept every record before anything is timed
        candidate(data)
        baseline(data)
    stream = replay(pool, records)
    timings = time_passes(
        {"baseline": loop(baseline, stream), "candidate": loop(candidate, stream)},
        items=records,
        repeats=repeats,
    )
    return Comparison(name, baseline=timings["baseline"], candidate=timings["candidate"], gate=gate)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_decode", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000, help="records per timed pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per implementation")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (default: %(default)s)")
    args = parser.parse_args(argv)

    values = [make_value(i) for i in range(POOL)]
    parsed = fastavro.parse_schema(AVRO_SCHEMA)
    avro_pool = [avro_framed(v, parsed) for v in values]
    json_pool = [json.dumps(json_form(v)).encode() for v in values]
    connect_pool = [connect_envelope(v) for v in values]

    def raw_fastavro(data: bytes) -> Any:
        body = io.BytesIO(data)
        body.seek(5)
        return fastavro.schemaless_reader(body, parsed, None)

    def with_codecs(value_converter: str, envelope: bool | None = None) -> Decode:
        codecs = build_codecs(value_converter, value_envelope=envelope, schema_source=_OneSchema())
        if codecs.schemas is not None:
            asyncio.run(codecs.prefetch(avro_pool[:1]))
        decode = codecs.value
        return lambda data: decode(data, WHERE)

    comparisons = [
        compare("json", with_codecs("json", False), json.loads, json_pool, args.records, args.repeats, 0.5),
        compare(
            "string",
            with_codecs("string"),
            lambda data: json.loads(data.decode("utf-8")),
            json_pool,
            args.records,
            args.repeats,
            None,
        ),
        compare(
            "connect_json",
            with_codecs("json", True),
            json.loads,
            connect_pool,
            args.records,
            args.repeats,
            None,
        ),
        compare("avro", with_codecs("avro"), raw_fastavro, avro_pool, args.records, args.repeats, 0.5),
        compare("auto_avro", with_codecs("auto"), raw_fastavro, avro_pool, args.records, args.repeats, None),
    ]
    params = {
        "records": args.records,
        "repeats": args.repeats,
        "pool": POOL,
        "fields": len(AVRO_SCHEMA["fields"]),
    }
    return finish(
        BENCHMARK,
        params,
        comparisons,
        args.results,
        "{name}: the decoder keeps {ratio:.2f}x of the bare library's rate (must be > {gate:g}x)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
