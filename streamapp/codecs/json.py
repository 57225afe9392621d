"""Schemaless JSON values, and ``auto`` detection (which knows JSON only, so far)."""

from __future__ import annotations

import json
from typing import Any

from streamapp.errors import DecodeError, RecordCoordinates

#: First byte of the Confluent Schema Registry wire format (then a 4-byte schema id, then Avro).
CONFLUENT_MAGIC = 0


class _NonStandardNumber(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    """Python's json accepts NaN and Infinity; JSON does not, and a device would get invalid JSON."""
    raise _NonStandardNumber(name)


def parse_json_text(text: str | bytes, where: RecordCoordinates, what: str = "JSON") -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except _NonStandardNumber as exc:
        raise DecodeError(where, f"invalid {what}: {exc} is not a JSON number") from None
    except json.JSONDecodeError as exc:
        raise DecodeError(
            where, f"invalid {what}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError as exc:
        raise DecodeError(
            where, f"invalid {what}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def decode_json(data: bytes, where: RecordCoordinates) -> Any:
    """Schemaless JSON (UTF-8, or UTF-16/32 as RFC 8259 detection allows)."""
    return parse_json_text(data, where)


def refuse_confluent_avro(data: bytes, where: RecordCoordinates, what: str = "") -> None:
    """Raise DecodeError if ``data`` has the Confluent Avro framing (refused until Avro is supported)."""
    if len(data) >= 5 and data[0] == CONFLUENT_MAGIC:
        schema_id = int.from_bytes(data[1:5], "big")
        raise DecodeError(
            where,
            f"{what}looks like Confluent Avro (magic byte 0, schema id {schema_id}), "
            "which is not supported yet",
        )


def decode_auto(data: bytes, where: RecordCoordinates) -> Any:
    """Pick the form from the bytes. Confluent-framed Avro is recognised, and refused until supported."""
    refuse_confluent_avro(data, where)
    return parse_json_text(data, where)
