"""Dispatch inside the delivery engine (``streamapp/engine/dispatch.py``), on a fake sender: batching,
lanes, the window, and exactly which records are acked when something fails. The real CoapSender against
real servers is tests/integration/test_sender.py's and the e2e tests'."""

from __future__ import annotations

import json
from dataclasses import replace

from aiocoap.numbers.codes import Code

from streamapp.codecs import Codecs, build_codecs
from streamapp.engine.policy import ErrorPolicy
from streamapp.errors import DecodeError
from streamapp.records import RawRecord, RecordCoordinates
from tests.engine import engine
from tests.fakes import FakeSender


def raw(offset: int, value: bytes | None, partition: int = 0) -> RawRecord:
    return RawRecord("t", partition, offset, None, value, (), None)


def doc(n: int, **extra: object) -> bytes:
    return json.dumps({"n": n, **extra}).encode()


def bodies(fake: FakeSender, path: str) -> list:
    return fake.bodies(path)


async def test_batches_of_n_in_order_beside_a_per_record_statement(fake: FakeSender) -> None:
    e = engine("INSERT INTO b SELECT n FROM t BATCH = 3; INSERT INTO one SELECT n FROM t", fake)
    result = await e.deliver([raw(i, doc(i)) for i in range(7)])
    assert result.acked == [True] * 7 and result.stop is None
    assert result.order == list(range(7)), "acked in offset order"
    assert bodies(fake, "b") == [
        [{"n": 0}, {"n": 1}, {"n": 2}],
        [{"n": 3}, {"n": 4}, {"n": 5}],
        [{"n": 6}],
    ]
    assert bodies(fake, "one") == [{"n": i} for i in range(7)]
    assert [s.delivered for s in e.stats.statements.values()] == [7, 7]


async def test_a_batch_goes_to_one_resource_in_offset_order(fake: FakeSender) -> None:
    e = engine("INSERT INTO d/{dev} SELECT n FROM t BATCH = 10", fake)
    devices = ["a", "a", "b", "a"]
    result = await e.deliver([raw(i, doc(i, dev=d)) for i, d in enumerate(devices)])
    assert result.stop is None and result.acked == [True] * 4
    assert sorted((r.path, r.payload) for r in fake.requests) == [
        ("/d/a", b'[{"n":0},{"n":1},{"n":3}]'),
        ("/d/b", b'[{"n":2}]'),
    ]


async def test_tombstones_are_counted_and_do_not_split_a_batch(fake: FakeSender) -> None:
    e = engine("INSERT INTO b SELECT n FROM t BATCH = 2", fake)
    result = await e.deliver([raw(0, doc(0)), raw(1, None), raw(2, doc(2)), raw(3, doc(3))])
    assert result.acked == [True] * 4 and result.order == [0, 1, 2, 3]
    assert bodies(fake, "b") == [[{"n": 0}, {"n": 2}], [{"n": 3}]]
    assert e.stats.tombstones_skipped == 1


async def test_a_failed_batch_fails_as_a_whole_and_nothing_after_it_is_acked(fake: FakeSender) -> None:
    fake.set_response("b", Code.SERVICE_UNAVAILABLE, when=lambda p: {"n": 3} in json.loads(p))
    e = engine("INSERT INTO b SELECT n FROM t BATCH = 3; INSERT INTO one SELECT n FROM t", fake)
    result = await e.deliver([raw(i, doc(i)) for i in range(9)])
    assert result.stop is not None and "t/0@3" in str(result.stop) and "5.03" in str(result.stop)
    acked = result.order
    assert acked == list(range(len(acked))) and len(acked) <= 3, acked
    delivered_one = {r["n"] for r in bodies(fake, "one")}
    assert set(acked) <= delivered_one, "only records every statement had are acked"
    assert len(fake.requests_for("b")) == 2, "the batch statement went on after its failure"
    assert e.stats.statements[1].delivered == 3 and e.stats.statements[1].failed == 1


async def test_a_refused_record_holds_its_lane_and_nothing_after_it_is_acked(fake: FakeSender) -> None:
    fake.set_response("one", Code.NOT_FOUND, when=lambda p: json.loads(p)["n"] == 2)
    e = engine("INSERT INTO one SELECT n FROM t", fake)
    result = await e.deliver([raw(i, doc(i)) for i in range(5)])
    assert result.acked == [True, True, False, False, False]
    assert result.stop is not None and "t/0@2" in str(result.stop) and "4.04" in str(result.stop)
    assert bodies(fake, "one") == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_an_undecodable_record_is_never_sent_and_stops_under_throw(fake: FakeSender) -> None:
    e = engine("INSERT INTO b SELECT n FROM t BATCH = 10", fake)
    result = await e.deliver([raw(0, doc(0)), raw(1, doc(1)), raw(2, b"{oops"), raw(3, doc(3))])
    assert result.acked == [True, True, False, False]
    assert result.stop is not None and "record t/0@2" in str(result.stop)
    # What precedes the failed record in its partition is still delivered; nothing after it is sent.
    assert bodies(fake, "b") == [[{"n": 0}, {"n": 1}]]


