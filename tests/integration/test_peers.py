"""The test peers against the real programs: Apache Kafka, Tansu, libcoap coap-server, the recording CoAP
server."""

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

from streamapp_harness.kafka_broker import KafkaBroker, kafka_version
from streamapp_harness.libcoap import CoapsCredentials, DtlsHandshakeError, LibcoapServer
from streamapp_harness.process import PeerError, async_wait_until, free_port, wait_until
from streamapp_harness.tansu import TansuBroker
from tests.certs import Pki
from tests.recording_server import Recorded, RecordingCoapServer

pytestmark = pytest.mark.timeout(120)

#: The Apache Kafka broker serves the end-to-end tests, which `make check` does not run: its own tests (the
#: session broker's start alone takes ~10 s, each private broker as much again) run with them, in `make test`.
kafka_broker = pytest.mark.slow


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


# -- Apache Kafka and Tansu ---------------------------------------------------------------------------------


@kafka_broker
async def test_broker_answers_metadata_as_itself_on_every_listener(broker: KafkaBroker) -> None:
    assert broker.url == f"kafka://{broker.bootstrap}"
    assert broker.pid is not None
    assert broker.version == kafka_version() and broker.version.startswith("4.")
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    assert cluster["cluster_id"] == broker.cluster_id
    host, port = broker.bootstrap.split(":")
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [(host, int(port))]
    assert set(broker.listeners) == {"PLAINTEXT", "SSL", "MTLS", "WRONGHOST", "SASL_PLAINTEXT", "SASL_SSL"}
    assert len({broker.listener(name) for name in broker.listeners}) == 6
    with pytest.raises(KeyError, match="no listener 'SASL_MTLS'"):
        broker.listener("SASL_MTLS")


async def test_tansu_answers_metadata_as_itself_and_round_trips_records(tansu: TansuBroker) -> None:
    assert await tansu.cluster_id_answered() == tansu.cluster_id
    await tansu.create_topic("smoke", partitions=2)
    placed = await tansu.produce("smoke", [b"a", b"b"], partitions=[0, 1])
    assert placed == [(0, 0), (1, 0)]
    assert [r.value for r in await tansu.consume("smoke", 2)] == [b"a", b"b"]


