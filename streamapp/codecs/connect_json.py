"""Kafka Connect ``JsonConverter`` envelopes (``schemas.enable=true``): ``{"schema": ..., "payload": ...}``.

The payload is validated against the Connect schema and rendered as the value handed on to the selector:

* int8/16/32/64 -> ``int`` (range-checked); float/double -> ``float``; boolean, string -> themselves;
  bytes -> canonical standard base64 text;
* ``Decimal`` -> :class:`decimal.Decimal` with exactly ``scale`` digits after the point (from base64 of the
  unscaled two's-complement integer, or from a JSON number when the converter used
  ``decimal.format=NUMERIC``); ``Date`` -> ``"2024-02-29"``; ``Time`` -> ``"12:34:56.789"``;
  ``Timestamp`` -> epoch milliseconds as an ``int``;
* struct -> ``dict`` in schema field order; array -> ``list``; map -> ``dict`` with string keys;
* ``{"schema": null, ...}`` (which Connect accepts: a schemaless value) -> the payload as parsed, JSON
  numbers with a fraction or exponent as ``float``.

The document is parsed with ``parse_float=Decimal`` so that a NUMERIC decimal keeps every digit; the walk
over schema and payload is one recursion, dispatched on the schema type. Every problem is a
:class:`DecodeError` naming the JSON path in the payload (``payload.readings[2].temp``). Paths are built
only when something is wrong: a problem is raised as :class:`_Problem` and each enclosing container adds
its path segment while the exception unwinds, so a valid record pays nothing for them.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from streamapp.codecs.json_text import NotAJsonNumber, parse_json_text
from streamapp.codecs.logical import b64, decimal_from_unscaled, iso_date, iso_time
from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates

__all__ = ["decode_envelope_bytes", "is_envelope", "render_payload"]

DECIMAL = "org.apache.kafka.connect.data.Decimal"
DATE = "org.apache.kafka.connect.data.Date"
TIME = "org.apache.kafka.connect.data.Time"
TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"

_ENVELOPE_KEYS = frozenset(("schema", "payload"))
_MISSING: Any = object()

_INT8 = (-(2**7), 2**7 - 1)
_INT16 = (-(2**15), 2**15 - 1)
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
#: Largest finite IEEE-754 single; a larger "float" payload would be Infinity in Java.
_FLOAT32_MAX = 3.4028234663852886e38
_MS_PER_DAY = 86_400_000
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_MIN_DAYS = 1 - _EPOCH_ORDINAL
_MAX_DAYS = datetime.date.max.toordinal() - _EPOCH_ORDINAL
#: A NUMERIC decimal such as ``1e999999999`` would otherwise be padded with that many zeros to its scale.
_MAX_DECIMAL_PADDING = 10_000
_DESCRIBE_LIMIT = 60


class _Problem(Exception):
    """A validation failure deep in the payload; ``segments`` collects the path, innermost first."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str] = []


# --------------------------------------------------------------------------------------------- envelope


def is_envelope(document: Any) -> bool:
    """True when document is a dict whose keys are exactly {"schema", "payload"}."""
    return (
        isinstance(document, dict) and len(document) == 2 and "schema" in document and "payload" in document
    )


def _parse_decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError:  # an exponent beyond what decimal can hold, e.g. 1e9999999999999999999
        raise NotAJsonNumber(f"the number {_clip(text)} is out of range") from None


def _parse(data: bytes, where: RecordCoordinates, prefix: str) -> Any:
    """``parse_json_text`` with floats as :class:`Decimal`, its messages after ``prefix``."""
    return parse_json_text(data, where, prefix=f"{prefix}: ", parse_float=_parse_decimal)


