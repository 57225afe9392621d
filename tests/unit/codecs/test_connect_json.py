"""Kafka Connect JsonConverter envelopes: golden records, then the rules one by one."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
import simplejson
from hypothesis import given
from hypothesis import strategies as st

from streamapp.codecs.connect_json import decode_envelope_bytes, is_envelope, render_payload
from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates
from tests.paths import GOLDEN as GOLDEN_ROOT

WHERE = RecordCoordinates("t", 0, 7)
GOLDEN = GOLDEN_ROOT / "connect_json"
DECIMAL = "org.apache.kafka.connect.data.Decimal"
TIME = "org.apache.kafka.connect.data.Time"
DATE = "org.apache.kafka.connect.data.Date"

VALID_CASES = sorted(path.stem for path in GOLDEN.glob("*.expected"))
ERROR_CASES = sorted(path.stem for path in GOLDEN.glob("*.error"))


def encode(value: Any) -> bytes:
    """As the sink sends a value: compact JSON, UTF-8, decimals as exact numbers."""
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":"), ensure_ascii=False).encode()


def render(schema: Any, payload: Any) -> Any:
    return render_payload(schema, payload, WHERE)


def render_error(schema: Any, payload: Any) -> str:
    with pytest.raises(DecodeError) as info:
        render_payload(schema, payload, WHERE)
    return str(info.value)


def envelope(schema: Any, payload: Any) -> bytes:
    return json.dumps({"schema": schema, "payload": payload}).encode()


def test_golden_directory_has_cases() -> None:
    assert len(VALID_CASES) >= 10
    assert len(ERROR_CASES) >= 7
    for stem in VALID_CASES + ERROR_CASES:
        assert (GOLDEN / f"{stem}.input").is_file(), stem


@pytest.mark.parametrize("case", VALID_CASES)
def test_golden_value(case: str) -> None:
    data = (GOLDEN / f"{case}.input").read_bytes()
    expected = (GOLDEN / f"{case}.expected").read_bytes()
    assert encode(decode_envelope_bytes(data, WHERE)) == expected


@pytest.mark.parametrize("case", ERROR_CASES)
def test_golden_error(case: str) -> None:
    data = (GOLDEN / f"{case}.input").read_bytes()
    fragment = (GOLDEN / f"{case}.error").read_text(encoding="utf-8")
    with pytest.raises(DecodeError) as info:
        decode_envelope_bytes(data, WHERE)
    message = str(info.value)
    assert fragment in message
    assert "t/0@7" in message
    assert info.value.where == WHERE


# ------------------------------------------------------------------------------------------- envelope


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"schema": None, "payload": 1}, True),
        ({"payload": 1, "schema": {"type": "int8"}}, True),
        ({"schema": None}, False),
        ({"schema": None, "payload": 1, "x": 2}, False),
        ({"schema": None, "value": 1}, False),
        ({}, False),
        ([["schema", None], ["payload", 1]], False),
        ("schema payload", False),
        (None, False),
    ],
)
def test_is_envelope(document: Any, expected: bool) -> None:
    assert is_envelope(document) is expected


def test_key_errors_say_key() -> None:
    with pytest.raises(DecodeError, match=r"^record t/0@7: Kafka Connect JSON key: payload: expected int8"):
        decode_envelope_bytes(envelope({"type": "int8"}, "x"), WHERE, what="key")


def test_missing_and_extra_keys_are_named_together() -> None:
    with pytest.raises(DecodeError) as info:
        decode_envelope_bytes(b'{"schema": null, "value": 1, "ts": 2}', WHERE)
    assert 'missing top-level key "payload"; extra top-level keys "value", "ts"' in str(info.value)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "invalid JSON: Expecting value at line 1 column 1"),
        (b'{"schema": null, "payload": [Infinity]}', "invalid JSON: Infinity is not a JSON number"),
        (b"\xff\xfe\xfd", "invalid JSON: "),
        (b'{"schema": null, "payload": 1e99999999999999999999}', "is out of range"),
        (b'{"schema": null, "payload": ' + b"1" * 5000 + b"}", "invalid JSON: "),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON: nested too deeply"),
    ],
)
def test_unparseable_bytes(data: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_envelope_bytes(data, WHERE)
    assert str(info.value).startswith("record t/0@7: Kafka Connect JSON value: ")
    assert fragment in str(info.value)


def test_floats_are_parsed_exactly() -> None:
    schema = {"type": "bytes", "name": DECIMAL, "parameters": {"scale": "30"}}
    data = envelope(schema, 0).replace(b'"payload": 0', b'"payload": 0.123456789012345678901234567890')
    assert decode_envelope_bytes(data, WHERE) == Decimal("0.123456789012345678901234567890")


# ------------------------------------------------------------------------------------------- integers


@pytest.mark.parametrize(
    ("kind", "low", "high"),
    [
        ("int8", -128, 127),
        ("int16", -32768, 32767),
        ("int32", -(2**31), 2**31 - 1),
        ("int64", -(2**63), 2**63 - 1),
    ],
)
def test_int_ranges(kind: str, low: int, high: int) -> None:
    schema = {"type": kind}
    assert render(schema, low) == low
    assert render(schema, high) == high
    for outside in (low - 1, high + 1):
        message = render_error(schema, outside)
        assert f"payload: {outside} is out of range for {kind} ({low}..{high})" in message


@pytest.mark.parametrize("kind", ["int8", "int16", "int32", "int64"])
@pytest.mark.parametrize("flag", [True, False])
def test_bool_is_not_an_int(kind: str, flag: bool) -> None:
    assert f"expected {kind}, got {json.dumps(flag)}" in render_error({"type": kind}, flag)


def test_whole_numbers_written_with_a_point_are_ints() -> None:
    assert render({"type": "int32"}, Decimal("12.0")) == 12
    assert type(render({"type": "int32"}, Decimal("1E+2"))) is int
    assert "out of range for int8" in render_error({"type": "int8"}, Decimal("1E+999999999"))
    assert "expected int64, got 0.5 (a number with a fraction)" in render_error(
        {"type": "int64"}, Decimal("0.5")
    )


def test_bool_is_not_a_number_and_numbers_are_not_bools() -> None:
    assert "expected double, got true" in render_error({"type": "double"}, True)
    assert "expected boolean, got 1" in render_error({"type": "boolean"}, 1)
    assert render({"type": "boolean"}, False) is False


def test_floats() -> None:
    assert render({"type": "float"}, Decimal("0.1")) == 0.1
    assert type(render({"type": "double"}, 5)) is float
    assert "out of range for double" in render_error({"type": "double"}, Decimal("1e400"))
    assert "out of range for double" in render_error({"type": "float64"}, 10**400)
    assert "out of range for float" in render_error({"type": "float"}, Decimal("1e39"))


# ----------------------------------------------------------------------------------------- recursion


def nested_arrays(depth: int) -> tuple[dict[str, Any], Any]:
    schema: dict[str, Any] = {"type": "int8"}
    payload: Any = 1
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
        payload = [payload]
    return schema, payload


def test_recursion_error_becomes_decode_error() -> None:
    schema, payload = nested_arrays(5000)
    message = render_error(schema, payload)
    assert message == "record t/0@7: Kafka Connect JSON value: payload: nested too deeply"
    assert "nested too deeply" in render_error(None, payload)


def test_moderate_nesting_is_fine_and_errors_have_the_full_path() -> None:
    schema, payload = nested_arrays(50)
    assert render(schema, payload) == payload
    inner = payload
    for _ in range(49):
        inner = inner[0]
    inner[0] = "x"
    assert "Kafka Connect JSON value: payload" + "[0]" * 50 + ': expected int8, got "x"' in render_error(
        schema, payload
    )


# ------------------------------------------------------------------------------------------ logical types


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "00:00:00.000"), (1, "00:00:00.001"), (45_296_789, "12:34:56.789"), (86_399_999, "23:59:59.999")],
)
def test_time(ms: int, text: str) -> None:
    assert render({"type": "int32", "name": TIME}, ms) == text


@pytest.mark.parametrize("ms", [-1, 86_400_000, 2**31 - 1])
def test_time_range(ms: int) -> None:
    assert f"payload: Time {ms} is outside 0..86399999 milliseconds since midnight" in render_error(
        {"type": "int32", "name": TIME}, ms
    )


def test_time_must_be_int32() -> None:
    assert "logical type Time must have type int32" in render_error({"type": "int64", "name": TIME}, 0)


def test_date_range() -> None:
    assert render({"type": "int32", "name": DATE}, 2_932_896) == "9999-12-31"
    assert render({"type": "int32", "name": DATE}, -719_162) == "0001-01-01"
    assert "outside 0001-01-01..9999-12-31" in render_error({"type": "int32", "name": DATE}, 2_932_897)


def decimal_schema(scale: Any) -> dict[str, Any]:
    return {"type": "bytes", "name": DECIMAL, "parameters": {"scale": scale}}


def unscaled_base64(unscaled: int) -> str:
    return base64.b64encode(unscaled.to_bytes(unscaled.bit_length() // 8 + 1, "big", signed=True)).decode()


@given(unscaled=st.integers(min_value=-(2**63), max_value=2**63 - 1), scale=st.integers(0, 18))
def test_decimal_base64_roundtrips_exactly(unscaled: int, scale: int) -> None:
    for scale_parameter in (scale, str(scale)):
        value = render(decimal_schema(scale_parameter), unscaled_base64(unscaled))
        assert type(value) is Decimal
        assert value.as_tuple().exponent == -scale
        assert value.scaleb(scale) == unscaled  # exact: scaleb only moves the exponent here
        assert int(value.scaleb(scale)) == unscaled


def test_decimal_keeps_more_digits_than_the_default_context() -> None:
    unscaled = 10**60 + 1
    value = render(decimal_schema(5), unscaled_base64(-unscaled))
    assert str(value) == "-" + str(unscaled)[:-5] + "." + str(unscaled)[-5:]


@pytest.mark.parametrize(
    ("scale", "fragment"),
    [
        (None, 'Decimal without a "scale" parameter'),
        ("two", 'Decimal needs an integer "scale" parameter, got "two"'),
        ("", 'Decimal needs an integer "scale" parameter, got ""'),
        ("٢", 'Decimal needs an integer "scale" parameter'),
        (2.0, 'Decimal needs an integer "scale" parameter, got 2.0'),
        (True, 'Decimal needs an integer "scale" parameter, got true'),
        (2**31, 'Decimal needs an integer "scale" parameter'),
    ],
)
def test_decimal_scale_must_be_an_integer(scale: Any, fragment: str) -> None:
    assert fragment in render_error(decimal_schema(scale), "AJY=")


def test_decimal_errors() -> None:
    assert "invalid base64 in Decimal field (scale 2)" in render_error(decimal_schema(2), "AJY")
    assert "invalid base64 in Decimal field" in render_error(decimal_schema(2), "ÄJY=")
    assert "empty Decimal field" in render_error(decimal_schema(2), "")
    assert "expected Decimal as base64 text or a JSON number, got true" in render_error(
        decimal_schema(2), True
    )
    assert "too many digits" in render_error(decimal_schema(2), Decimal("1E+999999999"))
    assert "must have type bytes" in render_error({**decimal_schema(2), "type": "string"}, "AJY=")


def test_decimal_numeric() -> None:
    assert str(render(decimal_schema(2), Decimal("1.5"))) == "1.50"
    assert str(render(decimal_schema(2), 3)) == "3.00"
    assert str(render(decimal_schema(2), Decimal("1.2300"))) == "1.23"
    assert str(render(decimal_schema(-2), Decimal("1500"))) == "1.5E+3"
    assert str(render(decimal_schema(2), 0.1)) == "0.10"  # a float from a caller: as printed, not binary
    assert "has more than 1 digits after the point" in render_error(decimal_schema(1), Decimal("0.05"))


# ------------------------------------------------------------------------------------ structs and maps


def test_missing_and_null_follow_connect() -> None:
    schema = {
        "type": "struct",
        "fields": [
            {"field": "a", "type": "int8", "optional": True},
            {"field": "b", "type": "int8", "optional": False, "default": 3},
        ],
    }
    assert render(schema, {}) == {"a": None, "b": 3}
    assert render(schema, {"a": None, "b": None}) == {"a": None, "b": 3}
    assert "payload: null for a required struct" in render_error(schema, None)
    assert render({**schema, "optional": True}, None) is None


def test_invalid_default_is_reported() -> None:
    schema = {"type": "struct", "fields": [{"field": "a", "type": "int8", "default": 300}]}
    assert "payload.a: invalid schema default: 300 is out of range for int8" in render_error(schema, {})


def test_extra_fields_are_all_named() -> None:
    schema = {"type": "struct", "fields": [{"field": "a", "type": "int8"}]}
    assert 'payload: fields not in the schema: "b", "c d"' in render_error(schema, {"a": 1, "b": 2, "c d": 3})


def test_struct_schema_problems() -> None:
    assert 'struct without a "fields" array' in render_error({"type": "struct"}, {})
    duplicate = {"type": "struct", "fields": [{"field": "a", "type": "int8"}, {"field": "a", "type": "int8"}]}
    assert "duplicate field names" in render_error(duplicate, {"a": 1})
    assert 'a struct field without a "field" name' in render_error({"type": "struct", "fields": [{}]}, {})
    assert "expected struct (a JSON object), got an array" in render_error(
        {"type": "struct", "fields": []}, []
    )


def test_path_quotes_names_that_are_not_identifiers() -> None:
    schema = {"type": "struct", "fields": [{"field": "two words", "type": "int8"}]}
    assert 'payload["two words"]: expected int8, got "x"' in render_error(schema, {"two words": "x"})


def test_map_keys_become_strings() -> None:
    def as_map(key_type: str, pairs: list[Any]) -> Any:
        return render({"type": "map", "keys": {"type": key_type}, "values": {"type": "int8"}}, pairs)

    assert as_map("boolean", [[True, 1], [False, 2]]) == {"true": 1, "false": 2}
    assert as_map("double", [[1.5, 1]]) == {"1.5": 1}
    assert as_map("int64", [[5, 1], [5, 2]]) == {"5": 2}
    assert as_map("string", {"k": 1}) == {"k": 1}
    assert "expected a [key, value] pair, got an array" in render_error(
        {"type": "map", "keys": {"type": "int8"}, "values": {"type": "int8"}}, [[1, 2, 3]]
    )
    assert "payload[0][0]: expected int8" in render_error(
        {"type": "map", "keys": {"type": "int8"}, "values": {"type": "int8"}}, [["a", 2]]
    )


def test_unknown_and_malformed_types() -> None:
    assert 'unknown schema type "decimal"' in render_error({"type": "decimal"}, 1)
    assert "unknown schema type null" in render_error({}, 1)
    assert "unknown schema type an array" in render_error({"type": ["int8"]}, 1)
    assert "invalid schema: expected a JSON object, got an array" in render_error([], 1)


ODD_KINDS: tuple[Any, ...] = (
    "int8",
    "float",
    "double",
    "boolean",
    "string",
    "bytes",
    "array",
    "map",
    "struct",
    1,
    None,
)


def test_no_python_exception_escapes_for_odd_inputs() -> None:
    odd_values: list[Any] = [
        *(None, True, 0, -1, 1.5, float("nan"), Decimal("NaN"), Decimal("sNaN"), 10**500, "", "x"),
        *([], [None], [[1, 2]], {}, {"a": None}),
    ]
    odd_schemas: list[Any] = (
        [
            {"type": kind, **extra}
            for kind in ODD_KINDS
            for extra in (
                {},
                {"optional": True},
                {"default": [1]},
                {"name": []},
                {"items": 1, "keys": [], "values": {}, "fields": [1]},
                {
                    "items": {"type": "int8"},
                    "keys": {"type": "int8"},
                    "values": {},
                    "fields": [{"field": "a"}],
                },
            )
        ]
        + [decimal_schema(s) for s in (2, "x", None)]
        + [{"type": "int32", "name": n} for n in (DATE, TIME)]
    )
    for schema in odd_schemas:
        for value in odd_values:  # every failure is a located DecodeError, never the last-resort handler
            try:
                render(schema, value)
            except DecodeError as exc:
                assert "cannot render" not in str(exc), (schema, value)  # the last-resort handler


# --- Schema.String: a JSON document in a string (stream-reactor's third payload kind) ----------------------


@pytest.mark.parametrize("optional", [False, True])
def test_a_string_schema_value_is_parsed_as_a_json_document(optional: bool) -> None:
    schema = {"type": "string", "optional": optional}
    value = decode_envelope_bytes(envelope(schema, '{"id": 7, "temp": 21.50, "tags": ["a"]}'), WHERE)
    assert value == {"id": 7, "temp": Decimal("21.50"), "tags": ["a"]}


def test_an_optional_null_string_stays_null() -> None:
    assert decode_envelope_bytes(envelope({"type": "string", "optional": True}, None), WHERE) is None


@pytest.mark.parametrize("text", ["not json", '{"a": 1', "", "NaN"])
def test_a_string_schema_value_that_is_not_json_is_a_located_error(text: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_envelope_bytes(envelope({"type": "string"}, text), WHERE)
    message = str(info.value)
    assert message.startswith("record t/0@7: Kafka Connect JSON value: payload (schema type string): invalid")


def test_string_keys_and_string_fields_stay_strings() -> None:
    assert decode_envelope_bytes(envelope({"type": "string"}, "device-1"), WHERE, "key") == "device-1"
    struct = {"type": "struct", "fields": [{"field": "doc", "type": "string"}]}
    assert decode_envelope_bytes(envelope(struct, {"doc": '{"a": 1}'}), WHERE) == {"doc": '{"a": 1}'}
