"""The test peers against the real binaries: Tansu broker, libcoap coap-server, the recording CoAP server."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streamapp.peers import LibcoapServer, PeerError, TansuBroker, async_wait_until, free_port, wait_until
from tests.recording_server import Recorded, RecordingCoapServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def coap_client() -> AsyncIterator[aiocoap.Context]:
    context = await aiocoap.Context.create_client_context()
    yield context
    await context.shutdown()


async def coap_request(
    client: aiocoap.Context, code: Code, uri: str, payload: bytes = b"", **options: object
) -> aiocoap.Message:
    async with asyncio.timeout(10):
        return await client.request(aiocoap.Message(code=code, uri=uri, payload=payload, **options)).response


# -- wait helpers --------------------------------------------------------------------------------------------


def test_wait_until_returns_when_condition_holds_and_times_out_with_message() -> None:
    deadline = time.monotonic() + 0.2
    wait_until(lambda: time.monotonic() >= deadline, timeout=5, what="the clock")
    assert time.monotonic() >= deadline

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"^timed out after 0\.3s waiting for nothing$"):
        wait_until(lambda: False, timeout=0.3, what="nothing")
    assert 0.3 <= time.monotonic() - started < 2


async def test_async_wait_until_accepts_sync_and_async_predicates() -> None:
    calls = 0

    async def third_call() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 3

    await async_wait_until(third_call, timeout=5, interval=0.01)
    assert calls == 3
    with pytest.raises(TimeoutError, match=r"^timed out after 0\.1s waiting for never$"):
        await async_wait_until(lambda: False, timeout=0.1, what="never")


def test_free_port_is_bindable() -> None:
    kinds: list[tuple[Literal["tcp", "udp"], socket.SocketKind]] = [
        ("tcp", socket.SOCK_STREAM),
        ("udp", socket.SOCK_DGRAM),
    ]
    for kind, sock_type in kinds:
        port = free_port(kind)
        assert 1024 <= port <= 65535
        with socket.socket(socket.AF_INET, sock_type) as sock:
            sock.bind(("127.0.0.1", port))


# -- Tansu ---------------------------------------------------------------------------------------------------


async def test_broker_answers_metadata_as_itself(broker: TansuBroker) -> None:
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    assert broker.url == f"kafka://127.0.0.1:{broker.port}"
    assert broker.pid is not None
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    assert cluster["cluster_id"] == broker.cluster_id
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [("127.0.0.1", broker.port)]


async def test_create_topic_makes_three_partitions_and_is_idempotent(
    broker: TansuBroker, unique: str
) -> None:
    assert await broker.create_topic(unique, partitions=3) == 3
    assert await broker.create_topic(unique, partitions=3) == 3  # already exists: no error
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([unique])
    finally:
        await admin.close()
    assert described["error_code"] == 0
    assert sorted(p["partition"] for p in described["partitions"]) == [0, 1, 2]


async def test_produce_returns_offsets_per_partition_and_records_read_back(
    broker: TansuBroker, unique: str
) -> None:
    await broker.create_topic(unique, partitions=3)
    values = [f"v{i}".encode() for i in range(8)]
    keys = [f"k{i}".encode() if i % 2 == 0 else None for i in range(8)]
    partitions = [0, 1, 2, 0, 1, 2, 0, 0]
    headers = [[("i", str(i).encode())] if i < 4 else None for i in range(8)]

    placed = await broker.produce(unique, values, keys=keys, partitions=partitions, headers=headers)

    assert placed == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2), (0, 3)]

    # Read back with a plain aiokafka consumer (not the helper), from the beginning of each partition.
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(unique, p) for p in range(3)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got = []

        async def all_eight() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got.extend(records)
            return len(got) >= 8

        await async_wait_until(all_eight, timeout=20, interval=0, what="8 records")
    finally:
        await consumer.stop()
    by_value = {r.value: r for r in got}
    assert len(got) == 8
    for i, value in enumerate(values):
        record = by_value[value]
        assert (record.partition, record.offset) == placed[i]
        assert record.key == keys[i]
        assert list(record.headers) == (headers[i] or [])

    # The helper sees the same thing, ordered by (partition, offset).
    helper = await broker.consume(unique, 8, timeout=20)
    assert [(r.partition, r.offset, r.value) for r in helper] == sorted(
        (p, o, v) for (p, o), v in zip(placed, values, strict=True)
    )


async def test_produce_with_default_partitioner_keeps_a_key_on_one_partition(
    broker: TansuBroker, unique: str
) -> None:
    await broker.create_topic(unique, partitions=3)
    placed = await broker.produce(unique, [b"a", b"b", b"c"], keys=[b"same"] * 3)
    assert len({p for p, _ in placed}) == 1
    assert [o for _, o in placed] == [0, 1, 2]
    with pytest.raises(ValueError, match="keys has 1 entries"):
        await broker.produce(unique, [b"a", b"b"], keys=[b"x"])


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A private broker for lifecycle tests (never pause or stop the shared session broker)."""
    with TansuBroker(log_path=tmp_path / "tansu.log") as running:
        yield running


