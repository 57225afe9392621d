"""A statement's own server and Uri-Query options: KCQL forms, per-record rendering, host checks."""

from __future__ import annotations

import pytest

from streamapp.config.settings import Settings
from streamapp.engine.addressing import compile_query, compile_server
from streamapp.engine.pipeline import Route
from streamapp.errors import ConfigError, SelectError
from streamapp.records import Record

URI = "coap://127.0.0.1:5683"


def statement(kcql: str):
    return Settings.from_mapping({"connect.coap.uri": URI, "connect.coap.kcql": kcql}).statements[0]


def record(value: object, key: object = None) -> Record:
    return Record(value=value, key=key, headers=(), topic="t", partition=0, offset=9, timestamp=None)


def test_a_whole_uri_as_target_gives_the_server_and_the_path() -> None:
    s = statement("INSERT INTO 'coap://{host}:{port}/gw/{id}' SELECT * FROM t")
    r = record({"host": "127.0.0.1", "port": 5701, "id": "d1"})
    assert compile_server(s)(r) == "coap://127.0.0.1:5701"
    assert Route.compile(s).resource(r) == ("gw", "d1")
    assert s.uses_key is False


def test_properties_uri_gives_a_base_with_a_path() -> None:
    s = statement("INSERT INTO r/{id} SELECT * FROM t PROPERTIES(uri='coaps://{site}.gw.example:5684/base')")
    assert compile_server(s)(record({"site": "berlin", "id": 1})) == "coaps://berlin.gw.example:5684/base"


def test_a_fixed_server_is_checked_at_start() -> None:
    assert compile_server(statement("INSERT INTO 'coap://[::1]:5700/r' SELECT * FROM t"))(record({})) == (
        "coap://[::1]:5700"
    )
    with pytest.raises(ConfigError) as info:
        Route.compile(statement("INSERT INTO 'coap://bad_host:5700/r' SELECT * FROM t"))
    assert info.value.key == "connect.coap.kcql" and "statement 1" in str(info.value)


def test_statements_without_a_server_use_the_workers() -> None:
    assert compile_server(statement("INSERT INTO r SELECT * FROM t"))(record({})) is None


def test_the_server_given_twice_is_refused_with_its_statement() -> None:
    with pytest.raises(ConfigError) as info:
        statement("INSERT INTO 'coap://h:1/r' SELECT * FROM t PROPERTIES(uri='coap://x')")
    assert "given twice" in str(info.value) and "KCQL statement 1" in str(info.value)


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("", "no value in the record"),
        ("a/b", "cannot be part of a host"),
        ("evil.example@10.0.0.1", "cannot be part of a host"),
        ("h:99", "bad port"),
        ("-bad", "cannot be a host name"),
        ("two words", "cannot be part of a host"),
        ("a..b", "cannot be a host name"),
    ],
)
def test_a_value_that_cannot_be_a_host_is_an_error_for_that_record(host: str, why: str) -> None:
    render = compile_server(statement("INSERT INTO 'coap://{h}:5683/r' SELECT * FROM t"))
    with pytest.raises(SelectError) as info:
        render(record({"h": host}))
    assert str(info.value).startswith("record t/0@9") and why in str(info.value)


def test_a_port_that_is_not_a_port_is_an_error_for_that_record() -> None:
    render = compile_server(statement("INSERT INTO 'coap://127.0.0.1:{p}/r' SELECT * FROM t"))
    for port in ("70000", "x"):
        with pytest.raises(SelectError):
            render(record({"p": port}))


def test_query_options_are_one_per_part_and_templated() -> None:
    s = statement("INSERT INTO 'ps/{topic}?c={clientId}&qos=1&&' SELECT * FROM t")
    r = record({"topic": "up", "clientId": "dev-7"})
    assert compile_query(s)(r) == ("c=dev-7", "qos=1")
    assert Route.compile(s).resource(r) == ("ps", "up")


def test_query_placeholders_are_located_and_checked() -> None:
    with pytest.raises(ConfigError) as info:
        statement("INSERT INTO 'ps?c={_.bogus}' SELECT * FROM t")
    assert "column 19" in str(info.value)


def test_an_empty_query_value_is_an_error_for_that_record() -> None:
    render = compile_query(statement("INSERT INTO 'ps?c={clientId}' SELECT * FROM t"))
    with pytest.raises(SelectError):
        render(record({"clientId": ""}))


def test_property_uri_is_validated_with_placeholders_filled() -> None:
    with pytest.raises(ConfigError) as info:
        statement("INSERT INTO r SELECT * FROM t PROPERTIES(uri='http://{site}.example')")
    assert "coap://, coaps://, coap+tcp:// or coaps+tcp://" in str(info.value)
