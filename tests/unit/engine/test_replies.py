"""Reply records (``streamapp/engine/replies.py``, dispatch's ``_reply``), on a fake sender and a fake
producer: what each reply holds, which responses reply (``reply.on``), batches, and a reply that cannot be
produced going to the error policy before anything is acked."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from aiocoap.numbers.codes import Code

from streamapp.coap.request_options import RequestOptions
from streamapp.engine.policy import ErrorPolicy
from streamapp.engine.replies import Replies, reply_headers
from streamapp.records import Answer, RawRecord
from tests.engine import engine
from tests.fakes import FAKE_URI, FakeSender

HEADERS = (("correlation-id", b"c-17"), ("tenant", b"acme"))


@dataclass
class Producer:
    """Keeps what was produced; fails the next ``fail`` calls."""

    records: list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]] = field(default_factory=list)
    fail: int = 0

    async def __call__(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the broker is gone")
        self.records.append((topic, key, value, dict(headers)))


def raw(offset: int, n: int, partition: int = 0) -> RawRecord:
    return RawRecord("cmd", partition, offset, b"dev-%d" % n, json.dumps({"n": n}).encode(), HEADERS, None)


def defaults(fake: FakeSender, **reply: str) -> RequestOptions:
    return RequestOptions(
        timeout_s=5.0,
        max_inflight=fake.window,
        reply_topic=reply.get("topic"),
        reply_on=reply.get("on", "all"),
    )


async def test_a_reply_carries_the_answer_the_source_headers_and_coordinates() -> None:
    fake, produced = FakeSender(), Producer()
    fake.set_response("dev/1", Code.CONTENT, payload=b'{"ok":true}', content_format=50)
    e = engine(
        "INSERT INTO dev/{n} SELECT n FROM cmd",
        fake,
        defaults=defaults(fake, topic="answers"),
        replies=Replies(produced),
    )
    result = await e.deliver([raw(4, 1), raw(5, 2)])
    assert result.acked == [True, True]
    first, second = produced.records
    topic, key, value, headers = first
    assert (topic, key, value) == ("answers", b"dev-1", b'{"ok":true}')
    assert headers == {
        "correlation-id": b"c-17",
        "tenant": b"acme",
        "coap.code": b"2.05",
        "coap.uri": f"{FAKE_URI}/dev/1".encode(),
        "coap.content.format": b"50",
        "source.topic": b"cmd",
        "source.partition": b"0",
        "source.offset": b"4",
        "kcql.statement": b"1",
    }
    assert second[1:3] == (b"dev-2", None), "an empty response payload replies with a null value"
    assert "coap.content.format" not in second[3] and second[3]["coap.code"] == b"2.04"
    assert e.stats.statements[1].replies == 2


async def test_a_statement_property_overrides_the_worker_reply_topic_and_reply_on() -> None:
    fake, produced = FakeSender(), Producer()
    fake.set_response("b", Code.NOT_FOUND, payload=b"no such device")
    e = engine(
        "INSERT INTO a SELECT n FROM cmd; "
        "INSERT INTO b SELECT n FROM cmd PROPERTIES(reply.topic='b-answers', reply.on=failure)",
        fake,
        ErrorPolicy("NOOP"),
        defaults=defaults(fake, topic="answers", on="success"),
        replies=Replies(produced),
    )
    result = await e.deliver([raw(0, 0)])
    assert result.acked == [True], "NOOP lets the refused record go once its reply is produced"
    assert sorted((t, v, h["coap.code"]) for t, _, v, h in produced.records) == [
        ("answers", None, b"2.04"),
        ("b-answers", b"no such device", b"4.04"),
    ]


@pytest.mark.parametrize(
    ("reply_on", "codes"), [("all", [b"2.04", b"5.03"]), ("success", [b"2.04"]), ("failure", [b"5.03"])]
)
async def test_reply_on_chooses_the_responses(reply_on: str, codes: list[bytes]) -> None:
    fake, produced = FakeSender(), Producer()
    fake.set_response("a", Code.SERVICE_UNAVAILABLE, when=lambda body: json.loads(body)["n"] == 1)
    e = engine(
        "INSERT INTO a SELECT n FROM cmd",
        fake,
        ErrorPolicy("NOOP"),
        defaults=defaults(fake, topic="answers", on=reply_on),
        replies=Replies(produced),
    )
    await e.deliver([raw(0, 0), raw(1, 1)])
    assert [h["coap.code"] for *_, h in produced.records] == codes


async def test_no_answer_no_reply_and_no_topic_no_reply() -> None:
    fake, produced = FakeSender(), Producer()
    e = engine("INSERT INTO a SELECT n FROM cmd", fake, replies=Replies(produced))
    result = await e.deliver([raw(0, 0)])
    assert result.acked == [True] and produced.records == [] and e.stats.statements[1].replies == 0


async def test_a_batch_replies_once_with_its_first_and_last_record() -> None:
    fake, produced = FakeSender(), Producer()
    e = engine(
        "INSERT INTO a SELECT n FROM cmd BATCH = 3",
        fake,
        defaults=defaults(fake, topic="answers"),
        replies=Replies(produced),
    )
    result = await e.deliver([raw(10 + i, i) for i in range(3)])
    assert result.acked == [True] * 3
    [(_, key, _, headers)] = produced.records
    assert key == b"dev-0"
    assert (headers["source.offset"], headers["source.offset.last"]) == (b"10", b"12")


async def test_a_reply_that_cannot_be_produced_is_a_failure_and_nothing_is_acked() -> None:
    fake, produced = FakeSender(), Producer(fail=1)
    e = engine(
        "INSERT INTO a SELECT n FROM cmd",
        fake,
        defaults=defaults(fake, topic="answers"),
        replies=Replies(produced),
    )
    result = await e.deliver([raw(7, 0), raw(8, 1)])
    assert result.acked == [False, False]
    assert result.stop is not None
    text = str(result.stop)
    assert "cmd/0@7" in text and "'answers'" in text and "the broker is gone" in text
    assert e.stats.statements[1].last_error_code == "2.04"


async def test_under_retry_a_lost_reply_sends_the_request_again_and_replies_then() -> None:
    fake, produced = FakeSender(), Producer(fail=1)
    e = engine(
        "INSERT INTO a SELECT n FROM cmd",
        fake,
        ErrorPolicy("RETRY", max_retries=3),
        defaults=defaults(fake, topic="answers"),
        replies=Replies(produced),
    )
    result = await e.deliver([raw(0, 0)])
    assert result.acked == [True]
    assert len(fake.requests_for("a")) == 2 and len(produced.records) == 1


def test_reply_headers_keep_the_source_headers_first_in_order() -> None:
    records = [raw(1, 1)]
    headers = reply_headers(records, Answer(0x45, b"x", 0), "coap://h/a", 2)
    assert headers[:2] == list(HEADERS)
    assert dict(headers)["coap.content.format"] == b"0", "Content-Format 0 (text/plain) is kept"
    assert dict(headers)["kcql.statement"] == b"2"
