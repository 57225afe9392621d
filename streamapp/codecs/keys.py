"""Record keys. Keys are often plain strings (device ids), so key decoding is more lenient than values':
``auto`` and ``string`` take a key that is not a JSON object or array as its UTF-8 text."""

from __future__ import annotations

from typing import Any

from streamapp.codecs.json_text import parse_json_text
from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates


def decode_key_text(data: bytes, where: RecordCoordinates) -> Any:
    """``string``: the text; JSON object/array text is parsed so ``_key.f`` works."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(where, f"invalid key: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if text.lstrip()[:1] in ("{", "["):
        return parse_json_text(text, where, what="JSON in string key")
    return text


def decode_key_json_or_text(data: bytes, where: RecordCoordinates) -> Any:
    """JSON when the key parses as JSON, else its UTF-8 text (``auto`` keys that are not Avro)."""
    try:
        return parse_json_text(data, where)
    except DecodeError:
        return decode_key_text(data, where)