async def test_broker_pause_blocks_and_resume_recovers(own_broker: TansuBroker) -> None:
    await own_broker.create_topic("t", partitions=1)
    own_broker.pause()
    with pytest.raises((KafkaError, TimeoutError)):
        await own_broker.produce("t", [b"while paused"], timeout=2)
    own_broker.resume()
    assert await own_broker.produce("t", [b"after resume"]) == [(0, 0)]


def test_broker_stop_kills_it_even_when_paused_and_rejects_a_busy_port(own_broker: TansuBroker) -> None:
    with pytest.raises(PeerError, match="already in use"):
        TansuBroker(port=own_broker.port).start()
    pid = own_broker.pid
    assert pid is not None
    own_broker.pause()
    started = time.monotonic()
    own_broker.stop()
    assert time.monotonic() - started < 5
    assert own_broker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- libcoap coap-server -------------------------------------------------------------------------------------


def test_libcoap_put_then_get_returns_exact_payload(libcoap_server: LibcoapServer) -> None:
    assert libcoap_server.uri == f"coap://127.0.0.1:{libcoap_server.port}"
    assert libcoap_server.put("sensors/room1", b'{"t": 21}', content_format=50) == "2.01"  # Created
    assert libcoap_server.get("sensors/room1") == b'{"t": 21}'
    assert libcoap_server.put("/sensors/room1", b"line\n\x00\xff\n") == "2.04"  # Changed
    assert libcoap_server.get("sensors/room1") == b"line\n\x00\xff\n"  # byte-exact, no added newline
    assert libcoap_server.put("empty", b"") == "2.01"
    assert libcoap_server.get("empty") == b""
    big = bytes(range(256)) * 12  # > 1 KiB: block-wise both ways
    libcoap_server.put("big", big)
    assert libcoap_server.get("big") == big


def test_libcoap_get_of_unknown_path_is_none_and_post_creates(libcoap_server: LibcoapServer) -> None:
    assert libcoap_server.get("no/such/resource") is None
    first = libcoap_server.request("post", "posted", b"1")
    second = libcoap_server.request("post", "posted", b"2")
    assert (first.code, second.code) == ("2.01", "2.04")
    assert libcoap_server.get("posted") == b"2"  # replaced, not appended
    assert libcoap_server.delete("posted") == "2.02"
    assert libcoap_server.get("posted") is None
    assert libcoap_server.request("put", "/", b"x").code == "4.05"


async def test_libcoap_serves_what_an_aiocoap_client_put(
    libcoap_server: LibcoapServer, coap_client: aiocoap.Context
) -> None:
    response = await coap_request(coap_client, Code.PUT, f"{libcoap_server.uri}/a/b", b"from aiocoap")
    assert response.code == Code.CREATED
    assert await asyncio.to_thread(libcoap_server.get, "a/b") == b"from aiocoap"


def test_libcoap_paused_server_times_out_and_busy_port_is_rejected(libcoap_server: LibcoapServer) -> None:
    with pytest.raises(PeerError, match="already in use"):
        LibcoapServer(port=libcoap_server.port).start()
    libcoap_server.put("x", b"1")
    libcoap_server.pause()
    with pytest.raises(TimeoutError, match="no CoAP response"):
        libcoap_server.get("x", timeout=1)
    libcoap_server.resume()
    assert libcoap_server.get("x") == b"1"


