"""The RFC 7252 / 7959 rules of the exchange layer (streamapp/coap/exchange.py), proven on the wire through
CoapSender: against a scripted raw-UDP peer where a rule needs exact control (separate and duplicate
responses, RST, a ping, an answer to a reused Message ID, the retransmission times), and against aiocoap's
server (tests/recording_server.py), libcoap (20 % loss, its -v 7 log) and Eclipse Californium.

Without sockets, with a fake clock: tests/unit/coap/test_exchange.py."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiocoap.numbers.codes import Code
from structlog.testing import capture_logs

from streamapp.coap import endpoints, exchange, wire
from streamapp.coap.endpoints import MessageIdLedger
from streamapp.coap.exchange import ClientEndpoint, Exchange, Response, UnmatchedLog
from streamapp.coap.request_options import RequestOptions
from streamapp.coap.sender import CoapSender
from streamapp.errors import DeliveryError
from streamapp.records import Answer, RecordCoordinates
from streamapp_harness.californium import CaliforniumServer
from streamapp_harness.libcoap import LibcoapServer
from streamapp_harness.process import async_wait_until, free_port
from tests.recording_server import RecordingCoapServer

WHERE = RecordCoordinates("rules", 1, 5)
CHANGED = int(Code.CHANGED)


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
    """Every test starts with the rate limit of ``coap.unmatched_response`` unspent."""
    monkeypatch.setattr(exchange, "UNMATCHED", UnmatchedLog())


# -- a scripted peer -----------------------------------------------------------------------------------------


@dataclass
class Datagram:
    at: float
    source: tuple[str, int]
    data: bytes
    message: wire.Incoming | None


@dataclass
class ScriptedPeer(asyncio.DatagramProtocol):
    """A raw UDP socket on 127.0.0.1 that records every datagram and lets the test answer each request."""

    answer: Callable[[ScriptedPeer, Datagram], None]
    received: list[Datagram] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None
    next_mid: Iterator[int] = field(default_factory=lambda: itertools.count(0x5000))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        datagram = Datagram(time.monotonic(), addr, data, wire.decode(data))
        self.received.append(datagram)
        message = datagram.message
        if message is not None and message.mtype in (wire.CON, wire.NON) and message.code != wire.EMPTY:
            self.answer(self, datagram)

    def send(
        self, to: Datagram, mtype: int, code: int, mid: int, token: bytes = b"", payload: bytes = b""
    ) -> None:
        assert self.transport is not None
        self.transport.sendto(wire.encode(mtype, code, mid, token, b"", payload), to.source)

    @property
    def uri(self) -> str:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return f"coap://{host}:{port}"

    def requests(self) -> list[Datagram]:
        return [d for d in self.received if d.message is not None and 0 < d.message.code < 32]

    def sent_by_client(self, mtype: int) -> list[wire.Incoming]:
        return [d.message for d in self.received if d.message is not None and d.message.mtype == mtype]


@pytest.fixture
async def peer() -> AsyncIterator[Callable[[Callable[[ScriptedPeer, Datagram], None]], Any]]:
    transports: list[asyncio.DatagramTransport] = []

    async def start(answer: Callable[[ScriptedPeer, Datagram], None]) -> ScriptedPeer:
        transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: ScriptedPeer(answer), local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        return protocol

    yield start
    for transport in transports:
        transport.close()


async def sending(uri: str, window: int = 1, **options: object) -> CoapSender:
    sender = CoapSender(uri, RequestOptions(**options), window=window)  # type: ignore[arg-type]
    await sender.start()
    return sender


def piggybacked(peer: ScriptedPeer, request: Datagram) -> None:
    message = request.message
    assert message is not None
    peer.send(
        request, wire.ACK if message.mtype == wire.CON else wire.NON, CHANGED, message.mid, message.token
    )


def ignore(peer: ScriptedPeer, request: Datagram) -> None:
    pass


# -- retransmission ------------------------------------------------------------------------------------------


async def test_a_con_request_is_retransmitted_on_the_doubling_schedule_then_given_up(peer) -> None:
    silent = await peer(ignore)
    sender = await sending(silent.uri, ack_timeout_s=0.2, max_retransmit=3)
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match="to 4 transmissions of a confirmable request") as info:
            await sender.send(("quiet",), b"{}", WHERE)
    finally:
        await sender.stop()
    gave_up = time.monotonic() - started
    copies = silent.received
    assert len(copies) == 4 and len({c.data for c in copies}) == 1, "the same message: one ID, one token"
    gaps = [b.at - a.at for a, b in itertools.pairwise(copies)]
    # The first wait is random in [ACK_TIMEOUT, ACK_TIMEOUT * 1.5] = [0.2, 0.3] s, and each next one twice
    # the last; a timer is never early, and may be a little late on a busy machine (the slack).
    slack = 0.1
    first = gaps[0]
    assert 0.2 <= first <= 0.3 + slack, gaps
    assert gaps[1] == pytest.approx(2 * first, abs=slack) and gaps[2] == pytest.approx(4 * first, abs=slack)
    assert 15 * 0.2 <= gave_up <= 15 * 0.3 + 2 * slack, gave_up  # the last wait (8x) passed unanswered
    assert info.value.retriable


async def test_nobody_listening_fails_at_once_with_the_icmp_error() -> None:
    sender = await sending(f"coap://127.0.0.1:{free_port('udp')}", timeout_s=10.0)
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match="failed: ConnectionRefusedError") as info:
            await sender.send(("x",), b"{}", WHERE)
    finally:
        await sender.stop()
    assert time.monotonic() - started < 1.0 and info.value.retriable


# -- matching: piggybacked, separate, NON ------------------------------------------------------------------


async def test_an_empty_ack_then_a_separate_con_response_which_is_acked_each_time_and_delivered_once(
    peer,
) -> None:
    async def later(peer: ScriptedPeer, request: Datagram) -> None:
        message = request.message
        assert message is not None
        if len(peer.requests()) > 1:
            piggybacked(peer, request)
            return
        peer.send(request, wire.ACK, wire.EMPTY, message.mid)
        await asyncio.sleep(0.5)  # longer than ACK_TIMEOUT: an unacknowledged request would be sent again
        peer.send(request, wire.CON, CHANGED, 0x7001, message.token)
        await async_wait_until(lambda: len(peer.sent_by_client(wire.ACK)) == 1, timeout=5)
        peer.send(request, wire.CON, CHANGED, 0x7001, message.token)  # as if our ACK was lost

    tasks: set[asyncio.Task[None]] = set()
    scripted = await peer(lambda p, d: tasks.add(asyncio.ensure_future(later(p, d))))
    sender = await sending(scripted.uri, ack_timeout_s=0.2, timeout_s=10.0)
    try:
        with capture_logs() as logs:
            assert await sender.send(("separate",), b"{}", WHERE) == Code.CHANGED
            await async_wait_until(lambda: len(scripted.sent_by_client(wire.ACK)) == 2, timeout=5)
            assert await sender.send(("next",), b"{}", WHERE) is not None  # the endpoint is free again
    finally:
        await sender.stop()
        for task in tasks:
            task.cancel()
    assert (
        len([r for r in scripted.requests() if r.message.token == scripted.requests()[0].message.token]) == 1
    )
    assert [m.mid for m in scripted.sent_by_client(wire.ACK)] == [0x7001, 0x7001]
    assert [line for line in logs if line["event"] == "coap.unmatched_response"] == []


async def test_a_separate_non_response_to_a_con_request(peer) -> None:
    def non_later(peer: ScriptedPeer, request: Datagram) -> None:
        message = request.message
        assert message is not None
        peer.send(request, wire.ACK, wire.EMPTY, message.mid)
        peer.send(request, wire.NON, int(Code.CREATED), 0x7100, message.token)

    scripted = await peer(non_later)
    sender = await sending(scripted.uri, timeout_s=5.0)
    try:
        assert await sender.send(("a",), b"{}", WHERE) == Code.CREATED
    finally:
        await sender.stop()
    assert scripted.sent_by_client(wire.ACK) == [], "a NON is not acknowledged"


async def test_a_non_request_is_sent_once_and_its_non_response_matched_by_token(peer) -> None:
    def wrong_then_right(peer: ScriptedPeer, request: Datagram) -> None:
        message = request.message
        assert message is not None and message.mtype == wire.NON
        peer.send(request, wire.NON, CHANGED, next(peer.next_mid), b"nope")
        peer.send(request, wire.NON, int(Code.CREATED), next(peer.next_mid), message.token)

    scripted = await peer(wrong_then_right)
    sender = await sending(scripted.uri, confirmable=False, timeout_s=5.0)
    try:
        with capture_logs() as logs:
            assert await sender.send(("non",), b"{}", WHERE) == Code.CREATED
    finally:
        await sender.stop()
    assert [line["token"] for line in logs if line["event"] == "coap.unmatched_response"] == [b"nope".hex()]


async def test_an_unanswered_non_request_is_never_sent_again(peer) -> None:
    silent = await peer(ignore)
    sender = await sending(silent.uri, confirmable=False, ack_timeout_s=0.1, timeout_s=1.0)
    try:
        with pytest.raises(DeliveryError, match=r"no response from .* within 1 s"):
            await sender.send(("non",), b"{}", WHERE)
    finally:
        await sender.stop()
    assert len(silent.received) == 1


# -- RST, pings, unmatched responses -------------------------------------------------------------------------


@pytest.mark.parametrize("confirmable", [True, False])
async def test_rst_to_the_request_fails_it_at_once(peer, confirmable: bool) -> None:
    def reset(peer: ScriptedPeer, request: Datagram) -> None:
        assert request.message is not None
        peer.send(request, wire.RST, wire.EMPTY, request.message.mid)

    scripted = await peer(reset)
    sender = await sending(scripted.uri, confirmable=confirmable, timeout_s=10.0)
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match=r"request to coap://.*/r failed: Reset: ") as info:
            await sender.send(("r",), b"{}", WHERE)
    finally:
        await sender.stop()
    assert time.monotonic() - started < 1.0
    assert info.value.retriable and info.value.code is None and len(scripted.requests()) == 1


async def test_an_answer_to_a_reused_message_id_is_no_delivery_and_is_reported(peer) -> None:
    """A server that takes our Message ID for a repetition answers with the response it cached for the
    earlier message: our ID, the earlier token. That acknowledges the message, answers nothing."""

    def cached_answer(peer: ScriptedPeer, request: Datagram) -> None:
        assert request.message is not None
        peer.send(request, wire.ACK, CHANGED, request.message.mid, b"\xde\xad")

    scripted = await peer(cached_answer)
    sender = await sending(scripted.uri, ack_timeout_s=0.1, timeout_s=1.0)
    try:
        with capture_logs() as logs, pytest.raises(DeliveryError, match="within 1 s"):
            await sender.send(("r",), b"{}", WHERE)
    finally:
        await sender.stop()
    assert len(scripted.requests()) == 1, "acknowledged: not sent again"
    (line,) = [line for line in logs if line["event"] == "coap.unmatched_response"]
    assert (line["mid"], line["token"], line["code"], line["log_level"]) == (
        scripted.requests()[0].message.mid,
        "dead",
        "2.04 Changed",
        "warning",
    )


async def test_unsolicited_responses_get_rst_one_warning_per_interval_and_a_ping_gets_rst(peer) -> None:
    def noisy(peer: ScriptedPeer, request: Datagram) -> None:
        for n in range(10):
            peer.send(request, wire.CON, CHANGED, 0x6000 + n, b"\x99")  # nobody asked for these
        peer.send(request, wire.CON, wire.EMPTY, 0x6100)  # a ping
        piggybacked(peer, request)

    scripted = await peer(noisy)
    sender = await sending(scripted.uri, timeout_s=5.0)
    try:
        with capture_logs() as logs:
            assert await sender.send(("r",), b"{}", WHERE) == Code.CHANGED
            await async_wait_until(lambda: len(scripted.sent_by_client(wire.RST)) == 11, timeout=5)
    finally:
        await sender.stop()
    assert sorted(m.mid for m in scripted.sent_by_client(wire.RST)) == [0x6000 + n for n in range(10)] + [
        0x6100
    ]
    assert len([line for line in logs if line["event"] == "coap.unmatched_response"]) == 1


# -- submit() and cancellation -------------------------------------------------------------------------------


async def test_submit_returns_a_future_to_attach_done_callbacks_to(peer) -> None:
    scripted = await peer(piggybacked)
    sender = await sending(scripted.uri, window=4, timeout_s=5.0)
    try:
        done: list[Answer] = []
        futures = [sender.submit(("r", str(n)), b"{}", WHERE) for n in range(8)]
        for future in futures:
            future.add_done_callback(lambda f: done.append(f.result()))
        await asyncio.wait_for(asyncio.gather(*futures), 5)
        await async_wait_until(lambda: len(done) == 8, timeout=5)
        assert [answer.dotted for answer in done] == ["2.04"] * 8
        refused = sender.submit(("r",), b"{}", WHERE, server="coaps://127.0.0.1:5684")
        assert refused.done() and isinstance(refused.exception(), DeliveryError)
        assert "no DTLS credentials" in str(refused.exception())
    finally:
        await sender.stop()


async def test_a_cancelled_request_is_never_sent_again_and_its_endpoint_serves_the_next(peer) -> None:
    answered_late: list[Datagram] = []

    def first_silent(peer: ScriptedPeer, request: Datagram) -> None:
        if len(peer.requests()) == 1:
            answered_late.append(request)  # answered after the cancellation, below
        else:
            piggybacked(peer, request)

    scripted = await peer(first_silent)
    sender = await sending(scripted.uri, ack_timeout_s=0.1, max_retransmit=4, timeout_s=10.0)
    try:
        pending = asyncio.ensure_future(sender.send(("abandoned",), b"{}", WHERE))
        await async_wait_until(lambda: len(scripted.requests()) == 1, timeout=5)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert await sender.send(("next",), b"{}", WHERE) == Code.CHANGED
        assert sender.endpoints == 1, "the endpoint was not retired"
        await asyncio.sleep(0.8)  # four retransmissions of the abandoned request would have come by now
        with capture_logs() as logs:
            (late,) = answered_late
            piggybacked(scripted, late)
            await async_wait_until(
                lambda: any(line["event"] == "coap.unmatched_response" for line in logs), timeout=5
            )
    finally:
        await sender.stop()
    assert [r.message.payload for r in scripted.requests()] == [b"{}", b"{}"]
    assert len([d for d in scripted.requests() if d.message.token == late.message.token]) == 1


# -- NSTART and Message IDs ----------------------------------------------------------------------------------


async def test_one_exchange_per_endpoint_and_no_more_endpoints_than_the_window(peer) -> None:
    outstanding: dict[tuple[str, int], int] = defaultdict(int)
    most: dict[tuple[str, int], int] = defaultdict(int)

    async def slowly(peer: ScriptedPeer, request: Datagram) -> None:
        outstanding[request.source] += 1
        most[request.source] = max(most[request.source], outstanding[request.source])
        await asyncio.sleep(0.05)
        outstanding[request.source] -= 1
        piggybacked(peer, request)

    tasks: set[asyncio.Task[None]] = set()
    scripted = await peer(lambda p, d: tasks.add(asyncio.ensure_future(slowly(p, d))))
    sender = await sending(scripted.uri, window=3, timeout_s=10.0)
    try:
        codes = await asyncio.gather(*(sender.send(("r", str(n)), b"{}", WHERE) for n in range(15)))
    finally:
        await sender.stop()
    assert codes == [Code.CHANGED] * 15
    assert len(most) == 3 and set(most.values()) == {1}, most


async def test_message_ids_follow_one_another_per_endpoint_and_a_spent_endpoint_rests(
    peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 5 Message IDs per lifetime (instead of 65 536), the sixth request goes from a second endpoint,
    and with no third allowed the eleventh waits: it is not sent with an ID still live."""
    monkeypatch.setattr(endpoints, "MESSAGE_IDS", 5)
    scripted = await peer(piggybacked)
    sender = CoapSender(scripted.uri, RequestOptions(timeout_s=5.0), window=1, max_endpoints=2)
    await sender.start()
    try:
        for n in range(10):
            await sender.send(("r", str(n)), b"{}", WHERE)
        waiting = asyncio.ensure_future(sender.send(("r", "10"), b"{}", WHERE))
        await asyncio.sleep(0.3)
        assert not waiting.done() and len(scripted.requests()) == 10
        waiting.cancel()
        assert sender.message_ids == 10
    finally:
        await sender.stop()
    by_port: dict[tuple[str, int], list[int]] = defaultdict(list)
    for request in scripted.requests():
        by_port[request.source].append(request.message.mid)
    assert len(by_port) == 2
    for mids in by_port.values():
        assert mids == [(mids[0] + n) & 0xFFFF for n in range(5)]


