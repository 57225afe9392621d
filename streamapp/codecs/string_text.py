"""Values written by Kafka Connect's StringConverter: UTF-8 text that holds a JSON document."""

from __future__ import annotations

from typing import Any

from streamapp.codecs.json_text import parse_json_text
from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates


def decode_string(data: bytes, where: RecordCoordinates) -> Any:
    """UTF-8 text holding JSON. Text that is not JSON is a decode error, never an empty body."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(where, f"invalid string: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return parse_json_text(text, where, what="JSON in string value")
