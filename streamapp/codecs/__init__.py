"""Decode Kafka record bytes into Python values ready for selection.

A decoder is ``(data: bytes, where: RecordCoordinates) -> value`` and raises :class:`DecodeError` naming the
record. :func:`build_codecs` makes the value and key decoders for the configured converters:

- ``avro``: Confluent framing, writer schema from the registry (:mod:`streamapp.codecs.avro`);
- ``json``: JSON; a Kafka Connect ``{"schema", "payload"}`` envelope is required when ``schemas.enable`` is
  true, never unwrapped when false, and recognised (exactly those two keys) when unset;
- ``string``: UTF-8 text holding JSON (keys: any text);
- ``auto``: magic byte 0 and a schema id -> Avro, else as ``json`` with ``schemas.enable`` unset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streamapp.codecs.avro import AvroDecoder, RegistrySource, SchemaCache, SchemaSource, framed_schema_id
from streamapp.codecs.connect_json import decode_envelope_bytes, is_envelope
from streamapp.codecs.json_text import decode_json
from streamapp.codecs.keys import decode_key_json_or_text, decode_key_text
from streamapp.codecs.string_text import decode_string
from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates

Decoder = Callable[[bytes, RecordCoordinates], Any]


@dataclass(frozen=True)
class Codecs:
    """The value and key decoders of a worker, and the schema cache they share (Avro only)."""

    value: Decoder
    key: Decoder
    schemas: SchemaCache | None = None

    async def prefetch(self, blobs: Iterable[bytes | None]) -> None:
        """Fetch the writer schemas these values/keys need before they are decoded (no-op without Avro)."""
        if self.schemas is not None:
            await self.schemas.prefetch(blobs)


def build_codecs(
    value_converter: str = "auto",
    key_converter: str = "auto",
    *,
    value_envelope: bool | None = None,
    key_envelope: bool | None = None,
    registry_url: str | None = None,
    schema_source: SchemaSource | None = None,
) -> Codecs:
    """Decoders for normalised converter names (``auto``, ``json``, ``string``, ``avro``).

    ``schema_source`` overrides the registry client (tests); ``avro`` needs one or a ``registry_url``.
    """
    if schema_source is None and registry_url is not None:
        schema_source = RegistrySource(registry_url)
    schemas = SchemaCache(schema_source) if schema_source is not None else None
    value = _decoder(value_converter, value_envelope, schemas, "value", decode_json, decode_string)
    key = _decoder(key_converter, key_envelope, schemas, "key", decode_key_json_or_text, decode_key_text)
    return Codecs(value, key, schemas)


def _decoder(
    converter: str,
    envelope: bool | None,
    schemas: SchemaCache | None,
    what: str,
    parse_json: Decoder,
    parse_string: Decoder,
) -> Decoder:
    avro = AvroDecoder(schemas, what) if schemas is not None else None
    if converter == "avro":
        if avro is None:
            raise ValueError("the avro converter needs a schema registry")
        return avro
    if converter == "string":
        return parse_string
    json_decoder = _with_envelope(parse_json, envelope, what)
    if converter == "json":
        return json_decoder
    if converter == "auto":
        return _auto(json_decoder, avro, what)
    raise ValueError(f"no decoder for converter {converter!r}")


def _with_envelope(parse: Decoder, envelope: bool | None, what: str) -> Decoder:
    if envelope is True:
        return lambda data, where: decode_envelope_bytes(data, where, what)
    if envelope is False:
        return parse

    def detect(data: bytes, where: RecordCoordinates) -> Any:
        document = parse(data, where)
        if is_envelope(document):  # parsed again: numeric decimals need exact (Decimal) parsing
            return decode_envelope_bytes(data, where, what)
        return document

    return detect


def _auto(rest: Decoder, avro: AvroDecoder | None, what: str) -> Decoder:
    def decode(data: bytes, where: RecordCoordinates) -> Any:
        schema_id = framed_schema_id(data)
        if schema_id is None:
            return rest(data, where)
        if avro is None:
            raise DecodeError(
                where,
                f"{what} looks like Confluent Avro (magic byte 0, schema id {schema_id}) "
                "but schema.registry.url is not set",
            )
        return avro.read(schema_id, data, where)

    return decode


__all__ = ["Codecs", "Decoder", "build_codecs"]
