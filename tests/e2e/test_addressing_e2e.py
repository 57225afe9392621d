"""One sink, many servers (docs/addressing.md): records routed by a field to three libcoap servers, each
record at its own server and nowhere else; Uri-Query options as a recording server sees them; a record
whose host template is empty goes to the error policy and is sent nowhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.libcoap import LibcoapServer
from tests.recording_server import RecordingCoapServer

pytestmark = pytest.mark.slow


@pytest.fixture
def three_servers(tmp_path: Path) -> Iterator[list[LibcoapServer]]:
    servers = [LibcoapServer(log_path=tmp_path / f"coap-{i}.log").start() for i in range(3)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_records_reach_the_server_a_field_names_and_no_other(
    broker: KafkaBroker, three_servers: list[LibcoapServer], start_worker, unique: str
) -> None:
    topic = f"{unique}-t"
    await broker.create_topic(topic, partitions=2)
    ports = [server.port for server in three_servers]
    records = [{"device": f"d{i}", "port": ports[i % 3], "n": i} for i in range(30)]
    await broker.produce(
        topic, [json.dumps(r).encode() for r in records], partitions=[i % 2 for i in range(30)]
    )
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": three_servers[0].uri,  # the worker's own server: no statement uses it
            "connect.coap.kcql": (
                f"INSERT INTO 'coap://127.0.0.1:{{port}}/dev/{{device}}' SELECT n FROM {topic}"
            ),
            "connect.coap.max.inflight": "4",
        }
    )
    worker.wait_until(lambda: sum(worker.delivered().values()) >= 30, what="30 records over three servers")
    for index, server in enumerate(three_servers):
        for record in records:
            held = server.get(f"dev/{record['device']}")
            if record["port"] == ports[index]:
                assert held is not None and json.loads(held) == {"n": record["n"]}, (index, record)
            else:
                assert held is None, f"{record['device']} also reached server {index}"
    stats = worker.stats()
    assert stats is not None
    by_server = {s["server"]: s for s in stats["servers"]}
    assert {f"coap://127.0.0.1:{p}" for p in ports} == set(by_server)
    assert all(s["delivered"] == 10 and s["failed"] == 0 for s in by_server.values())
    assert worker.stop() == 0


async def test_uri_query_options_and_an_empty_host_template(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    topic = f"{unique}-t"
    await broker.create_topic(topic, partitions=1)
    values = [
        {"host": "127.0.0.1", "clientId": "c-1", "n": 0},
        {"host": "", "clientId": "c-2", "n": 1},  # no host: the error policy, nothing sent
        {"host": "127.0.0.1", "clientId": "c 3", "n": 2},
    ]
    await broker.produce(topic, [json.dumps(v).encode() for v in values])
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": (
                f"INSERT INTO 'coap://{{host}}:{recorder.port}/ps/{{clientId}}?c={{clientId}}&qos=1' "
                f"SELECT n FROM {topic}"
            ),
            "connect.coap.error.policy": "NOOP",
        }
    )
    worker.wait_until(lambda: len(recorder.requests) >= 2, what="the two addressable records")
    worker.wait_until(lambda: worker.events("record.skipped"), what="the skip of the empty host")
    seen = [(r.path, r.query, json.loads(r.payload)["n"]) for r in recorder.requests]
    assert seen == [("/ps/c-1", ("c=c-1", "qos=1"), 0), ("/ps/c 3", ("c=c 3", "qos=1"), 2)]
    (skipped,) = worker.events("record.skipped")
    assert (skipped["topic"], skipped["partition"], skipped["offset"]) == (topic, 0, 1)
    assert (skipped["statements"], skipped["error_class"]) == ([1], "SelectError")
    assert skipped["why"].startswith(f"connect.coap.error.policy=NOOP: record {topic}/0@1: ")
    assert "resource placeholder {host}: no value in the record" in skipped["why"]
    assert worker.stop() == 0
