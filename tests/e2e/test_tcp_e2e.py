"""coap+tcp:// and coaps+tcp:// end to end (docs/tcp.md): Apache Kafka, a worker, aiocoap's TCP server as the
worker's server and libcoap's TLS server (client certificate from a PKCS#12 keystore, the server's name
checked) as a statement's own server; aiocoap's server is restarted mid-stream and every record still
arrives at both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.libcoap import LibcoapServer
from tests.certs import Pki
from tests.recording_server import RecordingCoapServer

RECORDS = 60


@pytest.fixture
def tcp_recorder() -> Iterator[RecordingCoapServer]:
    with RecordingCoapServer(transport="tcp") as server:
        yield server


async def test_records_reach_a_tcp_and_a_tls_server_across_a_restart(
    broker: KafkaBroker,
    tcp_recorder: RecordingCoapServer,
    start_worker,
    unique: str,
    pki: Pki,
    tmp_path: Path,
) -> None:
    topic = f"{unique}-tcp"
    await broker.create_topic(topic, partitions=2)
    tcp_recorder.set_delay(0.02)  # ~20 ms an answer: the restart lands mid-stream
    with LibcoapServer(
        flavour="openssl",
        cert=pki.server_cert,
        key=pki.server_key,
        ca=pki.ca,
        log_path=tmp_path / "libcoap.log",
    ) as tls_server:
        tls_uri = f"coaps+tcp://localhost:{tls_server.port + 1}"
        await broker.produce(topic, [json.dumps({"id": n, "v": n * 10}).encode() for n in range(RECORDS)])
        worker = start_worker(
            {
                "name": unique,
                "connect.coap.uri": tcp_recorder.uri,
                "connect.coap.kcql": (
                    f"INSERT INTO dev/{{id}} SELECT v FROM {topic}; "
                    f"INSERT INTO '{tls_uri}/tls/{{id}}' SELECT v FROM {topic}"
                ),
                "connect.coap.max.inflight": "4",
                "connect.coap.request.timeout": "20000",
                "connect.coap.keystore.path": str(pki.client_p12),
                "connect.coap.truststore.path": str(pki.trust_p12),
                "log.format": "json",
            }
        )
        worker.wait_until(lambda: tcp_recorder.count >= 15, what="15 records at the TCP server")
        tcp_recorder.restart()
        expected = {b'{"v":%d}' % (n * 10) for n in range(RECORDS)}
        worker.wait_until(
            lambda: {r.payload for r in tcp_recorder.requests} >= expected,
            what="every record at the TCP server",
        )
        worker.wait_until(
            lambda: worker.delivered().get(2) == RECORDS, what="every record delivered over TLS"
        )
        for n in (0, RECORDS // 2, RECORDS - 1):
            assert tls_server.get(f"tls/{n}") == b'{"v":%d}' % (n * 10)
        assert worker.delivered() == {1: RECORDS, 2: RECORDS}
        assert worker.stop() == 0
    connected = worker.events("coap.tcp_connected")
    over_tls = [e["tls"] for e in connected if e["tls"] is not None]
    plain = [e for e in connected if e["tls"] is None]
    assert over_tls and set(over_tls) == {"TLSv1.3, ALPN coap"}, connected
    assert len(plain) >= 2, f"no new connection after the TCP server's restart: {connected}"
    assert "rootPass" not in worker.log_text()  # a secret appears nowhere: the whole text is searched