# -- aiocoap's server ----------------------------------------------------------------------------------------


async def test_aiocoap_server_separate_response_is_acked(recorder: RecordingCoapServer) -> None:
    """aiocoap's server sends an empty ACK when the answer takes longer than its EMPTY_ACK_DELAY, then the
    answer as a CON of its own: acknowledged, so the server stops retransmitting it."""
    recorder.set_delay(0.6)
    sender = await sending(recorder.uri, timeout_s=10.0)
    try:
        assert await sender.send(("slow",), b'{"a":1}', WHERE) == Code.CHANGED
    finally:
        await sender.stop()
    context = recorder._context
    assert context is not None
    manager = context.request_interfaces[0].token_interface
    await async_wait_until(
        lambda: not manager._active_exchanges, timeout=5, what="the server's CON acknowledged"
    )
    assert recorder.count == 1, "the request was acknowledged at once: never sent again"


async def test_aiocoap_server_sees_every_request_of_one_endpoint(recorder: RecordingCoapServer) -> None:
    """aiocoap's server de-duplicates by (endpoint, Message ID): 500 requests from one endpoint arriving as
    500 distinct requests means no ID was reused."""
    sender = await sending(recorder.uri, timeout_s=10.0)
    try:
        for n in range(500):
            await sender.send(("m",), b"%d" % n, WHERE)
        assert sender.endpoints == 1 and sender.message_ids == 500
    finally:
        await sender.stop()
    assert [r.payload for r in recorder.requests] == [b"%d" % n for n in range(500)]


