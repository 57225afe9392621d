"""RecordPipeline.deliver with the real CoapSender and a recording server: batching, and exactly which
records count as delivered when something fails."""

from __future__ import annotations

import json

from aiocoap.numbers.codes import Code

from streamapp.coap.sender import CoapSender, RequestOptions
from streamapp.codecs import build_codecs
from streamapp.errors import DecodeError, DeliveryError, SelectError
from streamapp.kcql import parse_kcql
from streamapp.pipeline import RawRecord, RecordPipeline, Route
from streamapp.stats import Stats
from tests.recording_server import RecordingCoapServer


def pipeline(kcql: str, sender: CoapSender) -> tuple[RecordPipeline, Stats]:
    statements = parse_kcql(kcql)
    stats = Stats.for_statements(statements)
    routes = [Route.compile(s) for s in statements]
    return RecordPipeline(routes, build_codecs("json", "auto"), sender, stats), stats


def raw(offset: int, value: bytes | None, partition: int = 0) -> RawRecord:
    return RawRecord("t", partition, offset, None, value, (), None)


def doc(n: int, **extra: object) -> bytes:
    return json.dumps({"n": n, **extra}).encode()


def bodies(recorder: RecordingCoapServer, path: str) -> list:
    return [json.loads(r.payload) for r in recorder.requests_for(path)]


