"""The error policies (``streamapp/engine/failures.py``, ``policy.py``) over the real engine, on a fake
sender, a clock that does not wait and a dead-letter producer that records."""

from __future__ import annotations

import json

from aiocoap.numbers.codes import Code

from streamapp.engine.dead_letters import DeadLetters
from streamapp.engine.policy import ErrorPolicy
from streamapp.records import RawRecord
from tests.engine import Engine, engine
from tests.fakes import FakeSender


class Produced:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]] = []

    async def __call__(self, topic: str, key: bytes | None, value: bytes | None, headers: list) -> None:
        self.records.append((topic, key, value, dict(headers)))


def handler(
    kcql: str, fake: FakeSender, policy: ErrorPolicy, dead_letters: DeadLetters | None = None
) -> Engine:
    return engine(kcql, fake, policy, dead_letters)


def raw(offset: int, value: bytes | None, partition: int = 0) -> RawRecord:
    return RawRecord("t", partition, offset, b"k%d" % offset, value, (("trace", b"abc"),), None)


def docs(n: int) -> list[RawRecord]:
    return [raw(i, json.dumps({"n": i}).encode()) for i in range(n)]


async def test_retry_until_the_server_recovers_without_resending_what_was_delivered(fake: FakeSender) -> None:
    policy = ErrorPolicy("RETRY", max_retries=5, retry_interval_s=7.0)
    h = handler("INSERT INTO a SELECT n FROM t; INSERT INTO b SELECT n FROM t", fake, policy)
    fake.set_response("b", Code.SERVICE_UNAVAILABLE, when=lambda body: body == b'{"n":2}', times=3)
    handled = await h.deliver(docs(5))
    assert handled.stop is None and handled.acked == [True] * 5
    assert h.sleeps.calls == [7.0, 7.0, 7.0]
    assert h.stats.statements[2].retried == 3 and h.stats.statements[1].retried == 0
    assert [r.payload for r in fake.requests_for("a")] == [b'{"n":%d}' % i for i in range(5)]
    assert [json.loads(r.payload)["n"] for r in fake.requests_for("b")] == [0, 1, 2, 2, 2, 2, 3, 4]


async def test_retry_exhausted_stops_and_acks_only_what_precedes_the_record(fake: FakeSender) -> None:
    h = handler("INSERT INTO a SELECT n FROM t", fake, ErrorPolicy("RETRY", 2, 1.0))
    fake.set_response("a", Code.INTERNAL_SERVER_ERROR, when=lambda body: body == b'{"n":1}')
    handled = await h.deliver(docs(3))
    assert handled.acked == [True, False, False]
    assert handled.stop is not None
    assert "RETRY, gave up after 2 retries" in str(handled.stop) and "t/0@1" in str(handled.stop)
    assert h.sleeps.calls == [1.0, 1.0]


async def test_a_non_retriable_code_is_never_retried(fake: FakeSender) -> None:
    h = handler("INSERT INTO a SELECT n FROM t", fake, ErrorPolicy("RETRY", 5, 1.0))
    fake.set_response("a", Code.NOT_FOUND, when=lambda body: body == b'{"n":1}')
    handled = await h.deliver(docs(3))
    assert handled.acked == [True, False, False] and handled.stop is not None and h.sleeps.calls == []


async def test_noop_skips_a_poison_record_and_delivers_the_rest(fake: FakeSender) -> None:
    h = handler("INSERT INTO a SELECT n FROM t", fake, ErrorPolicy("NOOP"))
    records = docs(5)
    records[2] = raw(2, b"{not json")
    handled = await h.deliver(records)
    assert handled.acked == [True] * 5 and handled.stop is None
    assert [json.loads(r.payload)["n"] for r in fake.requests] == [0, 1, 3, 4]
    assert h.stats.records_skipped == 1


async def test_noop_skips_a_refused_delivery_and_counts_it(fake: FakeSender) -> None:
    h = handler("INSERT INTO a SELECT n FROM t", fake, ErrorPolicy("NOOP"))
    fake.set_response("a", Code.SERVICE_UNAVAILABLE, when=lambda body: body == b'{"n":1}')
    handled = await h.deliver(docs(3))
    assert handled.acked == [True] * 3
    assert h.stats.statements[1].skipped == 1 and h.stats.statements[1].delivered == 2


async def test_dead_letter_keeps_key_value_headers_and_adds_the_error_context(fake: FakeSender) -> None:
    produced = Produced()
    dlq = DeadLetters("dlq", produced, context=True, connector="coap-sink")
    policy = ErrorPolicy("THROW", dead_letter_topic="dlq")
    h = handler("INSERT INTO a SELECT n FROM t", fake, policy, dlq)
    fake.set_response("a", Code.NOT_FOUND, when=lambda body: body == b'{"n":3}')
    records = docs(5)
    records[1] = raw(1, b"[1, 2")
    handled = await h.deliver(records)
    assert handled.acked == [True] * 5 and handled.stop is None
    assert [(topic, key, value) for topic, key, value, _ in produced.records] == [
        ("dlq", b"k1", b"[1, 2"),
        ("dlq", b"k3", b'{"n": 3}'),
    ]
    poison, refused = (headers for *_, headers in produced.records)
    assert poison["trace"] == b"abc"
    assert poison["__connect.errors.topic"] == b"t"
    assert poison["__connect.errors.partition"] == b"0"
    assert poison["__connect.errors.offset"] == b"1"
    assert poison["__connect.errors.stage"] == b"VALUE_CONVERTER"
    assert poison["__connect.errors.exception.class.name"] == b"streamapp.errors.DecodeError"
    assert b"invalid JSON" in poison["__connect.errors.exception.message"]
    assert refused["__streamapp.errors.coap.code"] == b"4.04"
    assert refused["__streamapp.errors.statement"] == b"1"
    assert refused["__streamapp.errors.resource"] == b"a"
    assert h.stats.records_dead_lettered == 1 and h.stats.statements[1].dead_lettered == 1


async def test_dead_letter_without_context_headers_keeps_only_the_originals(fake: FakeSender) -> None:
    produced = Produced()
    dlq = DeadLetters("dlq", produced, context=False, connector="coap-sink")
    h = handler("INSERT INTO a SELECT n FROM t", fake, ErrorPolicy("NOOP", dead_letter_topic="dlq"), dlq)
    records = [raw(0, b"nope")]
    await h.deliver(records)
    assert produced.records == [("dlq", b"k0", b"nope", {"trace": b"abc"})]


async def test_throw_stops_at_once(fake: FakeSender) -> None:
    h = handler("INSERT INTO a SELECT n FROM t", fake, ErrorPolicy("THROW"))
    fake.set_response("a", Code.SERVICE_UNAVAILABLE, when=lambda body: body == b'{"n":0}')
    handled = await h.deliver(docs(2))
    assert handled.acked == [False, False] and handled.stop is not None and h.sleeps.calls == []