# -- libcoap -------------------------------------------------------------------------------------------------


@pytest.fixture
def lossy_libcoap(tmp_path: Path) -> Iterator[LibcoapServer]:
    with LibcoapServer(loss="20%", log_path=tmp_path / "coap-server.log", log_requests=True) as server:
        yield server


async def test_libcoap_with_20_percent_loss_gets_every_request_each_with_one_message_id(
    lossy_libcoap: LibcoapServer,
) -> None:
    """libcoap drops a fifth of its answers (-l 20%): the requests whose answer was lost are sent again with
    their Message ID, libcoap answers the repeats from its cache, and each one is delivered."""
    sender = await sending(lossy_libcoap.uri, ack_timeout_s=0.2, max_retransmit=8, timeout_s=60.0)
    try:
        for n in range(40):
            await sender.send(("lossy", str(n)), b'{"n":%d}' % n, WHERE)
    finally:
        await sender.stop()
    received = [r for r in lossy_libcoap.received() if r.path.startswith("lossy/")]
    mids_of: dict[bytes, set[int]] = defaultdict(set)
    for request in received:
        mids_of[request.payload].add(request.message_id)
    assert sorted(mids_of) == sorted(b'{"n":%d}' % n for n in range(40))
    assert all(len(mids) == 1 for mids in mids_of.values()), "a retransmission keeps its Message ID"
    first = [next(iter(mids_of[b'{"n":%d}' % n])) for n in range(40)]
    assert first == [(first[0] + n) & 0xFFFF for n in range(40)]
    assert len(received) > 40, "some answers were lost and their requests sent again"


