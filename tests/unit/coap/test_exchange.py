"""The exchange layer's rules without sockets (streamapp/coap/exchange.py): a fake clock and timer queue
drive one ClientEndpoint, a fake link records what it sends, and the "server" is the test, answering with
datagrams built by hand. The same rules against real servers: tests/integration/test_exchange_rules.py."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from aiocoap.numbers.constants import TransportTuning
from structlog.testing import capture_logs

from streamapp.coap import exchange, wire
from streamapp.coap.endpoints import MessageIdLedger
from streamapp.coap.exchange import (
    BlockwiseError,
    ClientEndpoint,
    Exchange,
    Reset,
    Response,
    ResponseTimeout,
    RetransmitsExceeded,
    UnmatchedLog,
)

PUT = 0x03
CHANGED, CREATED = 0x44, 0x41
PATH = wire.encode_options(None, ("r",), 50, ())


class Handle:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """``time`` and ``call_at``, driven by :meth:`advance`."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Handle]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Handle:
        handle = Handle(when, callback)
        heapq.heappush(self._queue, (when, next(self._order), handle))
        return handle

    def advance(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            when, _, handle = heapq.heappop(self._queue)
            if not handle.cancelled:
                self.now = max(self.now, when)
                handle.callback()
        self.now = until

    @property
    def pending(self) -> int:
        return sum(1 for _, _, h in self._queue if not h.cancelled)


class FakeLink:
    def __init__(self, loop: FakeLoop) -> None:
        self.loop = loop
        self.sent: list[tuple[float, bytes]] = []

    def send(self, data: bytes) -> None:
        self.sent.append((self.loop.now, data))

    def forget_address(self) -> None:
        pass

    def close(self) -> None:
        pass

    def last(self) -> wire.Incoming:
        message = wire.decode(self.sent[-1][1])
        assert message is not None
        return message


class Outcome:
    def __init__(self) -> None:
        self.calls: list[tuple[Response | None, BaseException | None]] = []

    def __call__(self, response: Response | None, error: BaseException | None) -> None:
        self.calls.append((response, error))

    @property
    def response(self) -> Response:
        ((response, error),) = self.calls
        assert error is None and response is not None
        return response

    @property
    def error(self) -> BaseException:
        ((response, error),) = self.calls
        assert response is None and error is not None
        return error


@pytest.fixture(autouse=True)
def fixed_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """The initial retransmission timeout's random draw is 0.5: ACK_TIMEOUT * 1.25."""
    monkeypatch.setattr(exchange._random, "random", lambda: 0.5)


@pytest.fixture(autouse=True)
def uncached_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``capture_logs`` sees the exchange layer's lines even when an earlier test configured structlog to
    cache each logger on first use (streamapp.logs does): a fresh, uncached logger for each test."""
    monkeypatch.setattr(exchange, "log", structlog.get_logger("streamapp.coap"))
    cached = structlog.get_config()["cache_logger_on_first_use"]
    structlog.configure(cache_logger_on_first_use=False)
    yield
    structlog.configure(cache_logger_on_first_use=cached)


@pytest.fixture(autouse=True)
def fresh_unmatched_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange, "UNMATCHED", UnmatchedLog())


def endpoint() -> tuple[ClientEndpoint, FakeLoop, FakeLink, MessageIdLedger]:
    loop = FakeLoop()
    ledger = MessageIdLedger(247.0, clock=lambda: 1000.0)
    ep = ClientEndpoint(ledger, "127.0.0.1:5683", 247.0, loop=loop)  # type: ignore[arg-type]
    link = FakeLink(loop)
    ep.link = link
    return ep, loop, link, ledger


def start(
    ep: ClientEndpoint,
    payload: bytes = b"{}",
    *,
    confirmable: bool = True,
    ack_timeout: float = 2.0,
    max_retransmit: int = 4,
    timeout_s: float = 95.0,
) -> Outcome:
    outcome = Outcome()
    ep.start(
        Exchange(
            PUT,
            confirmable,
            PATH,
            wire.CONTENT_FORMAT,
            payload,
            ack_timeout=ack_timeout,
            random_factor=1.5,
            max_retransmit=max_retransmit,
            timeout_s=timeout_s,
            on_done=outcome,
        )
    )
    return outcome


def answer(ep: ClientEndpoint, mtype: int, code: int, mid: int, token: bytes = b"", **options: Any) -> None:
    encoded = b""
    previous = 0
    for number, value in sorted(options.get("raw", {}).items()):
        encoded += wire.option(previous, number, wire.uint(value))
        previous = number
    ep.datagram_received(wire.encode(mtype, code, mid, token, encoded, options.get("payload", b"")))


# -- retransmission ------------------------------------------------------------------------------------------


def test_the_initial_timeout_is_within_ack_timeout_and_ack_timeout_times_the_random_factor() -> None:
    assert exchange.initial_timeout(2.0, 1.5, draw=0.0) == 2.0
    assert exchange.initial_timeout(2.0, 1.5, draw=0.999999) == pytest.approx(3.0)
    draws = [exchange.initial_timeout(0.5, 1.5) for _ in range(1000)]
    assert all(0.5 <= d <= 0.75 for d in draws)


@pytest.mark.parametrize(("ack_timeout", "max_retransmit"), [(2.0, 4), (0.1, 2), (1.0, 0), (0.5, 8)])
def test_the_schedule_doubles_and_gives_up_by_max_transmit_wait(
    ack_timeout: float, max_retransmit: int
) -> None:
    tuning = TransportTuning()
    tuning.ACK_TIMEOUT, tuning.MAX_RETRANSMIT = ack_timeout, max_retransmit
    for initial in (ack_timeout, ack_timeout * tuning.ACK_RANDOM_FACTOR):
        schedule = exchange.retransmission_schedule(initial, max_retransmit)
        assert [kind for _, kind in schedule] == ["retransmit"] * max_retransmit + ["give up"]
        waits = [b - a for a, b in itertools.pairwise([0.0] + [t for t, _ in schedule])]
        assert waits == pytest.approx([initial * 2**k for k in range(max_retransmit + 1)])
        assert schedule[-1][0] <= tuning.MAX_TRANSMIT_WAIT + 1e-9


def test_a_silent_server_gets_max_retransmit_plus_one_copies_on_the_schedule_then_the_exchange_fails() -> (
    None
):
    ep, loop, link, ledger = endpoint()
    outcome = start(ep)
    loop.advance(200.0)
    initial = 2.0 * 1.25
    expected = [0.0] + [t for t, kind in exchange.retransmission_schedule(initial, 4) if kind == "retransmit"]
    assert [t for t, _ in link.sent] == pytest.approx(expected)
    assert len({data for _, data in link.sent}) == 1, "the same message: same Message ID, same token"
    assert isinstance(outcome.error, RetransmitsExceeded)
    assert ledger.total == 1, "a retransmission takes no new Message ID"
    assert ep.current is None and loop.pending == 0


def test_the_response_timeout_cuts_retransmission_short() -> None:
    ep, loop, link, _ = endpoint()
    outcome = start(ep, timeout_s=4.0)
    loop.advance(10.0)
    assert [t for t, _ in link.sent] == pytest.approx([0.0, 2.5])
    assert isinstance(outcome.error, ResponseTimeout)


def test_a_piggybacked_response_ends_the_exchange() -> None:
    ep, loop, link, _ = endpoint()
    outcome = start(ep)
    request = link.last()
    assert request.mtype == wire.CON and request.code == PUT and len(request.token) == 4
    answer(ep, wire.ACK, CREATED, request.mid, request.token, payload=b"ok")
    assert outcome.response == Response(CREATED, b"ok")
    assert ep.current is None and loop.pending == 0
    loop.advance(100.0)
    assert len(link.sent) == 1


def test_an_empty_ack_stops_retransmission_and_the_separate_con_response_is_acked_once_delivered_once() -> (
    None
):
    ep, loop, link, _ = endpoint()
    outcome = start(ep)
    request = link.last()
    answer(ep, wire.ACK, wire.EMPTY, request.mid)
    loop.advance(60.0)
    assert len(link.sent) == 1, "acknowledged: never sent again"
    assert outcome.calls == []
    answer(ep, wire.CON, CHANGED, 0x7777, request.token)
    assert link.sent[-1][1] == wire.empty(wire.ACK, 0x7777)
    assert outcome.response.code == CHANGED
    with capture_logs() as logs:
        answer(ep, wire.CON, CHANGED, 0x7777, request.token)  # the server did not get our ACK
    assert link.sent[-1][1] == wire.empty(wire.ACK, 0x7777), "a duplicate is acknowledged again"
    assert len(outcome.calls) == 1 and logs == [], "and neither delivered again nor reported"


def test_a_separate_response_before_the_empty_ack_answers_the_request() -> None:
    ep, loop, link, _ = endpoint()
    outcome = start(ep)
    request = link.last()
    answer(ep, wire.NON, CHANGED, 0x0101, request.token)
    assert outcome.response.code == CHANGED
    assert len(link.sent) == 1, "a NON response is not acknowledged"
    answer(ep, wire.ACK, wire.EMPTY, request.mid)  # the late empty ACK matches nothing now: ignored
    loop.advance(100.0)
    assert len(link.sent) == 1


def test_the_deadline_holds_after_an_empty_ack() -> None:
    ep, loop, link, _ = endpoint()
    outcome = start(ep, timeout_s=30.0)
    answer(ep, wire.ACK, wire.EMPTY, link.last().mid)
    loop.advance(29.9)
    assert outcome.calls == []
    loop.advance(30.1)
    assert isinstance(outcome.error, ResponseTimeout)


def test_a_non_request_is_sent_once_and_matched_by_token() -> None:
    ep, _loop, link, _ = endpoint()
    outcome = start(ep, confirmable=False, timeout_s=5.0)
    request = link.last()
    assert request.mtype == wire.NON
    answer(ep, wire.NON, CHANGED, 0x4242, b"other")  # another token: not ours
    assert outcome.calls == []
    answer(ep, wire.NON, CHANGED, 0x4243, request.token)
    assert outcome.response.code == CHANGED
    assert len(link.sent) == 1


def test_a_non_request_without_answer_is_not_retransmitted_and_times_out() -> None:
    ep, loop, link, _ = endpoint()
    outcome = start(ep, confirmable=False, timeout_s=5.0)
    loop.advance(20.0)
    assert len(link.sent) == 1
    assert isinstance(outcome.error, ResponseTimeout)


@pytest.mark.parametrize("confirmable", [True, False])
def test_rst_to_the_request_fails_it_at_once(confirmable: bool) -> None:
    ep, loop, link, _ = endpoint()
    outcome = start(ep, confirmable=confirmable)
    answer(ep, wire.RST, wire.EMPTY, link.last().mid ^ 1)  # not our Message ID: ignored
    assert outcome.calls == []
    answer(ep, wire.RST, wire.EMPTY, link.last().mid)
    assert isinstance(outcome.error, Reset)
    assert loop.pending == 0


def test_an_ack_with_our_message_id_and_another_token_is_no_answer_and_is_reported() -> None:
    """What a server that took a reused Message ID for a repetition sends: its cached response."""
    ep, loop, link, _ = endpoint()
    outcome = start(ep, timeout_s=10.0)
    request = link.last()
    with capture_logs() as logs:
        answer(ep, wire.ACK, CHANGED, request.mid, b"old!")
    assert outcome.calls == []
    (line,) = logs
    assert (line["event"], line["mid"], line["token"], line["code"]) == (
        "coap.unmatched_response",
        request.mid,
        b"old!".hex(),
        "2.04 Changed",
    )
    loop.advance(100.0)
    assert len(link.sent) == 1, "it acknowledged the message: no retransmission"
    assert isinstance(outcome.error, ResponseTimeout)


def test_a_repeated_piggybacked_answer_of_a_retransmitted_request_is_dropped_silently() -> None:
    ep, loop, link, _ = endpoint()
    outcome = start(ep)
    loop.advance(2.6)  # one retransmission
    request = link.last()
    assert len(link.sent) == 2
    answer(ep, wire.ACK, CHANGED, request.mid, request.token)
    with capture_logs() as logs:
        answer(ep, wire.ACK, CHANGED, request.mid, request.token)  # the answer to the second copy
    assert len(outcome.calls) == 1 and logs == []


def test_an_unmatched_con_response_gets_rst_and_one_line_per_interval() -> None:
    ep, _loop, link, _ = endpoint()
    with capture_logs() as logs:
        for n in range(20):
            answer(ep, wire.CON, CHANGED, 100 + n, b"\x01\x02")
    assert [data for _, data in link.sent] == [wire.empty(wire.RST, 100 + n) for n in range(20)]
    (line,) = logs
    assert line["event"] == "coap.unmatched_response" and line["log_level"] == "warning"


def test_a_ping_and_a_request_to_the_sink_get_rst_and_junk_is_dropped() -> None:
    ep, _loop, link, _ = endpoint()
    answer(ep, wire.CON, wire.EMPTY, 9)
    answer(ep, wire.CON, 0x01, 10, b"t")  # a GET to the sink
    answer(ep, wire.NON, 0x01, 11, b"t")
    ep.datagram_received(b"\xff\x00")
    assert [data for _, data in link.sent] == [wire.empty(wire.RST, 9), wire.empty(wire.RST, 10)]


# -- Message IDs and NSTART ----------------------------------------------------------------------------------


def test_message_ids_follow_one_another_and_each_is_counted() -> None:
    ep, _loop, link, ledger = endpoint()
    mids = []
    for _ in range(5):
        start(ep)
        request = link.last()
        mids.append(request.mid)
        answer(ep, wire.ACK, CHANGED, request.mid, request.token)
    assert mids == [(mids[0] + n) & 0xFFFF for n in range(5)]
    assert ledger.total == 5


def test_one_exchange_per_endpoint() -> None:
    ep, _loop, _link, _ = endpoint()
    start(ep)
    with pytest.raises(RuntimeError, match="NSTART"):
        start(ep)


def test_an_abandoned_exchange_is_not_retransmitted_and_its_late_answer_is_unmatched() -> None:
    ep, loop, link, _ = endpoint()
    outcome = Outcome()
    request = Exchange(
        PUT, True, PATH, 12, b"{}", ack_timeout=2.0, random_factor=1.5, max_retransmit=4, timeout_s=95.0,
        on_done=outcome,
    )  # fmt: skip
    ep.start(request)
    ep.abort(request)
    loop.advance(100.0)
    assert len(link.sent) == 1 and outcome.calls == [] and ep.current is None
    with capture_logs() as logs:
        answer(ep, wire.ACK, CHANGED, request.mid, request.token)
    assert [line["event"] for line in logs] == ["coap.unmatched_response"]


def test_closing_the_endpoint_fails_the_exchange_in_flight() -> None:
    ep, loop, _link, _ = endpoint()
    outcome = start(ep)
    ep.close()
    assert isinstance(outcome.error, exchange.EndpointClosed)
    assert loop.pending == 0


# -- Block1 (RFC 7959) ---------------------------------------------------------------------------------------


def block_of(message: wire.Incoming) -> tuple[int, bool, int]:
    assert message.block1 is not None
    return message.block1 >> 4, bool(message.block1 & 8), message.block1 & 7


def sent_blocks(link: FakeLink) -> list[wire.Incoming]:
    return [m for m in (wire.decode(d) for _, d in link.sent) if m is not None and m.block1 is not None]


def continue_(ep: ClientEndpoint, link: FakeLink, szx: int | None = None, code: int = wire.CONTINUE) -> None:
    request = link.last()
    number, more, own = block_of(request)
    value = wire.block_value(number, more, own if szx is None else szx)
    answer(ep, wire.ACK, code, request.mid, request.token, raw={wire.BLOCK1: value})


def test_a_body_over_one_block_goes_in_1024_byte_blocks_each_its_own_message() -> None:
    ep, _loop, link, ledger = endpoint()
    body = bytes(range(256)) * 12  # 3072 bytes: 3 blocks
    outcome = start(ep, body)
    for _ in range(2):
        continue_(ep, link)
    request = link.last()
    answer(
        ep, wire.ACK, CHANGED, request.mid, request.token, raw={wire.BLOCK1: wire.block_value(2, False, 6)}
    )
    assert outcome.response.code == CHANGED
    blocks = sent_blocks(link)
    assert [block_of(b) for b in blocks] == [(0, True, 6), (1, True, 6), (2, False, 6)]
    assert b"".join(b.payload for b in blocks) == body
    assert len({b.mid for b in blocks}) == 3 and len({b.token for b in blocks}) == 3
    assert ledger.total == 3
    first = link.sent[0][1]
    assert first.find(wire.option(wire.BLOCK1, wire.SIZE1, wire.uint(len(body)))) > 0, "Size1 on the first"


def test_a_smaller_block_size_asked_for_is_taken_from_the_same_offset() -> None:
    """As Californium does: the 2.31 to the first 1024-byte block asks for 64-byte blocks."""
    ep, _loop, link, _ = endpoint()
    body = b"x" * 3000
    outcome = start(ep, body)
    continue_(ep, link, szx=2)
    while True:
        number, more, _szx = block_of(link.last())
        if not more:
            break
        continue_(ep, link)
    request = link.last()
    answer(
        ep,
        wire.ACK,
        CHANGED,
        request.mid,
        request.token,
        raw={wire.BLOCK1: wire.block_value(number, False, 2)},
    )
    assert outcome.response.code == CHANGED
    blocks = [block_of(b) for b in sent_blocks(link)]
    assert blocks[0] == (0, True, 6) and blocks[1] == (16, True, 2)
    assert len(blocks) == 32 and blocks[-1] == (46, False, 2)
    assert b"".join(b.payload for b in sent_blocks(link)) == body


def test_4_13_with_a_smaller_block_size_starts_the_body_again_at_that_size() -> None:
    ep, _loop, link, _ = endpoint()
    body = b"y" * 2000
    outcome = start(ep, body)
    continue_(ep, link, szx=4, code=wire.REQUEST_ENTITY_TOO_LARGE)
    assert block_of(link.last()) == (0, True, 4)
    while block_of(link.last())[1]:
        continue_(ep, link)
    continue_(ep, link, code=CHANGED)
    assert outcome.response.code == CHANGED
    restarted = [block_of(b) for b in sent_blocks(link)][1:]
    assert restarted[0] == (0, True, 4) and len(restarted) == 8
    assert b"".join(b.payload for b in sent_blocks(link)[1:]) == body


def test_4_13_to_a_one_message_body_with_a_block_size_sends_it_block_wise() -> None:
    ep, _loop, link, _ = endpoint()
    body = b"z" * 500
    outcome = start(ep, body)
    request = link.last()
    answer(
        ep, wire.ACK, wire.REQUEST_ENTITY_TOO_LARGE, request.mid, request.token,
        raw={wire.BLOCK1: wire.block_value(0, False, 3)},
    )  # fmt: skip
    assert block_of(link.last()) == (0, True, 3)
    while block_of(link.last())[1]:
        continue_(ep, link)
    continue_(ep, link, code=CHANGED)
    assert outcome.response.code == CHANGED
    assert b"".join(b.payload for b in sent_blocks(link)) == body


def test_4_13_without_a_smaller_block_size_is_the_answer() -> None:
    ep, _loop, link, _ = endpoint()
    outcome = start(ep, b"q" * 3000)
    continue_(ep, link, szx=6, code=wire.REQUEST_ENTITY_TOO_LARGE)
    assert outcome.response.code == wire.REQUEST_ENTITY_TOO_LARGE


def test_an_error_to_a_block_ends_the_request_with_it() -> None:
    ep, _loop, link, _ = endpoint()
    outcome = start(ep, b"q" * 3000)
    continue_(ep, link)
    request = link.last()
    answer(ep, wire.ACK, 0xA0, request.mid, request.token)  # 5.00
    assert outcome.response.code == 0xA0
    assert len(sent_blocks(link)) == 2


@pytest.mark.parametrize(
    ("case", "message"),
    [("continue at the end", "more data at the end"), ("another block", "answered block 5 to block 0")],
)
def test_block1_answers_that_do_not_fit_fail_the_request(case: str, message: str) -> None:
    ep, _loop, link, _ = endpoint()
    outcome = start(ep, b"q" * 1500)
    if case == "another block":
        request = link.last()
        answer(
            ep,
            wire.ACK,
            wire.CONTINUE,
            request.mid,
            request.token,
            raw={wire.BLOCK1: wire.block_value(5, True, 6)},
        )
    else:
        continue_(ep, link)
        continue_(ep, link)  # 2.31 to the last block
    assert isinstance(outcome.error, BlockwiseError) and message in str(outcome.error)


def test_an_answer_without_block1_to_a_block_is_the_final_answer() -> None:
    ep, _loop, link, _ = endpoint()
    outcome = start(ep, b"q" * 3000)
    request = link.last()
    with capture_logs() as logs:
        answer(ep, wire.ACK, CHANGED, request.mid, request.token)
    assert outcome.response.code == CHANGED
    assert [line["event"] for line in logs] == ["coap.block1_ignored"]


def test_every_block_is_retransmitted_on_its_own_and_the_deadline_covers_them_all() -> None:
    ep, loop, link, _ = endpoint()
    outcome = start(ep, b"q" * 3000, timeout_s=20.0)
    continue_(ep, link)
    loop.advance(loop.now + 2.6)  # the second block once more
    second = [m for m in sent_blocks(link) if block_of(m)[0] == 1]
    assert len(second) == 2 and second[0].mid == second[1].mid
    continue_(ep, link)
    loop.advance(25.0)
    assert isinstance(outcome.error, ResponseTimeout)