def decode_envelope_bytes(data: bytes, where: RecordCoordinates, what: str = "value") -> Any:
    """Parse bytes as JSON with floats parsed as decimal.Decimal (exactness for numeric decimals),
    require an envelope (error naming any extra or missing top-level keys, or 'not a JSON object'),
    validate payload against schema and return the rendered value."""
    prefix = f"Kafka Connect JSON {what}"
    document = _parse(data, where, prefix)
    if not isinstance(document, dict):
        raise DecodeError(
            where,
            f"{prefix}: not a JSON object but {_describe(document)} (expected an envelope "
            '{"schema": ..., "payload": ...}, as JsonConverter writes with schemas.enable=true)',
        )
    if not is_envelope(document):
        problems = []
        missing = [key for key in ("schema", "payload") if key not in document]
        if missing:
            problems.append(f"missing top-level key{_plural(missing)} {_names(missing)}")
        extra = [key for key in document if key not in _ENVELOPE_KEYS]
        if extra:
            problems.append(f"extra top-level key{_plural(extra)} {_names(extra)}")
        raise DecodeError(
            where,
            f"{prefix}: not a Kafka Connect envelope: {'; '.join(problems)} (expected exactly "
            '"schema" and "payload", as JsonConverter writes with schemas.enable=true)',
        )
    value = render_payload(document["schema"], document["payload"], where, what=what)
    if what == "value" and isinstance(value, str) and _is_plain_string(document["schema"]):
        return _string_document(value, where, prefix)
    return value


def _is_plain_string(schema: Any) -> bool:
    """Kafka Connect's Schema.String (optional or not), no logical type."""
    return type(schema) is dict and schema.get("type") == "string" and schema.get("name") is None


def _string_document(text: str, where: RecordCoordinates, prefix: str) -> Any:
    """A value whose schema is Schema.String carries a JSON document (stream-reactor's third payload kind,
    docs/design-notes.md "Payloads"): parse it, so that selections apply; text that is not JSON is a
    located DecodeError for the error policy, never sent as a quoted string. Keys stay strings."""
    return parse_json_text(
        text,
        where,
        "JSON document",
        prefix=f"{prefix}: payload (schema type string): ",
        parse_float=_parse_decimal,
    )


def render_payload(schema: Any, payload: Any, where: RecordCoordinates, *, what: str = "value") -> Any:
    """Validate + render; exposed for tests."""
    try:
        if schema is None:
            return _schemaless(payload)
        return _render(schema, payload)
    except _Problem as problem:
        path = "payload" + "".join(reversed(problem.segments))
        raise DecodeError(where, f"Kafka Connect JSON {what}: {path}: {problem.message}") from None
    except RecursionError:
        raise DecodeError(where, f"Kafka Connect JSON {what}: payload: nested too deeply") from None
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:  # a safety net: not expected
        raise DecodeError(
            where, f"Kafka Connect JSON {what}: payload: cannot render ({type(exc).__name__}: {exc})"
        ) from None


# ------------------------------------------------------------------------------------------------ walk


def _render(schema: Any, payload: Any) -> Any:
    if type(schema) is not dict:
        raise _Problem(f"invalid schema: expected a JSON object, got {_describe(schema)}")
    if payload is None:
        return _render_null(schema)
    name = schema.get("name")
    if name is not None and type(name) is str:
        logical = _LOGICAL.get(name)
        if logical is not None:
            return logical(schema, payload)
    kind = schema.get("type")
    renderer = _RENDERERS.get(kind) if type(kind) is str else None
    if renderer is None:
        raise _Problem(f"unknown schema type {_describe(kind)}")
    return renderer(schema, payload)


def _render_null(schema: dict[str, Any]) -> Any:
    """Connect's rule: a null (or absent) value takes the schema's default, else is null if optional."""
    default = schema.get("default")
    if default is not None:
        try:
            return _render(schema, default)
        except _Problem as problem:
            problem.message = f"invalid schema default: {problem.message}"
            raise
    if schema.get("optional") is True:
        return None
    raise _Problem(
        f"null for a required {_type_label(schema)} (the schema is not optional and has no default)"
    )


def _integer(payload: Any, bounds: tuple[int, int], label: str) -> int:
    low, high = bounds
    if type(payload) is int:  # not isinstance: a bool is no integer here
        if low <= payload <= high:
            return payload
        raise _Problem(f"{_describe(payload)} is out of range for {label} ({low}..{high})")
    kind = type(payload)
    if (kind is Decimal and payload.is_finite()) or (kind is float and math.isfinite(payload)):
        # 1.0 and 1E+2 are whole numbers written with a point or an exponent: accepted; 1.5 is not.
        if not low <= payload <= high:
            raise _Problem(f"{_describe(payload)} is out of range for {label} ({low}..{high})")
        whole = int(payload)
        if whole == payload:
            return whole
        raise _Problem(f"expected {label}, got {_describe(payload)} (a number with a fraction)")
    raise _Problem(f"expected {label}, got {_describe(payload)}")