@kafka_broker
async def test_create_topic_makes_three_partitions_and_is_idempotent(
    broker: KafkaBroker, unique: str
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


@kafka_broker
async def test_produce_returns_offsets_per_partition_and_records_read_back(
    broker: KafkaBroker, unique: str
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


@kafka_broker
async def test_produce_with_default_partitioner_keeps_a_key_on_one_partition(
    broker: KafkaBroker, unique: str
) -> None:
    await broker.create_topic(unique, partitions=3)
    placed = await broker.produce(unique, [b"a", b"b", b"c"], keys=[b"same"] * 3)
    assert len({p for p, _ in placed}) == 1
    assert [o for _, o in placed] == [0, 1, 2]
    with pytest.raises(ValueError, match="keys has 1 entries"):
        await broker.produce(unique, [b"a", b"b"], keys=[b"x"])


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A private broker for lifecycle tests (never pause or stop the shared session broker)."""
    with KafkaBroker(tmp_path / "kafka") as running:
        yield running


@kafka_broker
async def test_broker_pause_blocks_resume_recovers_and_a_crash_restart_keeps_everything(
    own_broker: KafkaBroker,
) -> None:
    await own_broker.create_topic("t", partitions=2)
    assert await own_broker.produce("t", [b"before"], partitions=[0]) == [(0, 0)]
    await own_broker.commit_offsets("g", "t", {0: 1})
    own_broker.pause()
    with pytest.raises((KafkaError, TimeoutError)):
        await own_broker.produce("t", [b"while paused"], timeout=2)
    own_broker.resume()
    placed = await own_broker.produce("t", [b"after resume"], partitions=[1])
    assert placed == [(1, 0)]
    pid, addresses = own_broker.pid, {name: own_broker.listener(name) for name in own_broker.listeners}
    own_broker.restart(crash=True)  # SIGKILL, then the same log directory and ports
    assert own_broker.pid not in (None, pid)
    assert {name: own_broker.listener(name) for name in own_broker.listeners} == addresses
    assert await own_broker.committed_offsets("g", "t", partitions=2) == {0: 1}
    assert [r.value for r in await own_broker.consume("t", 2)] == [b"before", b"after resume"]


@kafka_broker
def test_broker_stop_kills_it_even_when_paused(own_broker: KafkaBroker) -> None:
    pid = own_broker.pid
    assert pid is not None
    own_broker.pause()
    started = time.monotonic()
    own_broker.stop()
    assert time.monotonic() - started < 35
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


# -- libcoap DTLS servers (coap-server-openssl / -gnutls) ----------------------------------------------------

PSK = b"streamapp-test-psk"


# What each server logs at -v 9 once it negotiated TLS_PSK_WITH_AES_128_CCM_8.
_CCM8_LOG_LINE = {
    "openssl": "Using cipher: PSK-AES128-CCM8",
    "gnutls": "Selected cipher suite: GNUTLS_PSK_AES_128_CCM_8",
}


@pytest.mark.parametrize("flavour", ["openssl", "gnutls"])
def test_libcoap_dtls_psk_ccm8_put_then_get(tmp_path: Path, flavour: Literal["openssl", "gnutls"]) -> None:
    log = tmp_path / "coap-server.log"
    client = CoapsCredentials(psk=PSK, identity="streamapp", flavour="gnutls", ccm8_only=True)
    server = LibcoapServer(
        flavour=flavour, psk=PSK, client_credentials=client, log_path=log, extra_args=["-v", "9"]
    )
    with server:
        assert server.dtls_port == server.port + 1
        assert server.coaps_uri == f"coaps://127.0.0.1:{server.port + 1}"
        assert server.put("sensors/room1", b'{"t": 21}', content_format=50, dtls=True) == "2.01"
        assert server.get("sensors/room1", dtls=True) == b'{"t": 21}'
        assert server.get("sensors/room1") == b'{"t": 21}'  # plain CoAP on P sees the same resources
    assert _CCM8_LOG_LINE[flavour] in log.read_text(errors="replace")  # read once the server has flushed


@pytest.mark.parametrize("flavour", ["openssl", "gnutls"])
def test_libcoap_dtls_wrong_psk_fails_without_alert(flavour: Literal["openssl", "gnutls"]) -> None:
    with LibcoapServer(flavour=flavour, psk=PSK) as server:
        server.put("x", b"1")
        started = time.monotonic()
        with pytest.raises(DtlsHandshakeError, match="no alert came") as failed:
            server.get("x", timeout=1, dtls=CoapsCredentials(psk=b"not the key", identity="streamapp"))
        assert failed.value.alert is None  # the server stays silent: the client can only time out
        assert time.monotonic() - started < 5
        assert server.get("x", dtls=CoapsCredentials(psk=PSK, identity="streamapp")) == b"1"


def test_libcoap_dtls_psk_identities_refuse_an_unknown_identity() -> None:
    identities = {"alice": b"alice's key", "bob": b"bob's key"}
    with LibcoapServer(flavour="gnutls", psk_identities=identities) as server:
        assert server.put("x", b"a", dtls=CoapsCredentials(psk=b"alice's key", identity="alice")) == "2.01"
        assert server.get("x", dtls=CoapsCredentials(psk=b"bob's key", identity="bob")) == b"a"
        with pytest.raises(DtlsHandshakeError):  # bob's key under alice's name
            server.get("x", timeout=1, dtls=CoapsCredentials(psk=b"bob's key", identity="alice"))
        with pytest.raises(DtlsHandshakeError):  # an identity that is not listed, with a listed key
            server.get("x", timeout=1, dtls=CoapsCredentials(psk=b"alice's key", identity="mallory"))


def test_libcoap_dtls_x509_mutual_auth(pki: Pki) -> None:
    client = CoapsCredentials(cert=pki.client_cert, key=pki.client_key, ca=pki.ca)
    # A certificate from a CA the server does not know, presented as a client certificate.
    rogue = CoapsCredentials(cert=pki.untrusted_server_cert, key=pki.untrusted_server_key, ca=pki.ca)
    server_files = {"cert": pki.server_cert, "key": pki.server_key, "ca": pki.ca}
    with LibcoapServer(flavour="openssl", client_credentials=client, **server_files) as server:
        assert server.put("a/b", b"over coaps", dtls=True) == "2.01"
        assert server.get("a/b", dtls=True) == b"over coaps"
        started = time.monotonic()
        with pytest.raises(DtlsHandshakeError, match="unknown CA") as failed:
            server.get("a/b", dtls=rogue)
        assert failed.value.alert == "unknown CA"
        assert time.monotonic() - started < 2  # a fatal alert: no waiting for the timeout
    with LibcoapServer(flavour="openssl", verify_peer=False, **server_files) as lenient:
        assert lenient.put("c", b"any client cert", dtls=rogue) == "2.01"


def test_libcoap_with_loss_still_answers_some_requests() -> None:
    answered = lost = 0

    def enough_of_both() -> bool:
        nonlocal answered, lost
        try:
            result = server.request("get", "/", timeout=1, confirmable=False)  # NON: a drop is not retried
        except TimeoutError:
            lost += 1
        else:
            assert result.code == "2.05"
            answered += 1
        return answered >= 3 and lost >= 1

    with LibcoapServer(loss="20%") as server:
        wait_until(enough_of_both, timeout=8, interval=0, what="answered and dropped responses")


def test_libcoap_dtls_restart_on_the_same_ports() -> None:
    client = CoapsCredentials(psk=PSK, identity="streamapp")
    with LibcoapServer(flavour="openssl", psk=PSK, client_credentials=client) as server:
        ports, first_pid = (server.port, server.dtls_port), server.pid
        server.put("kept", b"1", dtls=True)

        server.stop()
        assert server.pid is None
        server.start()
        assert (server.port, server.dtls_port) == ports
        assert server.get("kept", dtls=True) is None  # a new process: resources are gone
        server.put("kept", b"2", dtls=True)

        server.restart()
        assert (server.port, server.dtls_port) == ports
        assert server.pid not in (None, first_pid)
        assert server.get("kept", dtls=True) is None
        assert server.put("kept", b"3", dtls=True) == "2.01"
        assert server.get("kept") == b"3"


def test_libcoap_dtls_options_are_checked_up_front(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"1\.\.64 bytes"):  # libcoap would silently use only 64 of them
        LibcoapServer(flavour="openssl", psk=b"k" * 65)
    with pytest.raises(ValueError, match="flavour='openssl' or 'gnutls'"):
        LibcoapServer(psk=PSK)
    with pytest.raises(ValueError, match="without ','"):
        LibcoapServer(flavour="gnutls", psk_identities={"a,b": PSK})
    with pytest.raises(ValueError, match="only apply together with cert"):
        LibcoapServer(flavour="openssl", psk=PSK, ca=tmp_path / "ca.crt")
    with pytest.raises(ValueError, match="needs an identity"):
        CoapsCredentials(psk=PSK)
    with pytest.raises(ValueError, match="ccm8_only needs flavour='gnutls'"):
        CoapsCredentials(psk=PSK, identity="x", ccm8_only=True)
    with pytest.raises(PeerError, match="no DTLS port"):
        _ = LibcoapServer().dtls_port
