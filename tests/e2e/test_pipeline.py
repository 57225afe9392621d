"""The walking pipeline end to end: Apache Kafka (and Tansu, the demo's broker, in one smoke test), a real
`faust` worker subprocess, real CoAP servers."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter, defaultdict

import pytest
from aiocoap.numbers.codes import Code

from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.libcoap import LibcoapServer
from streamapp_harness.tansu import TansuBroker
from tests.recording_server import RecordingCoapServer

pytestmark = pytest.mark.slow


def records(n: int, partitions: int) -> tuple[list[bytes], list[int]]:
    values, parts = [], []
    for seq in range(n):
        part = seq % partitions
        doc = {"seq": seq, "part": part, "firstName": f"n{seq}", "lastName": "Smith", "age": seq % 90}
        values.append(json.dumps(doc).encode())
        parts.append(part)
    return values, parts


async def test_fan_out_1000_records_to_two_statements_in_partition_order(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    topic = f"{unique}-people"
    assert await broker.create_topic(topic, partitions=3) == 3
    values, parts = records(1000, 3)
    await broker.produce(topic, values, partitions=parts)
    kcql = (
        f"INSERT INTO people/full SELECT * FROM {topic}; "
        f"INSERT INTO people/names SELECT seq, part, firstName AS first, lastName AS last FROM {topic}"
    )
    worker = start_worker({"name": unique, "connect.coap.uri": recorder.uri, "connect.coap.kcql": kcql})
    worker.wait_until(lambda: len(recorder.requests) >= 2000, what="2000 requests at the CoAP server")

    got = recorder.requests
    assert len(got) == 2000  # nothing twice
    by_path: dict[str, list[dict]] = defaultdict(list)
    for req in got:
        assert (req.method, req.content_format, req.mtype) == ("PUT", 50, "CON")
        by_path[req.path].append(json.loads(req.payload))
    assert set(by_path) == {"/people/full", "/people/names"}
    full, names = by_path["/people/full"], by_path["/people/names"]
    assert sorted(d["seq"] for d in full) == list(range(1000))
    assert sorted(d["seq"] for d in names) == list(range(1000))
    assert full[0] == json.loads(values[full[0]["seq"]])
    assert names[0] == {
        "seq": names[0]["seq"],
        "part": names[0]["seq"] % 3,
        "first": f"n{names[0]['seq']}",
        "last": "Smith",
    }
    assert list(names[0]) == ["seq", "part", "first", "last"]
    for docs in (full, names):
        for part in range(3):
            seqs = [d["seq"] for d in docs if d["part"] == part]
            assert seqs == sorted(seqs), f"partition {part} out of order"
    worker.wait_until(lambda: worker.delivered() == {1: 1000, 2: 1000}, timeout=10, what="stats")
    stats = worker.stats()
    assert stats is not None
    assert [(s["resource"], s["delivered"]) for s in stats["statements"]] == [
        ("people/full", 1000),
        ("people/names", 1000),
    ]
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/coap/", timeout=5) as response:
        assert "stats.json" in response.read().decode()  # the page renders what stats.json says
    assert worker.stop() == 0


async def test_libcoap_server_holds_the_last_record(
    broker: KafkaBroker, libcoap_server: LibcoapServer, start_worker, unique: str
) -> None:
    topic = f"{unique}-readings"
    await broker.create_topic(topic, partitions=1)
    docs = [{"id": i, "temp": 20 + i / 10, "room": "r1"} for i in range(50)]
    await broker.produce(topic, [json.dumps(d).encode() for d in docs])
    kcql = f"INSERT INTO sensors/room1 SELECT temp AS t, id FROM {topic}"
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": libcoap_server.uri,
            "connect.coap.kcql": kcql,
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        }
    )
    worker.wait_until(lambda: worker.delivered() == {1: 50}, what="50 deliveries")
    held = libcoap_server.get("sensors/room1")
    assert held is not None
    assert json.loads(held) == {"t": docs[-1]["temp"], "id": 49}
    assert worker.stop() == 0


async def test_restart_delivers_every_record_and_duplicates_only_what_was_in_flight(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    topic = f"{unique}-cmds"
    await broker.create_topic(topic, partitions=3)
    total = 1000
    values, parts = records(total, 3)
    await broker.produce(topic, values, partitions=parts)
    recorder.set_delay(0.01)  # 10 ms per request: the stream takes >= 10 s, so the stop lands mid-stream
    props = {
        "name": unique,
        "connect.coap.uri": recorder.uri,
        "connect.coap.kcql": f"INSERT INTO cmd SELECT * FROM {topic}",
    }
    first = start_worker(props)
    first.wait_until(lambda: len(recorder.requests) >= 200, what="200 requests before the stop")
    assert first.stop() == 0
    at_stop = len(recorder.requests)
    assert at_stop < total, "the stop did not land mid-stream; the test proves nothing"

    recorder.set_delay(0)
    second = start_worker(props)
    second.wait_until(
        lambda: {json.loads(r.payload)["seq"] for r in recorder.requests} == set(range(total)),
        what="every record delivered after the restart",
    )
    seen = Counter(json.loads(r.payload)["seq"] for r in recorder.requests)
    duplicates = sum(n - 1 for n in seen.values())
    # One agent, one exchange at a time: at most one record was in flight at the stop.
    assert duplicates <= 1, f"{duplicates} duplicates: {[s for s, n in seen.items() if n > 1][:20]}"
    assert second.stop() == 0


async def test_throw_stops_on_a_5_00_and_the_record_is_delivered_after_the_fix(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    topic = f"{unique}-alerts"
    await broker.create_topic(topic, partitions=1)
    docs = [{"n": i} for i in range(10)]
    await broker.produce(topic, [json.dumps(d).encode() for d in docs])
    recorder.set_response(
        "alerts", Code.INTERNAL_SERVER_ERROR, when=lambda payload: json.loads(payload)["n"] == 4
    )
    props = {
        "name": unique,
        "connect.coap.uri": recorder.uri,
        "connect.coap.kcql": f"INSERT INTO alerts SELECT * FROM {topic}",
    }
    first = start_worker(props)
    assert first.wait_exit(timeout=180) != 0
    (stop,) = first.events("worker.stopping")
    assert (stop["topic"], stop["partition"], stop["offset"], stop["statement"]) == (topic, 0, 4, 1)
    assert (stop["code"], stop["resource"], stop["level"]) == ("5.00", "alerts", "error")
    assert stop["why"].startswith(f"connect.coap.error.policy=THROW: record {topic}/0@4: ")
    assert "5.00 Internal Server Error" in stop["why"]
    seen = [json.loads(r.payload)["n"] for r in recorder.requests]
    assert seen == [0, 1, 2, 3, 4], "the worker went past the failed record"

    recorder.clear_response("alerts")
    second = start_worker(props)
    second.wait_until(lambda: len(recorder.requests) >= 11, what="the rest after the fix")
    seen = [json.loads(r.payload)["n"] for r in recorder.requests]
    assert seen == [0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9], seen
    assert second.stop() == 0


async def test_throw_on_an_undecodable_record_names_its_offset(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    topic = f"{unique}-raw"
    await broker.create_topic(topic, partitions=1)
    await broker.produce(topic, [b'{"n": 0}', b'{"n": 1}', b'{"n": oops}', b'{"n": 3}'])
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": f"INSERT INTO raw SELECT n FROM {topic}",
            "value.converter": "json",
        }
    )
    assert worker.wait_exit(timeout=180) != 0
    (stop,) = worker.events("worker.stopping")
    assert (stop["topic"], stop["partition"], stop["offset"], stop["statements"]) == (topic, 0, 2, [1])
    assert (stop["error_class"], stop["retriable"]) == ("DecodeError", False)
    assert stop["why"] == (
        f"connect.coap.error.policy=THROW: record {topic}/0@2: "
        "invalid JSON: Expecting value at line 1 column 7"
    )
    # The reason the worker stopped with is Faust's crash line, not an event: it says what happens next.
    assert f"Record {topic}/0@2 was not committed: it is read again when the worker restarts" in (
        worker.log_text()
    )
    assert [json.loads(r.payload)["n"] for r in recorder.requests] == [0, 1]


async def test_tansu_the_demos_broker_delivers_and_commits(
    tansu: TansuBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    """Tansu stays as ``make demo``'s broker: one delivery through it keeps it honest."""
    await tansu.create_topic(unique, partitions=2)
    values, parts = records(40, 2)
    await tansu.produce(unique, values, partitions=parts)
    worker = start_worker(
        {
            "name": unique,
            "bootstrap.servers": tansu.bootstrap,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": f"INSERT INTO smoke SELECT seq FROM {unique}",
        }
    )
    worker.wait_until(lambda: len(recorder.requests) >= 40, what="40 requests through Tansu")
    assert sorted(json.loads(r.payload)["seq"] for r in recorder.requests) == list(range(40))
    assert worker.stop() == 0
    assert await tansu.committed_offsets(f"connect-{unique}", unique, partitions=2) == {0: 20, 1: 20}