async def test_libcoap_separate_response_is_acked(tmp_path: Path) -> None:
    """libcoap's /async answers a GET after the delay its query names, separately: an empty ACK at once,
    then a CON that the exchange layer acknowledges (libcoap logs removing it from its retransmit queue)."""
    log_path = tmp_path / "coap-server.log"
    with LibcoapServer(log_path=log_path, log_requests=True) as server:
        endpoint = ClientEndpoint(MessageIdLedger(247.0), "libcoap", 247.0)
        await exchange.connect_udp(endpoint, "127.0.0.1", server.port)
        done: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def settle(response: Response | None, error: BaseException | None) -> None:
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(response)  # type: ignore[arg-type]

        request = Exchange(
            int(Code.GET),
            True,
            wire.encode_options(None, ("async",), None, ("1",)),
            wire.URI_QUERY,
            b"",
            ack_timeout=0.3,
            random_factor=1.5,
            max_retransmit=4,
            timeout_s=10.0,
            on_done=settle,
        )
        endpoint.start(request)
        try:
            response = await asyncio.wait_for(done, 10)
        finally:
            endpoint.close()
        assert response == Response(int(Code.CONTENT), b"done")
        await async_wait_until(
            lambda: "removed" in log_path.read_text(errors="replace"),
            timeout=5,
            what="libcoap's CON acknowledged",
        )
        log = log_path.read_text(errors="replace")
    assert "t:ACK c:0.00" in log, "the empty ACK"
    assert log.count("t:CON c:2.05") == 1, "acknowledged: libcoap did not send its response again"
    assert log.count("Uri-Path:async") == 1, "the empty ACK stopped our retransmissions: one GET"


