"""Schemaless JSON text, with the checks a device needs (no NaN or Infinity, UTF-8/16/32 only)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates


class NotAJsonNumber(ValueError):
    """Raised from a ``json.loads`` hook: the text holds a number JSON (or the target type) cannot."""


def _reject_constant(name: str) -> Any:
    """Python's json accepts NaN and Infinity; JSON does not, and a device would get invalid JSON."""
    raise NotAJsonNumber(f"{name} is not a JSON number")


def parse_json_text(
    text: str | bytes,
    where: RecordCoordinates,
    what: str = "JSON",
    *,
    prefix: str = "",
    parse_float: Callable[[str], Any] | None = None,
) -> Any:
    """``json.loads`` with located, readable errors: ``record t/0@7: <prefix>invalid <what>: ...``."""
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=parse_float)
    except NotAJsonNumber as exc:
        raise DecodeError(where, f"{prefix}invalid {what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DecodeError(
            where, f"{prefix}invalid {what}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError as exc:
        raise DecodeError(
            where, f"{prefix}invalid {what}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except RecursionError:
        raise DecodeError(where, f"{prefix}invalid {what}: nested too deeply") from None
    except (ValueError, TypeError) as exc:  # e.g. an integer literal longer than Python's 4300 digits
        raise DecodeError(where, f"{prefix}invalid {what}: {exc}") from None


def decode_json(data: bytes, where: RecordCoordinates) -> Any:
    """Schemaless JSON (UTF-8, or UTF-16/32 as RFC 8259 detection allows)."""
    return parse_json_text(data, where)
