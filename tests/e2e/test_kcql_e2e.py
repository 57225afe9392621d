"""Full KCQL end to end: templates, nested/key/header/metadata fields, IGNORE and PROPERTIES."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from streamapp.peers import TansuBroker
from tests.recording_server import RecordingCoapServer

pytestmark = pytest.mark.slow


async def test_template_per_device_with_key_header_metadata_ignore_and_properties(
    broker: TansuBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    topic = f"{unique}-telemetry"
    await broker.create_topic(topic, partitions=3)
    n = 150
    values = [
        json.dumps({"deviceId": f"dev-{i % 50}", "seq": i, "reading": {"temp": i, "unit": "C"}}).encode()
        for i in range(n)
    ]
    keys = [json.dumps({"id": f"dev-{i % 50}"}).encode() for i in range(n)]
    parts = [i % 3 for i in range(n)]
    headers = [[("source", b"gw-1")] for _ in range(n)]
    produced = await broker.produce(topic, values, keys=keys, partitions=parts, headers=headers)
    offsets = {i: produced[i][1] for i in range(n)}
    kcql = (
        f"INSERT INTO devices/{{deviceId}}/state SELECT seq, reading.temp AS t, _key.id AS kid, "
        f"_header.source AS src, _.partition AS p, _.offset AS o FROM {topic}; "
        f"INSERT INTO audit SELECT * FROM {topic} IGNORE reading.unit PROPERTIES(method=POST, type=NON)"
    )
    worker = start_worker({"name": unique, "connect.coap.uri": recorder.uri, "connect.coap.kcql": kcql})
    worker.wait_until(lambda: len(recorder.requests) >= 2 * n, what=f"{2 * n} requests")

    got = recorder.requests
    assert len(got) == 2 * n
    per_device: dict[str, list[dict]] = defaultdict(list)
    audit = []
    for req in got:
        if req.path == "/audit":
            assert (req.method, req.mtype) == ("POST", "NON")
            audit.append(json.loads(req.payload))
        else:
            assert (req.method, req.mtype) == ("PUT", "CON")
            per_device[req.path].append(json.loads(req.payload))
    assert set(per_device) == {f"/devices/dev-{k}/state" for k in range(50)}
    for path, docs in per_device.items():
        device = path.split("/")[2]
        assert len(docs) == 3
        for doc in docs:
            i = doc["seq"]
            assert doc == {"seq": i, "t": i, "kid": device, "src": "gw-1", "p": i % 3, "o": offsets[i]}
            assert list(doc) == ["seq", "t", "kid", "src", "p", "o"]
        assert [d["seq"] for d in docs] == sorted(d["seq"] for d in docs), f"{path} out of order"
    assert sorted(d["seq"] for d in audit) == list(range(n))
    assert all(d["reading"] == {"temp": d["seq"]} for d in audit), "IGNORE reading.unit was not applied"
    assert worker.stop() == 0