async def test_libcoap_non_requests(tmp_path: Path) -> None:
    with LibcoapServer(log_path=tmp_path / "non.log", log_requests=True) as server:
        sender = await sending(server.uri, confirmable=False, timeout_s=5.0)
        try:
            for n in range(3):
                assert (await sender.send(("non",), b"%d" % n, WHERE)).is_successful()
        finally:
            await sender.stop()
        received = [(r.type, r.payload) for r in server.received() if r.path == "non"]
        assert received == [("NON", b"%d" % n) for n in range(3)]


# -- Californium ---------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_californium_sees_consecutive_message_ids_and_every_request(tmp_path: Path) -> None:
    with CaliforniumServer(workdir=tmp_path / "californium") as californium:
        before = len(californium.received("message"))
        sender = await sending(californium.uri, timeout_s=10.0)
        try:
            for n in range(30):
                assert await sender.send(("test",), b'{"n":%d}' % n, WHERE) == Code.CHANGED
        finally:
            await sender.stop()
        messages = [m for m in californium.received("message")[before:] if m.path == "/test"]
        assert [m.payload for m in messages] == [b'{"n":%d}' % n for n in range(30)]
        mids = [m.mid for m in messages]
        assert mids == [(mids[0] + n) & 0xFFFF for n in range(30)]
