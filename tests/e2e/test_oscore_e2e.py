"""OSCORE end to end (docs/oscore.md): Apache Kafka, a worker whose requests are protected with
``connect.coap.oscore.context``, aiocoap's OSCORE server (which refuses any sender sequence number it has
seen). The worker is SIGKILLed mid-stream and started again: every record arrives, the server accepted every
request (no sequence number was used twice, so none was refused as a replay), and neither the worker's log
nor its stats page nor its metrics show the master secret, the salt or a derived key. Over ``coap+tcp://``:
a worker delivers to aiocoap's OSCORE server over TCP, whose connection is reset mid-stream; the requests sent
again are protected anew, none is refused as a replay, every record arrives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from aiocoap import oscore as aiocoap_oscore

from streamapp_harness.kafka_broker import KafkaBroker
from tests.oscore_server import OscoreCoapServer, make_contexts

RECORDS = 3000


def derived_keys(context_dir: Path, scratch: Path) -> list[str]:
    """The sender and recipient keys the context derives (from a copy: the worker holds the lock)."""
    shutil.copytree(context_dir, scratch, ignore=shutil.ignore_patterns("lock", "sequence.json"))
    context = aiocoap_oscore.FilesystemSecurityContext(str(scratch))
    try:
        return [context.sender_key.hex(), context.recipient_key.hex(), context.common_iv.hex()]
    finally:
        context._destroy()


async def test_a_sigkilled_worker_restarts_without_reusing_a_sequence_number(
    broker: KafkaBroker, start_worker, unique: str, tmp_path: Path
) -> None:
    pair = make_contexts(tmp_path / "contexts")
    topic = f"{unique}-readings"
    await broker.create_topic(topic, partitions=4)
    await broker.produce(topic, [json.dumps({"n": n}).encode() for n in range(RECORDS)])
    with OscoreCoapServer(pair.server) as server:
        properties = {
            "name": unique,
            "connect.coap.uri": server.uri,
            "connect.coap.kcql": f"INSERT INTO readings SELECT * FROM {topic}",
            "connect.coap.oscore.context": str(pair.client),
            "connect.coap.max.inflight": "8",
            "log.format": "json",
        }
        first = start_worker(properties)
        first.wait_until(lambda: server.count >= RECORDS // 3, what="a third of the records at the server")
        stats = first.stats()
        first.kill()  # SIGKILL: no stop, nothing written back
        accepted = server.accepted_sequence_numbers
        persisted = json.loads((pair.client / "sequence.json").read_text())["next-to-send"]
        assert persisted > max(accepted)  # RFC 8613 §7.5: persisted ahead of every number used
        killed_at = len(accepted)

        second = start_worker(properties)
        second.wait_until(
            lambda: {r.payload for r in server.requests} >= {b'{"n":%d}' % n for n in range(RECORDS)},
            what="every record at the server",
        )
        texts = [json.dumps(stats), json.dumps(second.stats()), repr(second.metrics())]
        assert second.stop() == 0
        texts += [first.log_text(), second.log_text()]

        assert server.unprotected == 0
        assert len(set(accepted)) == len(accepted), "a sequence number was used twice"
        assert min(accepted[killed_at:]) >= persisted > max(accepted[:killed_at])
        assert all(r.path == "/readings" for r in server.requests)
        assert "Replay detected" not in second.log_text()  # aiocoap's words, in any line: none
        # After a clean stop the exact next number is written back, and the lock is free for the next worker.
        assert json.loads((pair.client / "sequence.json").read_text())["next-to-send"] > max(accepted)
        (context,) = second.events("coap.oscore_context")
        assert context["directory"] == str(pair.client) and context["next_sequence_number"] >= persisted

        secrets = [pair.secret_hex, pair.salt_hex, *derived_keys(pair.client, tmp_path / "copy")]
        for text in texts:
            for secret in secrets:
                assert secret not in text and secret.upper() not in text


TCP_RECORDS = 600


async def test_a_worker_delivers_over_coap_tcp_with_oscore_across_a_dropped_connection(
    broker: KafkaBroker, start_worker, unique: str, tmp_path: Path
) -> None:
    """OSCORE over CoAP over TCP (docs/oscore.md, docs/tcp.md): the worker's requests to aiocoap's OSCORE
    server on ``coap+tcp://`` are protected (none arrives unprotected); the server resets the connection
    while requests are being answered, and the worker sends the unanswered ones again on a new connection,
    each protected anew: the server refuses none as a replay, and every record arrives."""
    pair = make_contexts(tmp_path / "contexts")
    topic = f"{unique}-tcp"
    await broker.create_topic(topic, partitions=2)
    await broker.produce(topic, [json.dumps({"n": n}).encode() for n in range(TCP_RECORDS)])
    with OscoreCoapServer(pair.server, transport="tcp") as server:
        server.set_delay(0.01)  # answers take 10 ms: the reset lands with requests taken and unanswered
        worker = start_worker(
            {
                "name": unique,
                "connect.coap.uri": server.uri,
                "connect.coap.kcql": f"INSERT INTO readings SELECT * FROM {topic}",
                "connect.coap.oscore.context": str(pair.client),
                "connect.coap.max.inflight": "8",
                "connect.coap.request.timeout": "20000",
            }
        )
        worker.wait_until(
            lambda: server.count >= TCP_RECORDS // 3 and server.in_flight > 0,
            what="a third of the records at the server, some being answered",
        )
        assert server.drop_connections() == 1
        expected = {b'{"n":%d}' % n for n in range(TCP_RECORDS)}
        worker.wait_until(
            lambda: {r.payload for r in server.requests} >= expected, what="every record at the server"
        )
        worker.wait_until(lambda: worker.delivered().get(1) == TCP_RECORDS, what="every record delivered")
        assert worker.stop() == 0

        accepted = server.accepted_sequence_numbers
        assert server.unprotected == 0 and server.replays == 0
        assert len(set(accepted)) == len(accepted) == server.count
        assert all(r.path == "/readings" and r.method == "PUT" for r in server.requests)
    lost = worker.events("coap.tcp_connection_lost")
    assert any(event["unanswered"] > 0 for event in lost)
    log = worker.log_text()
    assert '"coap.tcp_connected"' in log and "Replay detected" not in log
    for secret in (pair.secret_hex, pair.salt_hex):
        assert secret not in log and secret.upper() not in log
