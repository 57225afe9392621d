"""Hostile records end to end (issue 15): a 10 MB record on the topic goes to the error policy with an
event naming it, and the records around it are delivered; the worker's memory stays bounded."""

from __future__ import annotations

import json

import pytest

from tests.scenario import Scenario, json_values

pytestmark = pytest.mark.slow

TEN_MB = 10 * 1024 * 1024


async def test_a_ten_megabyte_record_is_skipped_with_its_line_and_the_rest_is_delivered(
    run: Scenario,
) -> None:
    huge = json.dumps({"n": 1, "blob": "x" * TEN_MB}).encode()
    topic = await run.topic(configs={"max.message.bytes": str(2 * TEN_MB)})  # Kafka's default is 1 MB
    await run.broker.produce(
        topic, [*json_values([{"n": 0}]), huge, *json_values([{"n": 2}])], max_request_size=2 * TEN_MB
    )
    worker = run.start(f"INSERT INTO r SELECT * FROM {topic}", {"connect.coap.error.policy": "NOOP"})
    got = run.wait_for(worker, 2, what="the records around the huge one")
    assert [json.loads(r.payload)["n"] for r in got] == [0, 2]
    worker.wait_until(lambda: worker.events("record.skipped"), what="the skip event")
    (skipped,) = worker.events("record.skipped")
    assert (skipped["topic"], skipped["partition"], skipped["offset"]) == (topic, 0, 1)
    assert (skipped["statements"], skipped["error_class"]) == ([1], "DecodeError")
    assert "connect.coap.max.payload" in skipped["why"], skipped
    assert worker.rss_kib() < 400 * 1024, "the huge record was copied many times over"
    assert worker.stop() == 0
