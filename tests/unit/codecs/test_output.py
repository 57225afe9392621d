"""The JSON body of a request (``streamapp/codecs/output.py``): compact UTF-8, decimals exact as numbers or
as strings (``connect.coap.decimal.format``), and a refusal for what JSON cannot hold."""

from __future__ import annotations

from decimal import Decimal

import pytest

from streamapp.codecs.output import encode_json


def test_encoding_is_compact_utf8_json() -> None:
    assert encode_json({"name": "Zoë", "n": [1, None]}) == '{"name":"Zoë","n":[1,null]}'.encode()


def test_decimals_are_exact_numbers_or_strings() -> None:
    value = {"price": Decimal("12345678901234567890.123456789"), "rate": Decimal("1.50"), "n": 1.5}
    assert encode_json(value) == b'{"price":12345678901234567890.123456789,"rate":1.50,"n":1.5}'
    assert encode_json(value, "string") == b'{"price":"12345678901234567890.123456789","rate":"1.50","n":1.5}'


def test_encoding_still_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError):
        encode_json({"x": float("nan")})
    with pytest.raises(TypeError):
        encode_json({"x": object()})
    with pytest.raises(ValueError):
        encode_json({"x": Decimal("NaN")})
