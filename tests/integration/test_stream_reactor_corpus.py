"""`check` on every stream-reactor CoAP Sink configuration in tests/data/stream-reactor/ (its README says
where each comes from): each is accepted, and means here what it meant there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamapp.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "data" / "stream-reactor"
OLD_SPELLING = "an old stream-reactor spelling of {key}; it means the same, write {key}"

#: file -> (values check must print, lines about keys check must print, route lines)
EXPECTED: dict[str, tuple[dict[str, str], list[str], list[str]]] = {
    "quickstart-2017.properties": (
        {"name": "coap-sink", "topics": "coap_topic", "connect.coap.uri": "coap://localhost:5683"},
        ["tasks: no effect here", "connector.class: Kafka Connect's plugin class"],
        ["[1] coap_topic -> coap://localhost:5683/unsecure  SELECT *"],
    ),
    "quickstart-2017-with-log-keys.properties": (
        {
            "name": "coap-sink",
            "connect.coap.uri": "coap://localhost:5683",
            "connect.coap.host": "localhost",
            "connect.coap.max.retries": "20",
            "connect.coap.cert.chain.key": "client",
        },
        [
            "tasks: no effect here",
            "connect.coap.sink.bind.host: " + OLD_SPELLING.format(key="connect.coap.host"),
            "connect.coap.max.retires: " + OLD_SPELLING.format(key="connect.coap.max.retries"),
        ],
        ["[1] coap_topic -> coap://localhost:5683/unsecure  SELECT *"],
    ),
    "startup-log-0.2.properties": (
        {
            "connect.coap.host": "localhost",
            "connect.coap.port": "0",
            "connect.coap.max.retries": "20",
            "connect.coap.retry.interval": "60000",
            "connect.coap.error.policy": "THROW",
            "connect.coap.certs": "",
            "connect.coap.keystore.pass": "[hidden]",
        },
        [
            "connect.coap.sink.bind.port: " + OLD_SPELLING.format(key="connect.coap.port"),
            "connect.coap.sink.bind.host: " + OLD_SPELLING.format(key="connect.coap.host"),
            "connect.coap.max.retires: " + OLD_SPELLING.format(key="connect.coap.max.retries"),
        ],
        ["[1] coap_topic -> coap://localhost:5683/unsecure  SELECT *"],
    ),
    "startup-log-1.0.properties": (
        {"connect.coap.host": "localhost", "connect.coap.port": "0", "connect.coap.max.retries": "20"},
        ["connect.coap.max.retires: " + OLD_SPELLING.format(key="connect.coap.max.retries")],
        ["[1] coap_topic -> coap://localhost:5683/unsecure  SELECT *"],
    ),
    "reference-1.0.properties": (
        {
            "connect.coap.host": "localhost",
            "connect.coap.port": "0",
            "connect.coap.error.policy": "RETRY",
            "connect.coap.max.retries": "10",
            "connect.coap.cert.chain.key": "client",
            "connect.progress.enabled": "false",
        },
        [
            "connect.coap.bind.port: " + OLD_SPELLING.format(key="connect.coap.port"),
            "connect.coap.bind.host: " + OLD_SPELLING.format(key="connect.coap.host"),
            "tasks.max: no effect here",
        ],
        ["[1] coap_topic -> coap://localhost:5683/resourceA  SELECT x AS a, y, z"],
    ),
    "constants-later.properties": (
        {
            "connect.coap.uri": "coaps://localhost:5684",
            "connect.coap.username": "Client_identity",
            "connect.coap.password": "[hidden]",
        },
        ["connect.coap.batch.size: no effect here", "DTLS: PSK identity 'Client_identity'"],
        ["[1] telemetry -> coaps://localhost:5684/devices/telemetry  SELECT *"],
    ),
    "lenses-4.properties": (
        {"name": "coap", "connect.coap.kcql": "INSERT INTO unsecure SELECT * FROM orders"},
        ["Kafka: group 'connect-coap'", "tasks.max: no effect here"],
        ["[1] orders -> coap://coap/unsecure  SELECT *"],
    ),
    "connect-errors.properties": (
        {
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "readings-dlq",
            "errors.log.include.messages": "false",
        },
        [],
        ["[1] readings -> coap://localhost:5683/sensors  SELECT *"],
    ),
    "avro-registry.properties": (
        {
            "value.converter": "avro",
            "key.converter": "string",
            "schema.registry.url": "http://localhost:8081",
        },
        ["value.converter.schema.registry.url: alias of schema.registry.url"],
        ["[1] coap-topic -> coap://localhost:5683/users  SELECT firstName, lastName AS surname"],
    ),
    "discover-ip4.properties": (
        {"connect.coap.uri": "coap://discoverIP4:5683"},
        [
            "connect.coap.uri: the server is found at start: a multicast GET /.well-known/core to "
            "224.0.1.187 port 5683"
        ],
        ["[1] coap_topic -> coap://discoverIP4:5683/unsecure  SELECT *"],
    ),
}


def test_the_corpus_and_the_expectations_name_the_same_files() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.properties")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_check_accepts_it_with_its_meaning(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in [v for v in os.environ if v.startswith(("CONNECT_", "STREAMAPP_"))]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("STREAMAPP_CONFIG", str(CORPUS / name))
    assert main(["check"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    values, remarks, routes = EXPECTED[name]
    printed = {
        line.split(" = ", 1)[0].strip(): line.split(" = ", 1)[1].rsplit("    [", 1)[0]
        for line in out.splitlines()
        if " = " in line and line.rstrip().endswith("]")
    }
    for key, value in values.items():
        assert printed.get(key) == value, f"{key}: {printed.get(key)!r} in\n{out}"
        assert f"[file {CORPUS / name}]" in next(line for line in out.splitlines() if f" {key} " in line)
    for remark in remarks:
        assert remark in out, f"{remark!r} not in\n{out}"
    for route in routes:
        assert route in out
    assert "not a streamapp key" not in out  # every key of these files is known here
