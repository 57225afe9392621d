"""The decoders ``build_codecs`` (``streamapp/codecs/__init__.py``) makes for each converter: schemaless JSON,
String holding JSON, ``auto`` detection, keys. The JSON body they become: test_output.py."""

from __future__ import annotations

import json

import pytest

from streamapp.codecs import Decoder, build_codecs
from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates

WHERE = RecordCoordinates("readings", 1, 7)
SAMPLE = {"firstName": "John", "lastName": "Smith", "age": 30, "salary": 4830}


def decoder_for(converter: str) -> Decoder:
    return build_codecs(converter).value


def key_decoder_for(converter: str) -> Decoder:
    return build_codecs(key_converter=converter).key


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
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"1" * 5000, "Exceeds the limit (4300 digits)"),
    ],
)
def test_invalid_json_is_a_located_decode_error(converter: str, data: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        decoder_for(converter)(data, WHERE)
    assert str(info.value).startswith("record readings/1@7: invalid ")
    assert fragment in str(info.value)


def test_auto_recognises_confluent_avro_and_needs_a_registry() -> None:
    framed = b"\x00" + (42).to_bytes(4, "big") + b"\x02\x06abc"
    with pytest.raises(DecodeError, match=r"Confluent Avro .*schema id 42.*schema.registry.url is not set"):
        decoder_for("auto")(framed, WHERE)


def test_avro_without_a_registry_is_refused() -> None:
    with pytest.raises(ValueError, match="avro converter needs a schema registry"):
        decoder_for("avro")


def test_unknown_converter() -> None:
    with pytest.raises(ValueError, match="no decoder for converter 'protobuf'"):
        decoder_for("protobuf")


def test_keys_auto_without_registry_refuses_avro_and_keeps_plain_text() -> None:
    key_auto = key_decoder_for("auto")
    framed = b"\x00" + (7).to_bytes(4, "big") + b"\x02"
    with pytest.raises(DecodeError, match=r"readings/1@7: key looks like Confluent Avro .*schema id 7"):
        key_auto(framed, WHERE)
    assert key_auto(b"dev-7", WHERE) == "dev-7"
    assert key_auto(b'{"id": 7}', WHERE) == {"id": 7}
    with pytest.raises(DecodeError, match="invalid JSON in string key"):
        key_auto(b"{oops", WHERE)
