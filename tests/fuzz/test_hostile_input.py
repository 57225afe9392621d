"""Hostile input (issue 15): whatever bytes a topic holds, whatever KCQL or properties text is given, the
result is a delivered record's requests or a located error for the error policy or the operator, never
another exception, a hang or a crash.

The properties:
- a record value through every converter, and through a whole topic pipeline (decode, select, render,
  address): ``Prepared`` or a ``RecordError`` naming topic/partition/offset;
- KCQL text: statements or a ``KcqlError`` naming statement, line and column;
- a ``.properties`` file through what ``check`` and the worker do at start: settings or a ``ConfigError``
  naming the key.

In ``make test`` each runs a bounded number of examples (hypothesis' CI profile, derandomized);
``make fuzz`` runs many more with fresh random draws. Inputs that found defects are kept in
``tests/data/fuzz/`` and replayed first, always.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import javaproperties
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamapp.codecs import build_codecs
from streamapp.config.settings import CONFIG_ENV, Settings
from streamapp.engine.pipeline import Route, TopicPipeline
from streamapp.engine.stats import Stats
from streamapp.errors import ConfigError, KcqlError, RecordError
from streamapp.kcql import parse_kcql
from streamapp.records import RawRecord, RecordCoordinates

WHERE = RecordCoordinates("t", 0, 5)
CORPUS = Path(__file__).parents[1] / "data" / "fuzz"

#: A writer schema with most of what Avro has: nested record, union, enum, array, map, fixed, decimal,
#: timestamps and bytes.
AVRO_SCHEMA = {
    "type": "record",
    "name": "Reading",
    "namespace": "com.acme",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "n", "type": "long"},
        {"name": "t", "type": ["null", "double"]},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "int"}},
        {"name": "mac", "type": {"type": "fixed", "name": "Mac", "size": 6}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "where",
            "type": {"type": "record", "name": "Geo", "fields": [{"name": "lat", "type": "float"}]},
        },
        {"name": "raw", "type": "bytes"},
    ],
}
SCHEMA_ID = 7


class OneSchema:
    """A schema source with one schema, id 7 (the registry's HTTP is tested elsewhere); any other id is
    unknown, as a registry would answer."""

    async def fetch(self, schema_id: int) -> Any:
        if schema_id != SCHEMA_ID:
            raise LookupError(f"schema id {schema_id} is not in the registry")
        return AVRO_SCHEMA


CODECS = {
    "auto": build_codecs("auto", "auto"),
    "json": build_codecs("json", "auto"),
    "json-envelope": build_codecs("json", "auto", value_envelope=True),
    "string": build_codecs("string", "auto"),
    "avro": build_codecs("avro", "auto", schema_source=OneSchema()),
}


def _valid_avro() -> bytes:
    from fastavro import parse_schema, schemaless_writer

    body = io.BytesIO()
    record = {
        "id": "dev-1",
        "n": 42,
        "t": 21.5,
        "kind": "B",
        "tags": ["a", "b"],
        "attrs": {"x": 1},
        "mac": b"\x00\x01\x02\x03\x04\x05",
        "price": b"\x04\xd2",
        "at": 1_700_000_000_000,
        "where": {"lat": 1.5},
        "raw": b"\xff",
    }
    schemaless_writer(body, parse_schema(AVRO_SCHEMA), record)
    return b"\x00" + struct.pack(">I", SCHEMA_ID) + body.getvalue()


VALID = {
    "avro": _valid_avro(),
    "json-envelope": json.dumps(
        {
            "schema": {
                "type": "struct",
                "fields": [
                    {"field": "n", "type": "int64"},
                    {
                        "field": "d",
                        "type": "bytes",
                        "name": "org.apache.kafka.connect.data.Decimal",
                        "parameters": {"scale": "2"},
                    },
                    {"field": "tags", "type": "array", "items": {"type": "string"}, "optional": True},
                ],
            },
            "payload": {"n": 1, "d": "BNI=", "tags": ["x"]},
        }
    ).encode(),
    "json": b'{"n": 1, "nested": {"a": [1, 2.5, null, true]}, "s": "\\u00e9"}',
    "string": b'"{\\"n\\": 1}"',
}
VALID["auto"] = VALID["json"]


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Truncated, overlong, bit-flipped and spliced versions of a valid payload."""
    cut = st.integers(0, len(valid)).map(lambda i: valid[:i])
    overlong = st.binary(min_size=1, max_size=64).map(lambda tail: valid + tail)

    def flip(changes: list[tuple[int, int]]) -> bytes:
        buf = bytearray(valid)
        for at, byte in changes:
            buf[at % len(buf)] = byte
        return bytes(buf)

    flipped = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4).map(
        flip
    )
    spliced = st.tuples(st.integers(0, len(valid)), st.binary(max_size=16)).map(
        lambda t: valid[: t[0]] + t[1] + valid[t[0] :]
    )
    return st.one_of(cut, overlong, flipped, spliced)


