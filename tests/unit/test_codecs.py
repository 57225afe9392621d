"""First-cut payload forms: schemaless JSON, String holding JSON, and `auto`."""

from __future__ import annotations

import json

import pytest

from streamapp.codecs import decoder_for, key_decoder_for
from streamapp.errors import DecodeError, RecordCoordinates
from streamapp.pipeline import encode_json

WHERE = RecordCoordinates("readings", 1, 7)
SAMPLE = {"firstName": "John", "lastName": "Smith", "age": 30, "salary": 4830}


@pytest.mark.parametrize("converter", ["json", "string", "auto"])
def test_json_object(converter: str) -> None:
    assert decoder_for(converter)(json.dumps(SAMPLE).encode(), WHERE) == SAMPLE


@pytest.mark.parametrize("converter", ["json", "auto"])
def test_json_in_utf16_is_detected(converter: str) -> None:
    assert decoder_for(converter)(json.dumps(SAMPLE).encode("utf-16"), WHERE) == SAMPLE


def test_string_must_be_utf8() -> None:
    with pytest.raises(DecodeError, match=r"record readings/1@7: invalid string: not UTF-8"):
        decoder_for("string")(b"\xff\xfe{}", WHERE)


@pytest.mark.parametrize("converter", ["json", "string", "auto"])
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"a": 1', "Expecting ',' delimiter at line 1 column 8"),
        (b"", "Expecting value"),
        (b"not json", "Expecting value at line 1 column 1"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b"[Infinity]", "Infinity is not a JSON number"),
    ],
)
def test_invalid_json_is_a_located_decode_error(converter: str, data: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        decoder_for(converter)(data, WHERE)
    assert str(info.value).startswith("record readings/1@7: invalid ")
    assert fragment in str(info.value)


def test_auto_recognises_confluent_avro_and_refuses_it_for_now() -> None:
    framed = b"\x00" + (42).to_bytes(4, "big") + b"\x02\x06abc"
    with pytest.raises(DecodeError, match=r"Confluent Avro .*schema id 42.*not supported yet"):
        decoder_for("auto")(framed, WHERE)


def test_unknown_converter() -> None:
    with pytest.raises(ValueError, match="no decoder for converter 'avro'"):
        decoder_for("avro")


def test_encoding_is_compact_utf8_json() -> None:
    assert encode_json({"name": "Zoë", "n": [1, None]}) == '{"name":"Zoë","n":[1,null]}'.encode()


def test_keys_auto_refuses_avro_and_keeps_plain_text() -> None:
    key_auto = key_decoder_for("auto")
    framed = b"\x00" + (7).to_bytes(4, "big") + b"\x02"
    with pytest.raises(DecodeError, match=r"readings/1@7: key looks like Confluent Avro .*schema id 7"):
        key_auto(framed, WHERE)
    assert key_auto(b"dev-7", WHERE) == "dev-7"
    assert key_auto(b'{"id": 7}', WHERE) == {"id": 7}
    with pytest.raises(DecodeError, match="invalid JSON in string key"):
        key_auto(b"{oops", WHERE)
