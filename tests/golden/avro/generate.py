"""Writes this folder's ``<case>.avsc`` and ``<case>.input`` (Confluent framing + Avro body) from the datums
below. The ``<case>.expected`` files are written by hand: they are what a device must receive.

Run from the repository root: ``.venv/bin/python tests/golden/avro/generate.py``.
"""

from __future__ import annotations

import io
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro

HERE = Path(__file__).parent

PRIMITIVES = {
    "type": "record",
    "name": "Primitives",
    "namespace": "golden",
    "fields": [
        {"name": "nothing", "type": "null"},
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "ratio", "type": "float"},
        {"name": "precise", "type": "double"},
        {"name": "blob", "type": "bytes"},
        {"name": "text", "type": "string"},
    ],
}

NESTED = {
    "type": "record",
    "name": "Device",
    "namespace": "golden",
    "fields": [
        {"name": "id", "type": "string"},
        {
            "name": "location",
            "type": {
                "type": "record",
                "name": "Location",
                "fields": [
                    {"name": "room", "type": "string"},
                    {"name": "floor", "type": "int"},
                ],
            },
        },
        {
            "name": "readings",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Reading",
                    "fields": [{"name": "sensor", "type": "string"}, {"name": "value", "type": "double"}],
                },
            },
        },
        {"name": "counters", "type": {"type": "map", "values": "long"}},
        {"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["OFF", "ON", "FAULT"]}},
        {"name": "mac", "type": {"type": "fixed", "name": "Mac", "size": 6}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "alias", "type": ["null", "string"], "default": None},
        {"name": "backup", "type": ["null", "Location"], "default": None},
        {"name": "history", "type": {"type": "array", "items": "Reading"}},
    ],
}

LOGICAL = {
    "type": "record",
    "name": "Logical",
    "namespace": "golden",
    "fields": [
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "debt", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "count", "type": {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 0}},
        {
            "name": "exact",
            "type": {
                "type": "fixed",
                "name": "Exact",
                "size": 16,
                "logicalType": "decimal",
                "precision": 38,
                "scale": 10,
            },
        },
        {
            "name": "maybe",
            "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 3}],
        },
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "before_epoch", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "at_micros", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "when_micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "when_micros_whole", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {
            "name": "prices",
            "type": {
                "type": "array",
                "items": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 1},
            },
        },
    ],
}

MULTI_UNION = {
    "type": "record",
    "name": "Event",
    "namespace": "golden",
    "fields": [
        {
            "name": "body",
            "type": [
                "null",
                {"type": "record", "name": "Click", "fields": [{"name": "x", "type": "int"}]},
                {
                    "type": "record",
                    "name": "Payment",
                    "fields": [
                        {
                            "name": "amount",
                            "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
                        },
                    ],
                },
            ],
        },
        {"name": "other", "type": ["null", "Click", "Payment"]},
    ],
}

RECURSIVE = {
    "type": "record",
    "name": "Node",
    "namespace": "golden",
    "fields": [
        {"name": "weight", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 1}},
        {"name": "next", "type": ["null", "Node"], "default": None},
    ],
}


def unscaled(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big", signed=True)


CASES: dict[str, tuple[int, dict[str, Any], dict[str, Any]]] = {
    "primitives": (
        101,
        PRIMITIVES,
        {
            "nothing": None,
            "flag": True,
            "small": -42,
            "big": 9007199254740993,
            "ratio": 0.5,
            "precise": 3.141592653589793,
            "blob": b"\x00\x01\xfe\xff",
            "text": "Zoë ☃",
        },
    ),
    "nested": (
        102,
        NESTED,
        {
            "id": "dev-7",
            "location": {"room": "r1", "floor": 3},
            "readings": [{"sensor": "t", "value": 21.5}, {"sensor": "h", "value": 40.0}],
            "counters": {"boots": 3},
            "state": "ON",
            "mac": b"\x00\x1a\x2b\x3c\x4d\x5e",
            "note": "checked",
            "alias": None,
            "backup": {"room": "r2", "floor": 0},
            "history": [],
        },
    ),
    "logical": (
        103,
        LOGICAL,
        {
            "price": Decimal("1.50"),
            "debt": Decimal("-1234567.89"),
            "count": Decimal("98765432109876543210"),
            "exact": Decimal("1234567890123456789012345678.0123456789"),
            "maybe": Decimal("0.001"),
            "day": 19782,  # 2024-02-29
            "before_epoch": -1,  # 1969-12-31
            "at": 49530123,  # 13:45:30.123
            "at_micros": 49530123456,  # 13:45:30.123456
            "when": 1700000000123,
            "when_micros": 1700000000123456,
            "when_micros_whole": 1700000000123000,
            "id": "9b2c0e1a-4f6d-4c1e-9a57-2f1f0d6c8e11",
            "prices": [Decimal("0.5"), Decimal("-99.9")],
        },
    ),
    "multi_union": (
        104,
        MULTI_UNION,
        {"body": ("golden.Payment", {"amount": Decimal("12.34")}), "other": ("golden.Click", {"x": 5})},
    ),
    "recursive": (
        105,
        RECURSIVE,
        {"weight": Decimal("1.0"), "next": {"weight": Decimal("2.5"), "next": {"weight": Decimal("-0.1")}}},
    ),
}


def main() -> None:
    for name, (schema_id, schema, datum) in CASES.items():
        parsed = fastavro.parse_schema(json.loads(json.dumps(schema)))
        body = io.BytesIO()
        stripped = fastavro.parse_schema(_strip_time_types(schema))
        fastavro.schemaless_writer(
            body, stripped if name == "logical" else parsed, _raw(datum) if name == "logical" else datum
        )
        (HERE / f"{name}.avsc").write_text(json.dumps(schema, indent=2) + "\n")
        (HERE / f"{name}.input").write_bytes(b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue())


def _strip_time_types(schema: Any) -> Any:
    """Date/time fields are written from their raw ints (the datum above gives them as ints)."""
    if isinstance(schema, dict):
        kept = {k: _strip_time_types(v) for k, v in schema.items()}
        if kept.get("logicalType") in (
            "date",
            "time-millis",
            "time-micros",
            "timestamp-millis",
            "timestamp-micros",
        ):
            kept.pop("logicalType")
        return kept
    if isinstance(schema, list):
        return [_strip_time_types(s) for s in schema]
    return schema


def _raw(datum: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in datum.items()}


if __name__ == "__main__":
    main()