async def test_batches_of_n_in_order_beside_a_per_record_statement(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    pipe, stats = pipeline("INSERT INTO b SELECT n FROM t BATCH = 3; INSERT INTO one SELECT n FROM t", sender)
    outcome = await pipe.deliver([raw(i, doc(i)) for i in range(7)])
    assert outcome.delivered == [True] * 7 and outcome.error is None
    assert bodies(recorder, "b") == [
        [{"n": 0}, {"n": 1}, {"n": 2}],
        [{"n": 3}, {"n": 4}, {"n": 5}],
        [{"n": 6}],
    ]
    assert bodies(recorder, "one") == [{"n": i} for i in range(7)]
    assert [s.delivered for s in stats.statements.values()] == [7, 7]


async def test_a_batch_goes_to_one_resource(sender: CoapSender, recorder: RecordingCoapServer) -> None:
    pipe, _ = pipeline("INSERT INTO d/{dev} SELECT n FROM t BATCH = 10", sender)
    devices = ["a", "a", "b", "a"]
    outcome = await pipe.deliver([raw(i, doc(i, dev=d)) for i, d in enumerate(devices)])
    assert outcome.error is None
    assert [(r.path, json.loads(r.payload)) for r in recorder.requests] == [
        ("/d/a", [{"n": 0}, {"n": 1}]),
        ("/d/b", [{"n": 2}]),
        ("/d/a", [{"n": 3}]),
    ]


async def test_tombstones_are_counted_and_do_not_split_a_batch(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    pipe, stats = pipeline("INSERT INTO b SELECT n FROM t BATCH = 2", sender)
    outcome = await pipe.deliver([raw(0, doc(0)), raw(1, None), raw(2, doc(2)), raw(3, doc(3))])
    assert outcome.delivered == [True] * 4
    assert bodies(recorder, "b") == [[{"n": 0}, {"n": 2}], [{"n": 3}]]
    assert stats.tombstones_skipped == 1


async def test_a_failed_batch_fails_as_a_whole_and_nothing_after_it_counts(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    recorder.set_response("b", Code.SERVICE_UNAVAILABLE, when=lambda p: {"n": 3} in json.loads(p))
    pipe, stats = pipeline("INSERT INTO b SELECT n FROM t BATCH = 3; INSERT INTO one SELECT n FROM t", sender)
    outcome = await pipe.deliver([raw(i, doc(i)) for i in range(9)])
    assert outcome.delivered == [True] * 3 + [False] * 6
    assert isinstance(outcome.error, DeliveryError) and outcome.error.code == "5.03"
    assert str(outcome.error).startswith("record t/0@3: ")
    assert outcome.failed_at is not None and outcome.failed_at.offset == 3
    assert len(recorder.requests_for("b")) == 2, "the batch statement went on after its failure"
    assert stats.statements[1].delivered == 3 and stats.statements[1].failed == 1


async def test_per_record_failure_marks_only_earlier_records_delivered(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    recorder.set_response("one", Code.NOT_FOUND, when=lambda p: json.loads(p)["n"] == 2)
    pipe, _ = pipeline("INSERT INTO one SELECT n FROM t", sender)
    outcome = await pipe.deliver([raw(i, doc(i)) for i in range(5)])
    assert outcome.delivered == [True, True, False, False, False]
    assert isinstance(outcome.error, DeliveryError) and outcome.error.where.offset == 2
    assert bodies(recorder, "one") == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_an_undecodable_record_stops_its_partition_before_anything_of_it_is_sent(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    pipe, _ = pipeline("INSERT INTO b SELECT n FROM t BATCH = 10", sender)
    outcome = await pipe.deliver([raw(0, doc(0)), raw(1, doc(1)), raw(2, b"{oops"), raw(3, doc(3))])
    assert outcome.delivered == [True, True, False, False]
    assert isinstance(outcome.error, DecodeError) and "record t/0@2" in str(outcome.error)
    assert bodies(recorder, "b") == [[{"n": 0}, {"n": 1}]]


async def test_partitions_of_a_chunk_are_delivered_independently(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    recorder.set_response("one", Code.NOT_FOUND, when=lambda p: json.loads(p)["n"] == 11)
    pipe, _ = pipeline("INSERT INTO one SELECT n FROM t", sender)
    chunk = [raw(0, doc(0), 0), raw(0, doc(10), 1), raw(1, doc(1), 0), raw(1, doc(11), 1), raw(2, doc(12), 1)]
    outcome = await pipe.deliver(chunk)
    assert outcome.delivered == [True, True, True, False, False]
    assert outcome.error is not None and outcome.error.where.partition == 1
    assert (outcome.failed_at.partition, outcome.failed_at.offset) == (1, 1)


def key_raw(offset: int, key: bytes, value: bytes | None) -> RawRecord:
    return RawRecord("t", 0, offset, key, value, (), None)


async def test_tombstone_empty_sends_an_empty_body_without_content_format(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    pipe, stats = pipeline("INSERT INTO dev/{_key} SELECT n FROM t PROPERTIES(tombstone=empty)", sender)
    outcome = await pipe.deliver([key_raw(0, b"a", doc(0)), key_raw(1, b"a", None)])
    assert outcome.delivered == [True, True] and outcome.error is None
    first, second = recorder.requests
    assert (first.method, first.path, first.payload) == ("PUT", "/dev/a", b'{"n":0}')
    assert (second.method, second.path, second.payload) == ("PUT", "/dev/a", b"")
    assert second.content_format is None and first.content_format == 50
    assert stats.tombstones_skipped == 0


async def test_tombstone_delete_sends_a_delete_and_is_never_batched(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    pipe, stats = pipeline(
        "INSERT INTO dev/{_key} SELECT n FROM t BATCH = 5 PROPERTIES(tombstone=delete);"
        "INSERT INTO log SELECT n FROM t",
        sender,
    )
    records = [
        key_raw(0, b"a", doc(0)),
        key_raw(1, b"a", None),
        key_raw(2, b"a", doc(2)),
        key_raw(3, b"a", doc(3)),
    ]
    outcome = await pipe.deliver(records)
    assert outcome.delivered == [True] * 4 and outcome.error is None
    assert [(r.method, r.payload) for r in recorder.requests_for("dev/a")] == [
        ("PUT", b'[{"n":0}]'),
        ("DELETE", b""),
        ("PUT", b'[{"n":2},{"n":3}]'),
    ]
    assert [r.payload for r in recorder.requests_for("log")] == [b'{"n":0}', b'{"n":2}', b'{"n":3}']
    assert stats.tombstones_skipped == 1  # the second statement skips it (the default)


async def test_a_tombstone_cannot_fill_a_resource_template_from_the_value(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    pipe, _ = pipeline("INSERT INTO dev/{id} SELECT n FROM t PROPERTIES(tombstone=delete)", sender)
    outcome = await pipe.deliver([raw(0, doc(0, id="x")), raw(1, None)])
    assert outcome.delivered == [True, False]
    assert isinstance(outcome.error, SelectError)
    assert str(outcome.error).startswith("record t/0@1: ")
    assert [r.method for r in recorder.requests] == ["PUT"]


async def test_a_body_over_max_payload_fails_before_any_request(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    statements = parse_kcql("INSERT INTO big SELECT * FROM t")
    pipe = RecordPipeline(
        [Route.compile(s) for s in statements], build_codecs("json"), sender, Stats.for_statements(statements)
    )
    huge = json.dumps({"blob": "x" * (10 * 1024 * 1024)}).encode()
    outcome = await pipe.deliver([raw(0, doc(0)), raw(1, huge), raw(2, doc(2))])
    assert outcome.delivered == [True, False, False]
    assert isinstance(outcome.error, DecodeError) and outcome.failed_at is not None
    assert str(outcome.error) == (
        "record t/0@1: statement 1: the JSON body is 10485771 bytes, more than "
        "connect.coap.max.payload (1048576 bytes); not sent"
    )
    assert [r.payload for r in recorder.requests] == [b'{"n":0}']


async def test_a_batch_closes_before_it_outgrows_max_payload(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    statements = parse_kcql("INSERT INTO b SELECT s FROM t BATCH = 10")
    pipe = RecordPipeline(
        [Route.compile(s) for s in statements],
        build_codecs("json"),
        sender,
        Stats.for_statements(statements),
        max_payload=100,
    )
    records = [raw(i, json.dumps({"s": "y" * 30}).encode()) for i in range(5)]  # 40-byte bodies
    outcome = await pipe.deliver(records)
    assert outcome.delivered == [True] * 5
    assert [len(json.loads(r.payload)) for r in recorder.requests] == [2, 2, 1]
    assert all(len(r.payload) <= 100 for r in recorder.requests)


async def test_delivering_again_resends_only_to_the_statement_that_failed(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    """What RETRY relies on: a record one statement delivered is not sent again when another failed."""
    pipe, _ = pipeline("INSERT INTO ok SELECT n FROM t; INSERT INTO flaky SELECT n FROM t", sender)
    recorder.set_response("flaky", Code.SERVICE_UNAVAILABLE, when=lambda body: body == b'{"n":1}', times=1)
    records = [raw(i, doc(i)) for i in range(3)]
    first = await pipe.deliver(records)
    assert first.delivered == [True, False, False]
    assert isinstance(first.error, DeliveryError) and first.statement == 2
    assert first.failed_at is not None and first.failed_at.offset == 1
    again = await pipe.deliver(records[1:])
    assert again.delivered == [True, True] and again.error is None
    assert [r.payload for r in recorder.requests_for("ok")] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    assert [r.payload for r in recorder.requests_for("flaky")] == [
        b'{"n":0}',
        b'{"n":1}',
        b'{"n":1}',
        b'{"n":2}',
    ]


async def test_max_inflight_sends_resources_concurrently_each_in_order(recorder: RecordingCoapServer) -> None:
    sender = CoapSender(recorder.uri, RequestOptions(timeout_s=10.0, max_inflight=8), max_inflight=8)
    await sender.start()
    try:
        statements = parse_kcql("INSERT INTO dev/{d} SELECT n FROM t PROPERTIES(max.inflight=8)")
        stats = Stats.for_statements(statements)
        defaults = RequestOptions(timeout_s=10.0)
        pipe = RecordPipeline(
            [Route.compile(s, defaults) for s in statements], build_codecs("json"), sender, stats
        )
        recorder.set_delay(0.05)
        records = [raw(i, doc(i, d=f"r{i % 20}")) for i in range(200)]
        outcome = await pipe.deliver(records)
    finally:
        await sender.stop()
    assert outcome.delivered == [True] * 200 and outcome.error is None
    assert 6 <= recorder.max_concurrent <= 8, recorder.max_concurrent
    for r in range(20):
        assert [json.loads(q.payload)["n"] for q in recorder.requests_for(f"dev/r{r}")] == list(
            range(r, 200, 20)
        )
