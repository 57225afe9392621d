"""Compiled selectors: projection, renaming, nesting, `*`, missing fields and errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamapp.codecs import Record
from streamapp.errors import SelectError
from streamapp.kcql import parse_kcql
from streamapp.selector import compile_selector


def record(value: Any) -> Record:
    return Record(value=value, key=None, headers=(), topic="readings", partition=2, offset=41, timestamp=None)


def select(kcql: str, value: Any) -> Any:
    (statement,) = parse_kcql(kcql)
    return compile_selector(statement)(record(value))


SAMPLE = {"firstName": "John", "lastName": "Smith", "age": 30, "salary": 4830, "address": {"city": "Leeds"}}


def test_projection_and_renaming_keep_select_order() -> None:
    out = select("INSERT INTO r SELECT salary AS pay, firstName FROM t", SAMPLE)
    assert out == {"pay": 4830, "firstName": "John"}
    assert list(out) == ["pay", "firstName"]


def test_star_is_the_record() -> None:
    assert select("INSERT INTO r SELECT * FROM t", SAMPLE) == SAMPLE
    assert select("INSERT INTO r SELECT * FROM t", [1, 2]) == [1, 2]


def test_star_with_alias_renames_in_place_and_keeps_the_alias() -> None:
    out = select("INSERT INTO r SELECT *, age AS years, address.city AS city FROM t", SAMPLE)
    assert list(out) == ["firstName", "lastName", "years", "salary", "address", "city"]
    assert out["years"] == 30 and out["city"] == "Leeds"


def test_nested_paths() -> None:
    assert select("INSERT INTO r SELECT address.city FROM t", SAMPLE) == {"city": "Leeds"}


def test_missing_fields_are_null() -> None:
    assert select("INSERT INTO r SELECT nope, address.zip, x.y.z FROM t", SAMPLE) == {
        "nope": None,
        "zip": None,
        "z": None,
    }


def test_path_through_a_non_object_names_the_path_and_record() -> None:
    with pytest.raises(SelectError) as info:
        select("INSERT INTO r SELECT age.years FROM t", SAMPLE)
    assert "record readings/2@41" in str(info.value)
    assert "cannot select fields from age: it is a number" in str(info.value)


def test_fields_of_a_non_object_value() -> None:
    with pytest.raises(SelectError, match="the record value: it is a string"):
        select("INSERT INTO r SELECT a FROM t", "text")


JSON_LEAF = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
JSON_OBJECT = st.dictionaries(st.text(min_size=1, max_size=5), JSON_LEAF | st.lists(JSON_LEAF, max_size=3))


@given(JSON_OBJECT)
def test_star_projection_is_identity(value: dict[str, Any]) -> None:
    out = select("INSERT INTO r SELECT * FROM t", value)
    assert out == value and list(out) == list(value)


@given(JSON_OBJECT.filter(lambda d: "a" not in d), st.integers())
def test_rename_then_select_equals_select_of_the_original(value: dict[str, Any], n: int) -> None:
    value = {**value, "a": n}
    assert select("INSERT INTO r SELECT a AS b FROM t", value) == {"b": n}
    renamed = select("INSERT INTO r SELECT *, a AS b FROM t", value)
    assert renamed["b"] == n and "a" not in renamed
    assert {k: v for k, v in renamed.items() if k != "b"} == {k: v for k, v in value.items() if k != "a"}
