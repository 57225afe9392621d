"""The real stream-reactor CoAP sink 1.2.0 in Kafka Connect 4.4.0 standalone (streamapp_harness/connect.py):
what it sends a CoAP server for JSON records, a tombstone, and a stop, and what it commits.

Needs the connector's jar, which Maven Central as reached here does not serve:
``$STREAMAPP_STREAM_REACTOR_COAP_JAR`` or Maven's local repository; skipped otherwise. Each test starts one
Connect JVM (~8-25 s to RUNNING).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from streamapp_harness.connect import CONNECTOR_JAR_ENV, KafkaConnectStandalone, connector_jar
from streamapp_harness.kafka_broker import KafkaBroker
from tests.recording_server import RecordingCoapServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        connector_jar() is None,
        reason=f"no stream-reactor CoAP sink jar (set {CONNECTOR_JAR_ENV}; Maven Central here lacks it)",
    ),
]

JSON = 50  # application/json


@pytest.fixture
def topic() -> str:
    return f"readings-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sink(recorder: RecordingCoapServer, topic: str) -> dict[str, str]:
    """The coap-sink.properties keys for ``topic`` -> ``recorder``/sensors (THROW, as documented)."""
    return {
        "name": f"coap-sink-{topic}",
        "topics": topic,
        "connect.coap.uri": recorder.uri,
        "connect.coap.kcql": f"INSERT INTO sensors SELECT * FROM {topic}",
        "connect.coap.error.policy": "THROW",
    }


async def test_json_records_are_one_put_each_and_the_stop_deletes_and_commits(
    broker: KafkaBroker, recorder: RecordingCoapServer, topic: str, sink: dict[str, str], tmp_path: Path
) -> None:
    await broker.create_topic(topic, partitions=1)
    sent = [{"id": i, "temp": 20.5 + i, "name": f"s{i}", "tags": [1, 2]} for i in range(5)]
    await broker.produce(
        topic,
        [json.dumps(v).encode() for v in sent],
        keys=[f"k{i}".encode() for i in range(5)],
        headers=[[("h", b"v")]] * 5,
    )
    # Connect's default flush interval (60 s) outlasts the test: the only commit is the one at the stop.
    connect = KafkaConnectStandalone(broker.bootstrap, sink, tmp_path / "connect")
    with connect:
        requests = recorder.wait_for_count(1 + len(sent), timeout=30)
        assert connect.californium_properties.is_file()
        # First the start's discovery, then one confirmable PUT per record, in order, the value only.
        assert (requests[0].method, requests[0].path) == ("GET", "/.well-known/core")
        puts = requests[1:]
        assert [(r.method, r.path, r.content_format, r.mtype) for r in puts] == [
            ("PUT", "/sensors", JSON, "CON")
        ] * len(sent)
        assert [json.loads(r.payload) for r in puts] == sent
        assert all(b" " not in r.payload for r in puts)  # re-serialised compactly
    requests = recorder.wait_for_count(2 + len(sent), timeout=30)
    assert [(r.method, r.path) for r in requests[1 + len(sent) :]] == [("DELETE", "/sensors")]
    assert await broker.committed_offsets(connect.group, topic, 1) == {0: len(sent)}


async def test_a_tombstone_fails_the_task_after_the_records_before_it_and_nothing_is_committed(
    broker: KafkaBroker, recorder: RecordingCoapServer, topic: str, sink: dict[str, str], tmp_path: Path
) -> None:
    await broker.create_topic(topic, partitions=1)
    await broker.produce(topic, [b'{"n":1}', None, b'{"n":3}'], keys=[b"a", b"b", b"c"])
    with KafkaConnectStandalone(
        broker.bootstrap, sink, tmp_path / "connect", worker={"offset.flush.interval.ms": "500"}
    ) as connect:
        status = connect.wait_for_task_state("FAILED", timeout=30)
        assert "Exiting WorkerSinkTask due to unrecoverable exception" in status["tasks"][0]["trace"]
        # The failed task was stopped at once: its DELETE came before the worker's stop.
        assert [(r.method, r.path, r.payload) for r in recorder.requests[1:]] == [
            ("PUT", "/sensors", b'{"n":1}'),
            ("DELETE", "/sensors", b""),
        ]
    assert await broker.committed_offsets(connect.group, topic, 1) == {}
