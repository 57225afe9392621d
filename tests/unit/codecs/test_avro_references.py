"""Putting referenced definitions in place (Confluent schema references), as pure schema JSON."""

from __future__ import annotations

import io

import fastavro

from streamapp.codecs.avro_references import defined_names, inline_references

ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "com.acme",
    "fields": [
        {"name": "city", "type": "string"},
        {"name": "country", "type": {"type": "enum", "name": "Country", "symbols": ["DE", "FR"]}},
    ],
}
PERSON = {
    "type": "record",
    "name": "Person",
    "namespace": "com.acme",
    "fields": [
        {"name": "home", "type": "com.acme.Address"},
        {"name": "work", "type": ["null", "Address"], "default": None},  # short name, same namespace
        {"name": "past", "type": {"type": "array", "items": "com.acme.Address"}},
        {"name": "born", "type": "Country"},  # defined inside Address
    ],
}


def test_the_first_use_gets_the_definition_and_later_uses_stay_names() -> None:
    schema = inline_references(PERSON, {"com.acme.Address": ADDRESS})
    fields = {f["name"]: f["type"] for f in schema["fields"]}
    assert fields["home"] == ADDRESS
    assert fields["work"] == ["null", "Address"]
    assert fields["past"] == {"type": "array", "items": "com.acme.Address"}
    assert fields["born"] == "Country"
    assert PERSON["fields"][0]["type"] == "com.acme.Address"  # the input is not changed


def test_the_inlined_schema_reads_what_the_full_schema_wrote() -> None:
    schema = fastavro.parse_schema(inline_references(PERSON, {"com.acme.Address": ADDRESS}))
    record = {
        "home": {"city": "Berlin", "country": "DE"},
        "work": {"city": "Paris", "country": "FR"},
        "past": [{"city": "Lyon", "country": "FR"}],
        "born": "DE",
    }
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, schema, None) == record


def test_a_short_name_is_resolved_in_the_enclosing_namespace_first() -> None:
    other = {"type": "fixed", "name": "Id", "namespace": "org.other", "size": 2}
    mine = {"type": "fixed", "name": "Id", "namespace": "com.acme", "size": 4}
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "com.acme",
        "fields": [{"name": "id", "type": "Id"}],
    }
    inlined = inline_references(schema, {"org.other.Id": other, "com.acme.Id": mine})
    assert inlined["fields"][0]["type"] == mine


def test_a_name_the_schema_defines_itself_is_not_replaced() -> None:
    own = {"type": "enum", "name": "Country", "namespace": "com.acme", "symbols": ["IT"]}
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "com.acme",
        "fields": [{"name": "a", "type": own}, {"name": "b", "type": "Country"}],
    }
    assert (
        inline_references(schema, {"com.acme.Country": {"type": "enum", "name": "X", "symbols": ["Y"]}})
        == schema
    )


def test_defined_names_lists_nested_named_types_only() -> None:
    assert defined_names(ADDRESS) == {"com.acme.Address", "com.acme.Country"}
    assert defined_names(PERSON) == {"com.acme.Person"}
    assert defined_names(["null", {"type": "map", "values": {"type": "fixed", "name": "F", "size": 1}}]) == {
        "F"
    }