def _int8(schema: dict[str, Any], payload: Any) -> int:
    return _integer(payload, _INT8, "int8")


def _int16(schema: dict[str, Any], payload: Any) -> int:
    return _integer(payload, _INT16, "int16")


def _int32(schema: dict[str, Any], payload: Any) -> int:
    return _integer(payload, _INT32, "int32")


def _int64(schema: dict[str, Any], payload: Any) -> int:
    return _integer(payload, _INT64, "int64")


def _floating(payload: Any, label: str, limit: float) -> float:
    kind = type(payload)
    if (kind is Decimal and payload.is_finite()) or kind is int or kind is float:
        try:
            value = float(payload)
        except OverflowError:
            value = math.inf
        if math.isfinite(value) and -limit <= value <= limit:
            return value
        raise _Problem(f"{_describe(payload)} is out of range for {label}")
    raise _Problem(f"expected {label}, got {_describe(payload)}")


def _float32(schema: dict[str, Any], payload: Any) -> float:
    # Not rounded to single precision: 0.1 stays 0.1 rather than becoming 0.10000000149011612.
    return _floating(payload, "float", _FLOAT32_MAX)


def _float64(schema: dict[str, Any], payload: Any) -> float:
    return _floating(payload, "double", math.inf)


def _boolean(schema: dict[str, Any], payload: Any) -> bool:
    if type(payload) is bool:
        return payload
    raise _Problem(f"expected boolean, got {_describe(payload)}")


def _string(schema: dict[str, Any], payload: Any) -> str:
    if type(payload) is str:
        return payload
    raise _Problem(f"expected string, got {_describe(payload)}")