def registry_down_for(offset: int, times: int | None) -> Codecs:
    """JSON values, except that the record at ``offset`` fails as with a schema registry that is down (a
    retriable DecodeError), ``times`` times (None: always)."""
    plain = build_codecs("json", "auto")
    left = [times]

    def value(data: bytes, where: RecordCoordinates) -> object:
        if where.offset == offset and left[0] != 0:
            left[0] = None if left[0] is None else left[0] - 1
            raise DecodeError(where, "schema registry unreachable", retriable=True)
        return plain.value(data, where)

    return replace(plain, value=value)


async def test_a_record_that_fails_to_prepare_retriably_is_prepared_again_under_retry_in_its_place(
    fake: FakeSender,
) -> None:
    """As with a schema registry that is down: the record fails before any statement, the intake prepares
    it again after the retry interval (counted for the worker), and the partition's order holds."""
    e = engine(
        "INSERT INTO one SELECT n FROM t",
        fake,
        ErrorPolicy("RETRY", max_retries=5, retry_interval_s=7.0),
        codecs=registry_down_for(offset=1, times=2),
    )
    result = await e.deliver([raw(i, doc(i)) for i in range(3)])
    assert result.acked == [True, True, True] and result.order == [0, 1, 2]
    assert bodies(fake, "one") == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert e.sleeps.calls == [7.0, 7.0]
    assert e.stats.records_retried == 2 and e.stats.statements[1].retried == 0


async def test_a_record_that_keeps_failing_to_prepare_stops_the_engine_when_retry_is_exhausted(
    fake: FakeSender,
) -> None:
    e = engine(
        "INSERT INTO one SELECT n FROM t",
        fake,
        ErrorPolicy("RETRY", max_retries=2, retry_interval_s=1.0),
        codecs=registry_down_for(offset=1, times=None),
    )
    result = await e.deliver([raw(i, doc(i)) for i in range(3)])
    assert result.acked == [True, False, False]
    assert result.stop is not None and "record t/0@1" in str(result.stop)
    assert e.sleeps.calls == [1.0, 1.0] and e.stats.records_retried == 2
    assert bodies(fake, "one") == [{"n": 0}]


async def test_a_failure_in_one_partition_does_not_hold_back_the_acks_of_another(fake: FakeSender) -> None:
    fake.set_response("one", Code.NOT_FOUND, when=lambda p: json.loads(p)["n"] == 11)
    e = engine("INSERT INTO one SELECT n FROM t", fake, ErrorPolicy("NOOP"))
    chunk = [raw(0, doc(0), 0), raw(0, doc(10), 1), raw(1, doc(1), 0), raw(1, doc(11), 1), raw(2, doc(12), 1)]
    result = await e.deliver(chunk)
    assert result.acked == [True] * 5
    assert e.stats.statements[1].skipped == 1
    assert e.stats.positions == {("t", 0): 2, ("t", 1): 3}


def key_raw(offset: int, key: bytes, value: bytes | None) -> RawRecord:
    return RawRecord("t", 0, offset, key, value, (), None)


async def test_tombstone_empty_sends_an_empty_body_without_content_format(fake: FakeSender) -> None:
    e = engine("INSERT INTO dev/{_key} SELECT n FROM t PROPERTIES(tombstone=empty)", fake)
    result = await e.deliver([key_raw(0, b"a", doc(0)), key_raw(1, b"a", None)])
    assert result.acked == [True, True] and result.stop is None
    first, second = fake.requests
    assert (first.method, first.path, first.payload) == ("PUT", "/dev/a", b'{"n":0}')
    assert (second.method, second.path, second.payload) == ("PUT", "/dev/a", b"")
    assert second.content_format is None and first.content_format == 50
    assert e.stats.tombstones_skipped == 0


