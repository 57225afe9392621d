"""Decode Kafka record bytes into Python values ready for selection.

A decoder is ``(data: bytes, where: RecordCoordinates) -> value`` and raises :class:`DecodeError` naming the
record. ``decoder_for`` maps a normalised ``value.converter`` / ``key.converter`` name to its decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamapp.codecs.json import decode_auto, decode_json
from streamapp.codecs.keys import KEY_DECODERS
from streamapp.codecs.string import decode_string
from streamapp.errors import RecordCoordinates

Decoder = Callable[[bytes, RecordCoordinates], Any]

_DECODERS: dict[str, Decoder] = {
    "auto": decode_auto,
    "json": decode_json,
    "string": decode_string,
}


def decoder_for(converter: str) -> Decoder:
    """The value decoder for a normalised converter name (``auto``, ``json``, ``string``)."""
    try:
        return _DECODERS[converter]
    except KeyError:
        raise ValueError(f"no decoder for converter {converter!r}") from None


def key_decoder_for(converter: str) -> Decoder:
    """The key decoder for a normalised converter name (see :mod:`streamapp.codecs.keys`)."""
    try:
        return KEY_DECODERS[converter]
    except KeyError:
        raise ValueError(f"no key decoder for converter {converter!r}") from None


@dataclass(frozen=True, slots=True)
class Record:
    """A decoded Kafka record, as the selector sees it."""

    value: Any
    key: Any
    headers: tuple[tuple[str, bytes], ...]
    topic: str
    partition: int
    offset: int
    timestamp: float | None

    @property
    def where(self) -> RecordCoordinates:
        return RecordCoordinates(self.topic, self.partition, self.offset)


__all__ = ["Decoder", "Record", "decoder_for", "key_decoder_for"]
