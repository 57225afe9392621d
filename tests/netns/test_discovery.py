"""discoverIP4 / discoverIP6 against libcoap's server joined to All-CoAP-Nodes, in a namespace of our own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiocoap
import pytest
from aiocoap.numbers.codes import Code

from streamapp.coap.discovery import DiscoveryFailed, discover
from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.libcoap import LibcoapServer
from streamapp_harness.worker import WorkerProcess
from tests.netns.conftest import NAMESPACE_IPV4

CORPUS = Path(__file__).resolve().parents[1] / "data" / "stream-reactor"
QUICKSTART = CORPUS / "quickstart-2017-with-log-keys.properties"


async def test_discover_ip4_finds_the_server_that_answers(ip4_server: LibcoapServer) -> None:
    found = await discover(f"coap://discoverIP4:{ip4_server.port}/base")
    assert found == f"coap://{NAMESPACE_IPV4}:{ip4_server.port}/base"


async def test_discover_ip6_finds_the_server_and_its_address_is_usable(ip6_server: LibcoapServer) -> None:
    found = await discover(f"coap://discoverIP6:{ip6_server.port}")
    assert found.startswith("coap://[fe80::") and f"]:{ip6_server.port}" in found, found
    context = await aiocoap.Context.create_client_context()
    try:
        put = aiocoap.Message(code=Code.PUT, uri=f"{found}/found-by-ip6", payload=b'{"ok":1}')
        response = await context.request(put).response
    finally:
        await context.shutdown()
    assert response.code == Code.CREATED
    assert ip6_server.get("/found-by-ip6") == b'{"ok":1}'


async def test_no_answer_is_a_located_error_after_the_wait() -> None:
    started = time.monotonic()
    with pytest.raises(DiscoveryFailed) as info:
        await discover("coap://discoverIP4:5683", wait_s=1.5)
    assert 1.5 <= time.monotonic() - started < 5
    assert "no CoAP server answered a multicast GET /.well-known/core to 224.0.1.187 port 5683" in str(
        info.value
    )


@pytest.mark.slow
async def test_a_worker_with_discover_ip4_delivers_to_the_server_found(
    broker: KafkaBroker, ip4_server: LibcoapServer, start_worker, unique: str
) -> None:
    topic = f"{unique}-t"
    await broker.create_topic(topic, partitions=1)
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": f"coap://discoverIP4:{ip4_server.port}",
            "connect.coap.max.retires": "5",  # stream-reactor's spelling, as its own start-up log printed it
            "connect.coap.kcql": f"INSERT INTO rooms/{{room}} SELECT t, room FROM {topic}",
        }
    )
    await broker.produce(topic, [json.dumps({"t": 20 + i, "room": f"r{i}"}).encode() for i in range(3)])
    worker.wait_until(lambda: ip4_server.get("/rooms/r2") is not None, what="delivery to the found server")
    assert json.loads(ip4_server.get("/rooms/r0")) == {"t": 20, "room": "r0"}
    assert worker.stats()["worker"]["coap_server"] == f"coap://{NAMESPACE_IPV4}:{ip4_server.port}"
    (discovered,) = worker.events("coap.server_discovered")
    assert discovered["server"] == f"coap://{NAMESPACE_IPV4}:{ip4_server.port}"
    assert f"discovered from coap://discoverIP4:{ip4_server.port}" in discovered["how"], discovered
    (notice,) = worker.events("config.notice")
    assert (notice["key"], notice["use_instead"]) == ("connect.coap.max.retires", "connect.coap.max.retries")
    assert "write connect.coap.max.retries" in notice["note"], notice
    assert worker.stop() == 0


@pytest.mark.slow
def test_a_worker_stops_with_one_line_when_no_server_answers(start_worker, unique: str) -> None:
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": "coap://discoverIP4:5683",
            "connect.coap.kcql": "INSERT INTO a SELECT * FROM t",
        }
    )
    assert worker.wait_exit(30) == 1
    assert (
        "streamapp: connect.coap.uri: coap://discoverIP4:5683: no CoAP server answered a multicast GET "
        "/.well-known/core to 224.0.1.187 port 5683 within 7 s" in worker.log_text()
    )


@pytest.mark.slow
async def test_the_documented_quickstart_file_runs_as_it_is(
    broker: KafkaBroker, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The stream-reactor quickstart with the keys of its start-up log (spaces around `=`, `#` comments,
    `tasks = 1`, connector.class, `max.retires`, `sink.bind.*`, `certs = []`) names coap://localhost:5683
    and coap_topic; in this namespace both are ours. Only the broker comes from the environment, as a
    Connect worker's would."""
    # localhost may resolve to ::1 or 127.0.0.1: the server listens on every address of the namespace.
    with LibcoapServer(5683, every_address=True) as server:
        await broker.create_topic("coap_topic", partitions=1)
        worker = WorkerProcess(
            {"bootstrap.servers": broker.bootstrap}, tmp_path, "quickstart", config_file=QUICKSTART
        )
        workers.append(worker.start())
        record = {"firstName": "John", "lastName": "Smith", "age": 30, "salary": 4830}
        await broker.produce("coap_topic", [json.dumps(record).encode()])
        worker.wait_until(lambda: server.get("/unsecure") is not None, what="the quickstart's delivery")
        assert json.loads(server.get("/unsecure")) == record
        stats = worker.stats()
        assert (
            stats["worker"]["name"] == "coap-sink"
            and stats["worker"]["coap_server"] == "coap://localhost:5683"
        )
        log = worker.log_text()
        # tasks, connector.class, sink.bind.port, sink.bind.host, max.retires: once each
        assert log.count("config.notice") == 5, log
        assert "write connect.coap.max.retries" in log
        assert worker.stop() == 0