async def test_tombstone_delete_sends_a_delete_and_is_never_batched(fake: FakeSender) -> None:
    e = engine(
        "INSERT INTO dev/{_key} SELECT n FROM t BATCH = 5 PROPERTIES(tombstone=delete);"
        "INSERT INTO log SELECT n FROM t",
        fake,
    )
    records = [
        key_raw(0, b"a", doc(0)),
        key_raw(1, b"a", None),
        key_raw(2, b"a", doc(2)),
        key_raw(3, b"a", doc(3)),
    ]
    result = await e.deliver(records)
    assert result.acked == [True] * 4 and result.stop is None
    assert [(r.method, r.payload) for r in fake.requests_for("dev/a")] == [
        ("PUT", b'[{"n":0}]'),
        ("DELETE", b""),
        ("PUT", b'[{"n":2},{"n":3}]'),
    ]
    assert [r.payload for r in fake.requests_for("log")] == [b'{"n":0}', b'{"n":2}', b'{"n":3}']
    assert e.stats.tombstones_skipped == 1  # the second statement skips it (the default)


async def test_a_tombstone_cannot_fill_a_resource_template_from_the_value(fake: FakeSender) -> None:
    e = engine("INSERT INTO dev/{id} SELECT n FROM t PROPERTIES(tombstone=delete)", fake)
    result = await e.deliver([raw(0, doc(0, id="x")), raw(1, None)])
    assert result.acked == [True, False]
    assert result.stop is not None and "record t/0@1: " in str(result.stop)
    assert [r.method for r in fake.requests] == ["PUT"]


async def test_a_body_over_max_payload_fails_before_any_request(fake: FakeSender) -> None:
    e = engine("INSERT INTO big SELECT * FROM t", fake, codecs=build_codecs("json"))
    huge = json.dumps({"blob": "x" * (10 * 1024 * 1024)}).encode()
    result = await e.deliver([raw(0, doc(0)), raw(1, huge), raw(2, doc(2))])
    assert result.acked == [True, False, False]
    assert result.stop is not None and (
        "record t/0@1: statement 1: the JSON body is 10485771 bytes, more than "
        "connect.coap.max.payload (1048576 bytes); not sent"
    ) in str(result.stop)
    assert [r.payload for r in fake.requests] == [b'{"n":0}']


async def test_a_batch_closes_before_it_outgrows_max_payload(fake: FakeSender) -> None:
    e = engine("INSERT INTO b SELECT s FROM t BATCH = 10", fake, max_payload=100)
    records = [raw(i, json.dumps({"s": "y" * 30}).encode()) for i in range(5)]  # 40-byte bodies
    result = await e.deliver(records)
    assert result.acked == [True] * 5
    assert [len(json.loads(r.payload)) for r in fake.requests] == [2, 2, 1]
    assert all(len(r.payload) <= 100 for r in fake.requests)


async def test_the_window_is_shared_by_resources_each_in_order() -> None:
    fake = FakeSender(window=8)
    e = engine("INSERT INTO dev/{d} SELECT n FROM t", fake)
    fake.set_delay(0.05)
    result = await e.deliver([raw(i, doc(i, d=f"r{i % 20}")) for i in range(200)])
    assert result.acked == [True] * 200 and result.order == list(range(200))
    assert fake.max_concurrent == 8, fake.max_concurrent
    for r in range(20):
        assert [json.loads(q.payload)["n"] for q in fake.requests_for(f"dev/r{r}")] == list(range(r, 200, 20))


async def test_partitions_to_one_resource_overlap_each_in_order() -> None:
    fake = FakeSender(window=4)
    e = engine("INSERT INTO one SELECT n, _.partition AS p FROM t", fake)
    fake.set_delay(0.03)
    records = [raw(i // 4, doc(i), i % 4) for i in range(80)]
    result = await e.deliver(records)
    assert result.acked == [True] * 80
    assert fake.max_concurrent == 4, fake.max_concurrent
    for p in range(4):
        assert [b["n"] for b in bodies(fake, "one") if b["p"] == p] == list(range(p, 80, 4))


async def test_a_statement_max_inflight_caps_its_share_of_the_window() -> None:
    fake = FakeSender(window=8)
    e = engine("INSERT INTO dev/{d} SELECT n FROM t PROPERTIES(max.inflight=2)", fake)
    fake.set_delay(0.03)
    result = await e.deliver([raw(i, doc(i, d=f"r{i % 10}")) for i in range(60)])
    assert result.acked == [True] * 60
    assert fake.max_concurrent == 2, fake.max_concurrent


async def test_ordering_none_lets_one_resource_take_the_whole_window() -> None:
    fake = FakeSender(window=4)
    e = engine("INSERT INTO ev SELECT n FROM t PROPERTIES(ordering=none)", fake)
    fake.set_delay(0.03)
    result = await e.deliver([raw(i, doc(i)) for i in range(40)])
    assert result.acked == [True] * 40 and result.order == list(range(40))
    assert fake.max_concurrent == 4, fake.max_concurrent