# -- recording aiocoap server --------------------------------------------------------------------------------


async def test_recorder_records_put_and_post_in_order(
    recorder: RecordingCoapServer, coap_client: aiocoap.Context
) -> None:
    put = await coap_request(coap_client, Code.PUT, f"{recorder.uri}/a/b", b'{"x":1}', content_format=50)
    post = await coap_request(
        coap_client, Code.POST, f"{recorder.uri}/c?q=1", b"raw", transport_tuning=aiocoap.Unreliable
    )
    assert (put.code, post.code) == (Code.CHANGED, Code.CHANGED)

    got = await asyncio.to_thread(recorder.wait_for_count, 2, 5)
    assert got == [
        Recorded("PUT", "/a/b", b'{"x":1}', 50, "CON"),
        Recorded("POST", "/c", b"raw", None, "NON", ("q=1",)),
    ]
    assert recorder.requests_for("a/b") == [got[0]]
    assert recorder.requests_for("/c") == [got[1]]

    fetched = await coap_request(coap_client, Code.GET, f"{recorder.uri}/a/b")
    assert (fetched.code, fetched.payload, fetched.opt.content_format) == (Code.CONTENT, b'{"x":1}', 50)
    deleted = await coap_request(coap_client, Code.DELETE, f"{recorder.uri}/a/b")
    assert deleted.code == Code.DELETED
    assert [r.method for r in recorder.requests] == ["PUT", "POST", "GET", "DELETE"]


async def test_recorder_reassembles_blockwise_put(
    recorder: RecordingCoapServer, coap_client: aiocoap.Context
) -> None:
    big = bytes(range(256)) * 20
    response = await coap_request(coap_client, Code.PUT, f"{recorder.uri}/big", big)
    assert response.code == Code.CHANGED
    assert [r.payload for r in recorder.requests_for("big")] == [big]


async def test_recorder_set_response_is_seen_by_the_client(
    recorder: RecordingCoapServer, coap_client: aiocoap.Context
) -> None:
    recorder.set_response("alerts", Code.NOT_FOUND)
    assert (await coap_request(coap_client, Code.PUT, f"{recorder.uri}/alerts", b"1")).code == Code.NOT_FOUND
    assert (await coap_request(coap_client, Code.PUT, f"{recorder.uri}/other", b"1")).code == Code.CHANGED
    recorder.clear_response("/alerts")
    assert (await coap_request(coap_client, Code.PUT, f"{recorder.uri}/alerts", b"2")).code == Code.CHANGED

    recorder.set_response("flaky", Code.SERVICE_UNAVAILABLE, times=2)
    codes = [
        (await coap_request(coap_client, Code.PUT, f"{recorder.uri}/flaky", b"x")).code for _ in range(3)
    ]
    assert codes == [Code.SERVICE_UNAVAILABLE, Code.SERVICE_UNAVAILABLE, Code.CHANGED]

    recorder.set_response("picky", Code.BAD_REQUEST, when=lambda payload: payload == b"bad")
    bad = await coap_request(coap_client, Code.PUT, f"{recorder.uri}/picky", b"bad")
    good = await coap_request(coap_client, Code.PUT, f"{recorder.uri}/picky", b"good")
    assert (bad.code, good.code) == (Code.BAD_REQUEST, Code.CHANGED)
    assert [r.payload for r in recorder.requests_for("alerts")] == [b"1", b"2"]  # failures are recorded too


def test_recorder_wait_for_count_times_out(recorder: RecordingCoapServer) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="waiting for 1 CoAP requests"):
        recorder.wait_for_count(1, timeout=0.2)
    assert time.monotonic() - started < 2


async def test_recorder_delay_holds_answers_back(
    recorder: RecordingCoapServer, coap_client: aiocoap.Context
) -> None:
    recorder.set_delay(0.3)
    started = time.monotonic()
    assert (await coap_request(coap_client, Code.PUT, f"{recorder.uri}/slow", b"1")).code == Code.CHANGED
    assert time.monotonic() - started >= 0.3
