"""Answers back to Kafka (docs/replies.md), end to end: Apache Kafka, a worker, aiocoap's server answering
each command with its own code and payload; the reply topic read back with a plain consumer."""

from __future__ import annotations

import json

from aiocoap.numbers.codes import Code

from streamapp_harness.kafka_broker import KafkaBroker
from tests.recording_server import RecordingCoapServer

COMMANDS = 6


async def test_every_answer_reaches_the_reply_topic_with_the_correlation_id_and_coordinates(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    topic, replies, failures = f"{unique}-cmd", f"{unique}-replies", f"{unique}-refusals"
    for name in (topic, replies, failures):
        await broker.create_topic(name, partitions=1)
    recorder.set_response("dev/1", Code.CONTENT, payload=b'{"state":"on"}', content_format=50)
    recorder.set_response("dev/3", Code.NOT_FOUND, payload=b"no such lamp")
    produced = await broker.produce(
        topic,
        [json.dumps({"dev": n, "cmd": "on"}).encode() for n in range(COMMANDS)],
        keys=[b"lamp-%d" % n for n in range(COMMANDS)],
        headers=[[("correlation-id", b"corr-%d" % n)] for n in range(COMMANDS)],
    )
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": (
                f"INSERT INTO dev/{{dev}} SELECT cmd FROM {topic}; "
                f"INSERT INTO audit SELECT dev FROM {topic} "
                f"PROPERTIES(reply.topic='{failures}', reply.on=failure)"
            ),
            "connect.coap.error.policy": "NOOP",
            "connect.coap.reply.topic": replies,
            "log.format": "json",
        }
    )
    worker.wait_until(lambda: len(recorder.requests) >= 2 * COMMANDS, what="every command at the server")
    answers = await broker.consume(replies, COMMANDS)
    by_key = {record.key: record for record in answers}
    assert sorted(by_key) == sorted(b"lamp-%d" % n for n in range(COMMANDS))
    for n in range(COMMANDS):
        record = by_key[b"lamp-%d" % n]
        headers = dict(record.headers)
        assert headers["correlation-id"] == b"corr-%d" % n
        assert headers["source.topic"] == topic.encode()
        assert headers["source.partition"] == b"0"
        assert headers["source.offset"] == str(produced[n][1]).encode()
        assert headers["kcql.statement"] == b"1"
        assert headers["coap.uri"] == f"{recorder.uri}/dev/{n}".encode()
        if n == 1:
            assert (record.value, headers["coap.code"], headers["coap.content.format"]) == (
                b'{"state":"on"}',
                b"2.05",
                b"50",
            )
        elif n == 3:
            assert (record.value, headers["coap.code"]) == (b"no such lamp", b"4.04")
            assert "coap.content.format" not in headers
        else:
            assert (record.value, headers["coap.code"]) == (None, b"2.04")
    # The audit statement succeeds every time: its reply.on=failure topic stays empty, and the worker's
    # topic got nothing of it (its own PROPERTIES topic overrides the worker's).
    assert all(dict(r.headers)["kcql.statement"] == b"1" for r in answers)
    await broker.produce(failures, [b"marker"])
    (only,) = await broker.consume(failures, 1)
    assert only.value == b"marker"
    stats = worker.stats()
    assert stats is not None
    assert [s["replies"] for s in stats["statements"]] == [COMMANDS, 0]
    replied = {
        dict(labels)["statement"]: value
        for (name, labels), value in worker.metrics().items()
        if name == "streamapp_replies_total"
    }
    assert replied == {"1": COMMANDS, "2": 0}
    assert worker.stop() == 0