def _decode_base64(payload: Any, label: str) -> bytes:
    if type(payload) is not str:
        raise _Problem(f"expected {label} as base64 text, got {_describe(payload)}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _Problem(f"invalid base64 in {label}: {_describe(payload)}") from None


def _bytes(schema: dict[str, Any], payload: Any) -> str:
    """Re-encoded so that equal bytes are always sent as the same text (``QR==`` is sent as ``QQ==``)."""
    return b64(_decode_base64(payload, "bytes field"))


def _struct(schema: dict[str, Any], payload: Any) -> dict[str, Any]:
    fields = schema.get("fields")
    if type(fields) is not list:
        raise _Problem(f'invalid schema: struct without a "fields" array (got {_describe(fields)})')
    if type(payload) is not dict:
        raise _Problem(f"expected struct (a JSON object), got {_describe(payload)}")
    out: dict[str, Any] = {}
    found = 0
    name: Any = None
    try:
        for field in fields:
            name = field.get("field") if type(field) is dict else None
            if type(name) is not str:
                raise _Problem(f'invalid schema: a struct field without a "field" name: {_describe(field)}')
            value = payload.get(name, _MISSING)
            if value is _MISSING:
                out[name] = _missing_field(field)
            else:
                found += 1
                out[name] = _render(field, value)
    except _Problem as problem:
        if type(name) is str:
            problem.segments.append(_member(name))
        raise
    if len(out) != len(fields):
        raise _Problem("invalid schema: the struct has duplicate field names")
    if found != len(payload):
        extra = [key for key in payload if key not in out]
        raise _Problem(f"field{_plural(extra)} not in the schema: {_names(extra)}")
    return out


def _missing_field(field: dict[str, Any]) -> Any:
    """An absent field is treated as null, as Connect does: its default, else null if optional."""
    if field.get("default") is None and field.get("optional") is not True:
        raise _Problem(f"required field is missing ({_type_label(field)})")
    return _render_null(field)


def _array(schema: dict[str, Any], payload: Any) -> list[Any]:
    items = schema.get("items")
    if type(items) is not dict:
        raise _Problem(f'invalid schema: array without an "items" schema (got {_describe(items)})')
    if type(payload) is not list:
        raise _Problem(f"expected array, got {_describe(payload)}")
    out = []
    index = 0
    try:
        for index, item in enumerate(payload):  # noqa: B007 - index is read by the handler
            out.append(_render(items, item))
    except _Problem as problem:
        problem.segments.append(f"[{index}]")
        raise
    return out


def _map(schema: dict[str, Any], payload: Any) -> dict[str, Any]:
    """A map with string keys is a JSON object; any other key type comes as ``[[key, value], ...]``
    (as JsonConverter writes it) and each rendered key becomes a string: ``str()`` of an int, float,
    Decimal or string (so Date and Time keys are their ISO text), ``true``/``false``/``null`` for
    booleans and null, and compact JSON text for a struct, array or map key. A repeated key keeps the
    last value, as a Java map would."""
    keys = schema.get("keys")
    values = schema.get("values")
    if type(keys) is not dict or type(values) is not dict:
        raise _Problem('invalid schema: map without "keys" and "values" schemas')
    out: dict[str, Any] = {}
    if keys.get("type") == "string":
        if type(payload) is not dict:
            raise _Problem(f"expected map with string keys (a JSON object), got {_describe(payload)}")
        key: Any = None
        try:
            for key, value in payload.items():
                out[key] = _render(values, value)
        except _Problem as problem:
            problem.segments.append(_member(key))
            raise
        return out
    if type(payload) is not list:
        raise _Problem(
            f"expected map with {_type_label(keys)} keys (an array of [key, value] pairs), "
            f"got {_describe(payload)}"
        )
    index = 0
    try:
        for index, pair in enumerate(payload):  # noqa: B007 - index is read by the handler
            if type(pair) is not list or len(pair) != 2:
                raise _Problem(f"expected a [key, value] pair, got {_describe(pair)}")
            try:
                rendered_key = _map_key(_render(keys, pair[0]))
            except _Problem as problem:
                problem.segments.append("[0]")
                raise
            try:
                out[rendered_key] = _render(values, pair[1])
            except _Problem as problem:
                problem.segments.append("[1]")
                raise
    except _Problem as problem:
        problem.segments.append(f"[{index}]")
        raise
    return out


def _map_key(key: Any) -> str:
    if type(key) is str:
        return key
    if key is None or type(key) is bool:
        return json.dumps(key)
    if isinstance(key, (dict, list)):
        return json.dumps(key, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(key)


# ---------------------------------------------------------------------------------------- logical types


def _require_type(schema: dict[str, Any], expected: str, logical: str) -> None:
    if schema.get("type") != expected:
        raise _Problem(
            f"invalid schema: logical type {logical} must have type {expected}, "
            f"not {_describe(schema.get('type'))}"
        )


def _decimal_scale(schema: dict[str, Any]) -> int:
    parameters = schema.get("parameters")
    scale = parameters.get("scale") if type(parameters) is dict else None
    if type(scale) is str:
        digits = scale[1:] if scale[:1] in ("-", "+") else scale
        if digits.isascii() and digits.isdigit() and len(digits) <= 10:
            scale = int(scale)
    if type(scale) is int and _INT32[0] <= scale <= _INT32[1]:
        return scale
    raise _Problem(
        f'invalid schema: Decimal needs an integer "scale" parameter, got {_describe(scale)}'
        if scale is not None
        else 'invalid schema: Decimal without a "scale" parameter'
    )


def _decimal(schema: dict[str, Any], payload: Any) -> Decimal:
    """Exactly ``unscaled * 10**-scale`` with exponent ``-scale`` (no decimal context rounds it)."""
    _require_type(schema, "bytes", "Decimal")
    scale = _decimal_scale(schema)
    kind = type(payload)
    if kind is str:
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise _Problem(f"invalid base64 in Decimal field (scale {scale}): {_describe(payload)}") from None
        if not raw:
            # Java's BigInteger refuses zero bytes, so Connect fails on it too.
            raise _Problem("empty Decimal field (base64 of no bytes)")
        return decimal_from_unscaled(int.from_bytes(raw, "big", signed=True), scale)
    if kind is Decimal or kind is int or (kind is float and math.isfinite(payload)):
        return _numeric_decimal(Decimal(repr(payload)) if kind is float else Decimal(payload), scale)
    raise _Problem(f"expected Decimal as base64 text or a JSON number, got {_describe(payload)}")


def _numeric_decimal(number: Decimal, scale: int) -> Decimal:
    """The number as written, given exactly ``scale`` digits after the point if no digit is lost."""
    if not number.is_finite():
        raise _Problem(f"expected Decimal, got {_describe(number)}")
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    target = -scale
    if not any(digits):
        return Decimal((0, (0,), target))  # Java's BigDecimal has no negative zero
    if exponent > target:
        padding = exponent - target
        if padding > _MAX_DECIMAL_PADDING:
            raise _Problem(f"Decimal {_describe(number)} with scale {scale} has too many digits")
        return Decimal((sign, digits + (0,) * padding, target))
    if exponent < target:
        excess = target - exponent
        if excess >= len(digits) or any(digits[-excess:]):
            raise _Problem(f"Decimal {_describe(number)} has more than {scale} digits after the point")
        return Decimal((sign, digits[:-excess], target))
    return number


def _date(schema: dict[str, Any], payload: Any) -> str:
    _require_type(schema, "int32", "Date")
    days = _integer(payload, _INT32, "Date (int32 days since 1970-01-01)")
    if _MIN_DAYS <= days <= _MAX_DAYS:
        return iso_date(days)
    raise _Problem(f"Date {days} (days since 1970-01-01) is outside 0001-01-01..9999-12-31")


def _time(schema: dict[str, Any], payload: Any) -> str:
    _require_type(schema, "int32", "Time")
    ms = _integer(payload, _INT32, "Time (int32 milliseconds since midnight)")
    if not 0 <= ms < _MS_PER_DAY:
        raise _Problem(f"Time {ms} is outside 0..{_MS_PER_DAY - 1} milliseconds since midnight")
    return iso_time(ms, 1000)


def _timestamp(schema: dict[str, Any], payload: Any) -> int:
    _require_type(schema, "int64", "Timestamp")
    return _integer(payload, _INT64, "Timestamp (int64 milliseconds since the epoch)")


_Renderer = Callable[[dict[str, Any], Any], Any]

_RENDERERS: dict[str, _Renderer] = {
    "int8": _int8,
    "int16": _int16,
    "int32": _int32,
    "int64": _int64,
    "float": _float32,
    "float32": _float32,
    "double": _float64,
    "float64": _float64,
    "boolean": _boolean,
    "string": _string,
    "bytes": _bytes,
    "array": _array,
    "map": _map,
    "struct": _struct,
}

_LOGICAL: dict[str, _Renderer] = {
    DECIMAL: _decimal,
    DATE: _date,
    TIME: _time,
    TIMESTAMP: _timestamp,
}


# ---------------------------------------------------------------------------------------------- schemaless


def _schemaless(payload: Any) -> Any:
    """``{"schema": null}``: the payload as schemaless JSON would decode it (numbers with a fraction as
    ``float``, as :mod:`streamapp.codecs.json_text` gives them)."""
    kind = type(payload)
    if kind is Decimal:
        value = float(payload)
        if not math.isfinite(value):
            raise _Problem(f"{_describe(payload)} is out of range for a double")
        return value
    if kind is dict:
        out = {}
        key: Any = None
        try:
            for key, value in payload.items():
                out[key] = _schemaless(value)
        except _Problem as problem:
            problem.segments.append(_member(key))
            raise
        return out
    if kind is list:
        items = []
        index = 0
        try:
            for index, item in enumerate(payload):  # noqa: B007 - index is read by the handler
                items.append(_schemaless(item))
        except _Problem as problem:
            problem.segments.append(f"[{index}]")
            raise
        return items
    return payload


# ---------------------------------------------------------------------------------------------- messages


def _member(name: Any) -> str:
    """``.temp`` for a plain name, ``["two words"]`` otherwise."""
    if type(name) is str and name.isidentifier():
        return f".{name}"
    return f"[{_describe(name)}]"


def _clip(text: str) -> str:
    return text if len(text) <= _DESCRIBE_LIMIT else text[: _DESCRIBE_LIMIT - 1] + "…"


def _describe(value: Any) -> str:
    """A short JSON-like rendering of an offending value for messages."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is str:
        return _clip(json.dumps(value, ensure_ascii=False))
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int) and value.bit_length() > 200:
        return f"a {value.bit_length()}-bit integer"
    return _clip(str(value))


def _type_label(schema: dict[str, Any]) -> str:
    name = schema.get("name")
    kind = schema.get("type")
    if type(name) is str and name in _LOGICAL:
        return name.rsplit(".", 1)[1]
    return kind if type(kind) is str else "value"


def _names(keys: list[Any]) -> str:
    return ", ".join(_describe(key) for key in keys)


def _plural(items: list[Any]) -> str:
    return "" if len(items) == 1 else "s"