def hostile_values(converter: str) -> st.SearchStrategy[bytes]:
    framed = st.tuples(st.sampled_from([SCHEMA_ID, 0, 2**32 - 1]), st.binary(max_size=64)).map(
        lambda t: b"\x00" + struct.pack(">I", t[0]) + t[1]
    )
    return st.one_of(st.binary(max_size=256), framed, mutations(VALID[converter]))


def decode_or_located_error(converter: str, data: bytes) -> None:
    codecs = CODECS[converter]
    asyncio.run(codecs.prefetch([data]))  # never raises: a failed fetch is remembered for the decode
    try:
        codecs.value(data, WHERE)
    except RecordError as exc:
        assert exc.where == WHERE and "t/0@5" in str(exc), exc


FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def corpus(kind: str) -> list[bytes]:
    folder = CORPUS / kind
    return [p.read_bytes() for p in sorted(folder.glob("*"))] if folder.is_dir() else []


@pytest.mark.parametrize("converter", sorted(CODECS))
def test_every_value_decodes_or_fails_located(converter: str) -> None:
    for kept in corpus(f"values-{converter}"):
        decode_or_located_error(converter, kept)

    @FUZZ
    @given(hostile_values(converter))
    @example(VALID[converter])
    def check(data: bytes) -> None:
        decode_or_located_error(converter, data)

    check()


PIPELINE_KCQL = (
    "INSERT INTO dev/{id} SELECT n AS count, where.lat, _key AS k FROM t; "
    "INSERT INTO all SELECT * FROM t IGNORE raw BATCH = 5; "
    "INSERT INTO 'q?x={n}' SELECT id FROM t; "
    "INSERT INTO s SELECT id FROM t PROPERTIES(uri='coap://{id}.local:5683')"
)


@pytest.mark.parametrize("converter", ["auto", "avro", "json-envelope"])
def test_a_whole_pipeline_prepares_a_record_or_fails_it_located(converter: str) -> None:
    """Decode, select, templates, body, Uri-Query: hostile values and keys end as requests or a located
    error; a decoded value of any shape (a list, a number, a string) too."""
    statements = parse_kcql(PIPELINE_KCQL)
    stats = Stats.for_statements(statements)
    pipeline = TopicPipeline([Route.compile(s) for s in statements], CODECS[converter], stats)

    @FUZZ
    @given(
        st.one_of(hostile_values(converter), st.none()),
        st.one_of(st.none(), st.binary(max_size=32), st.just(b'{"id": 1}')),
    )
    def check(value: bytes | None, key: bytes | None) -> None:
        raw = RawRecord("t", 0, 5, key, value, (("h", b"\xff"),), None)
        try:
            asyncio.run(pipeline.prefetch((raw,)))
            prepared = pipeline.prepare(raw)
        except RecordError as exc:
            assert exc.where == WHERE, exc
        else:
            assert len(prepared.requests) == len(statements)

    check()


