"""Compiled selectors: projection, renaming, nesting, `*`, missing fields and errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamapp.errors import SelectError
from streamapp.kcql import parse_kcql
from streamapp.kcql.selector import compile_selector
from streamapp.records import Record


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


@given(JSON_OBJECT.filter(lambda d: "a" not in d and "b" not in d), st.integers())
def test_rename_then_select_equals_select_of_the_original(value: dict[str, Any], n: int) -> None:
    value = {**value, "a": n}
    assert select("INSERT INTO r SELECT a AS b FROM t", value) == {"b": n}
    renamed = select("INSERT INTO r SELECT *, a AS b FROM t", value)
    assert renamed["b"] == n and "a" not in renamed
    assert {k: v for k, v in renamed.items() if k != "b"} == {k: v for k, v in value.items() if k != "a"}


# --- keys, headers, metadata, expansion, IGNORE, templates ------------------------------------------------

from streamapp.kcql.selector import compile_resource  # noqa: E402


def full_record(value: Any, key: Any = None) -> Record:
    return Record(
        value=value,
        key=key,
        headers=(("h", b"one"), ("bin", b"\xff\x00"), ("h", b"two")),
        topic="readings",
        partition=2,
        offset=41,
        timestamp=1700000000.123,
    )


def select_full(kcql: str, value: Any, key: Any = None) -> Any:
    (statement,) = parse_kcql(kcql)
    return compile_selector(statement)(full_record(value, key))


def test_key_header_and_metadata_fields() -> None:
    out = select_full(
        "INSERT INTO r SELECT _key.id AS kid, _key, _header.h, _header.bin, _header.none, _.topic, "
        "_.partition, _.offset, _.timestamp AS ts FROM t",
        SAMPLE,
        key={"id": "dev-7"},
    )
    assert out == {
        "kid": "dev-7",
        "_key": {"id": "dev-7"},
        "h": "two",  # the last header of a name wins
        "bin": "/wA=",  # not UTF-8: base64
        "none": None,
        "topic": "readings",
        "partition": 2,
        "offset": 41,
        "ts": 1700000000123,
    }


def test_expansions_keep_select_order() -> None:
    out = select_full("INSERT INTO r SELECT _.partition, address.*, _key.*, age FROM t", SAMPLE, key={"k": 1})
    assert list(out.items()) == [("partition", 2), ("city", "Leeds"), ("k", 1), ("age", 30)]
    assert select_full("INSERT INTO r SELECT _header.* FROM t", {}) == {"h": "two", "bin": "/wA="}
    assert set(select_full("INSERT INTO r SELECT _.* FROM t", {})) == {
        "topic",
        "partition",
        "offset",
        "timestamp",
    }


def test_expanding_a_non_object_is_an_error() -> None:
    with pytest.raises(SelectError, match=r"readings/2@41: cannot expand age\.\*: it is a number"):
        select_full("INSERT INTO r SELECT age.* FROM t", SAMPLE)
    with pytest.raises(SelectError, match="cannot select fields from the record key: it is a string"):
        select_full("INSERT INTO r SELECT _key.id FROM t", SAMPLE, key="dev-7")


def test_ignore_removes_output_fields_without_touching_the_record() -> None:
    value = {"a": 1, "b": {"c": 2, "d": 3}, "e": 4}
    snapshot = {"a": 1, "b": {"c": 2, "d": 3}, "e": 4}
    out = select_full("INSERT INTO r SELECT *, a AS x FROM t IGNORE b.c, e, missing.path", value)
    assert out == {"x": 1, "b": {"d": 3}}
    assert value == snapshot, "IGNORE changed the decoded record, which other statements also read"
    assert select_full("INSERT INTO r SELECT a AS x, b FROM t IGNORE x", value) == {"b": {"c": 2, "d": 3}}


def test_ignore_commutes_with_renaming_other_fields() -> None:
    value = {"a": 1, "b": 2, "c": 3}
    assert select_full("INSERT INTO r SELECT *, a AS z FROM t IGNORE c", value) == {"z": 1, "b": 2}
    assert select_full("INSERT INTO r SELECT * FROM t IGNORE c", value) == {"a": 1, "b": 2}


def render(kcql: str, value: Any, key: Any = None) -> tuple[str, ...]:
    (statement,) = parse_kcql(kcql)
    return compile_resource(statement)(full_record(value, key))


def test_templates_fill_path_segments_per_record() -> None:
    assert render("INSERT INTO devices/{deviceId}/cmd SELECT * FROM t", {"deviceId": "d 1/x"}) == (
        "devices",
        "d 1/x",  # one Uri-Path segment, whatever it holds
        "cmd",
    )
    assert render("INSERT INTO d/{_key.id}/p{_.partition} SELECT * FROM t", {}, key={"id": 7}) == (
        "d",
        "7",
        "p2",
    )
    assert render("INSERT INTO d/{on} SELECT * FROM t", {"on": True}) == ("d", "true")
    assert render("INSERT INTO plain/path SELECT * FROM t", {}) == ("plain", "path")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({}, r"resource placeholder \{deviceId\}: no value in the record"),
        ({"deviceId": ""}, r"resource placeholder \{deviceId\}: no value in the record"),
        ({"deviceId": {"a": 1}}, r"resource placeholder \{deviceId\}: it is dict, not a string or number"),
    ],
)
def test_a_missing_template_field_is_a_selection_error(value: Any, fragment: str) -> None:
    with pytest.raises(SelectError, match=r"record readings/2@41: " + fragment):
        render("INSERT INTO devices/{deviceId}/cmd SELECT * FROM t", value)
