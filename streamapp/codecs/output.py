"""The JSON body a device gets: compact UTF-8, no NaN/Infinity, decimals written exactly.

The standard library's encoder is the fast path. It cannot write a :class:`~decimal.Decimal` (Avro and
Connect decimals, exact timestamps), so a value holding one is encoded by ``simplejson``, which writes the
decimal's digits as they are (``1.50`` stays ``1.50``; a float would round beyond 15-17 digits). With
``decimals="string"`` they are written as JSON strings instead, for devices whose parsers use doubles.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Literal

import simplejson

DecimalFormat = Literal["number", "string"]


def _decimal_as_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_json(value: Any, decimals: DecimalFormat = "number") -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except TypeError:
        if decimals == "number":
            text = simplejson.dumps(
                value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, use_decimal=True
            )
        else:
            text = simplejson.dumps(
                value,
                ensure_ascii=False,
                separators=(",", ":"),
                allow_nan=False,
                use_decimal=False,
                default=_decimal_as_text,
            )
    return text.encode("utf-8")