KCQL_WORDS = st.sampled_from(
    [
        "INSERT",
        "INTO",
        "SELECT",
        "FROM",
        "AS",
        "IGNORE",
        "BATCH",
        "=",
        "PROPERTIES",
        "(",
        ")",
        ",",
        ";",
        "*",
        ".",
        "`",
        "'",
        "{",
        "}",
        "/",
        "?",
        "&",
        "_key",
        "_header",
        "_.offset",
        "a",
        "b.c",
        "t",
        "5",
        "method=POST",
        "type=NON",
        "uri='coap://h/{x}'",
        "max.inflight=0",
        " ",
        "\n",
        "\t",
        "é",
        "\x00",
    ]
)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=200),
        st.lists(KCQL_WORDS, max_size=40).map(" ".join),
        st.lists(KCQL_WORDS, max_size=40).map("".join),
    )
)
@example("INSERT INTO a SELECT * FROM t PROPERTIES(max.inflight=0)")
@example("INSERT INTO `a SELECT * FROM t")
def test_kcql_text_parses_or_fails_at_a_statement_line_and_column(text: str) -> None:
    from streamapp.config.settings import validate_statement_property

    try:
        statements = parse_kcql(text, validate_statement_property)
    except KcqlError as exc:
        assert exc.statement >= 1 and exc.line >= 1 and exc.column >= 1, exc
        assert str(exc).startswith(f"KCQL statement {exc.statement}, line {exc.line}, column {exc.column}")
    else:
        for statement in statements:
            Route.compile(statement)  # a parsed statement compiles (or names its key: ConfigError)


PROPERTY_KEYS = st.sampled_from(
    [
        "connect.coap.uri",
        "connect.coap.kcql",
        "connect.coap.max.retries",
        "connect.coap.max.retires",
        "connect.coap.error.policy",
        "errors.tolerance",
        "connect.coap.ack.timeout",
        "connect.coap.max.retransmit",
        "connect.coap.max.inflight",
        "bootstrap.servers",
        "value.converter",
        "schema.registry.url",
        "security.protocol",
        "sasl.mechanism",
        "sasl.jaas.config",
        "ssl.truststore.location",
        "ssl.truststore.type",
        "connect.coap.cipher.suites",
        "connect.coap.keystore.path",
        "topics",
        "connector.class",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "connect.coap.bind.port",
        "connect.coap.nope",
        "name",
        "consumer.override.auto.offset.reset",
        "offset.flush.interval.ms",
    ]
)
PROPERTY_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "coap://127.0.0.1:5683",
            "coaps://[::1]",
            "coap://discoverIP4",
            "INSERT INTO a SELECT * FROM t",
            "-1",
            "0",
            "99999999999999999999",
            "RETRY",
            "all",
            "SASL_SSL",
            "PLAIN",
            "JKS",
            "/nonexistent",
            "io.lenses.streamreactor.connect.coap.sink.CoapSinkConnector",
            "http://u:p@h:8081",
            "",
        ]
    ),
)


@FUZZ
@given(
    st.dictionaries(PROPERTY_KEYS, PROPERTY_VALUES, max_size=12),
    st.one_of(st.text(max_size=80).map(str.encode), st.binary(max_size=40)),
)
def test_a_properties_file_resolves_or_fails_naming_the_key(given_keys: dict[str, str], junk: bytes) -> None:
    """What ``check`` and the worker's start do with the file named by STREAMAPP_CONFIG: read it, resolve,
    build the DTLS and Kafka client settings and the routes."""
    from streamapp.coap.security import dtls_options
    from streamapp.kafka.security import broker_credentials

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "coap-sink.properties"
        path.write_bytes(javaproperties.dumps(given_keys).encode() + junk)
        try:
            resolved = Settings.load({CONFIG_ENV: str(path)})
            dtls_options(resolved)
            broker_credentials(resolved)
            for statement in resolved.statements:
                Route.compile(statement)
        except ConfigError as exc:
            assert exc.key and str(exc).startswith(exc.key), exc
        except KcqlError as exc:
            assert exc.statement >= 1, exc
