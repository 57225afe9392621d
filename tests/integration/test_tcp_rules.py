"""The RFC 8323 rules of ``coap+tcp://`` (streamapp/coap/tcp.py), proven on the wire through CoapSender
against a scripted TCP peer that the test controls message by message: the CSM first and the peer's awaited,
one connection and the window on it, matching by token, Block1 under a small Max-Message-Size, Ping/Pong both
ways, Release, Abort, a dropped connection, a peer that is not there yet, cancellation.

Against real servers (aiocoap, libcoap, TLS): tests/integration/test_tcp_peers.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest
import structlog
from structlog.testing import capture_logs

from streamapp.coap import exchange, tcp, tcp_wire, wire
from streamapp.coap.exchange import UnmatchedLog
from streamapp.coap.request_options import RequestOptions
from streamapp.coap.sender import CoapSender
from streamapp.errors import DeliveryError
from streamapp.records import Answer, RecordCoordinates
from streamapp_harness.process import async_wait_until, free_port

WHERE = RecordCoordinates("tcp", 0, 1)
CHANGED = 0x44
CONTINUE = 0x5F


@pytest.fixture(autouse=True)
def uncached_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``capture_logs`` sees tcp.py's lines even when structlog caches loggers (streamapp.logs does)."""
    monkeypatch.setattr(tcp, "log", structlog.get_logger("streamapp.coap"))
    cached = structlog.get_config()["cache_logger_on_first_use"]
    structlog.configure(cache_logger_on_first_use=False)
    yield
    structlog.configure(cache_logger_on_first_use=cached)


@pytest.fixture(autouse=True)
def fresh_unmatched_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange, "UNMATCHED", UnmatchedLog())
    monkeypatch.setattr(tcp, "UNMATCHED", exchange.UNMATCHED)


# -- a scripted peer -----------------------------------------------------------------------------------------


@dataclass
class PeerConnection:
    """One connection the peer accepted: every message received (in order, with arrival time) and a writer."""

    number: int
    writer: asyncio.StreamWriter
    received: list[tuple[float, tcp_wire.Message, int]] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def answer(self, request: tcp_wire.Message, code: int = CHANGED, payload: bytes = b"") -> None:
        self.send(tcp_wire.encode(code, request.token, b"", payload))

    @property
    def requests(self) -> list[tcp_wire.Message]:
        return [m for _, m, _ in self.received if 1 <= m.code < 32]

    def messages(self, code: int) -> list[tcp_wire.Message]:
        return [m for _, m, _ in self.received if m.code == code]


Handler = Callable[["ScriptedTcpPeer", PeerConnection, tcp_wire.Message], None]


def answer_everything(peer: ScriptedTcpPeer, connection: PeerConnection, message: tcp_wire.Message) -> None:
    """A plain server: 2.04 to each request (echoing its payload), Pong to each Ping."""
    if 1 <= message.code < 32:
        connection.answer(message, payload=message.payload)
    elif message.code == tcp_wire.PING:
        connection.send(tcp_wire.pong(message.token))


@dataclass
class ScriptedTcpPeer:
    """A TCP listener on 127.0.0.1 that sends ``csm`` on each connection (None: the test sends it) and hands
    every message it reads to ``handler``."""

    handler: Handler = answer_everything
    csm: bytes | None = field(default_factory=lambda: tcp_wire.csm(tcp_wire.DEFAULT_MAX_MESSAGE_SIZE))
    port: int = 0
    connections: list[PeerConnection] = field(default_factory=list)
    server: asyncio.Server | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> ScriptedTcpPeer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for connection in self.connections:
                connection.writer.close()

    @property
    def uri(self) -> str:
        return f"coap+tcp://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[tcp_wire.Message]:
        return [r for c in self.connections for r in c.requests]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = PeerConnection(len(self.connections), writer)
        self.connections.append(connection)
        if self.csm is not None:
            writer.write(self.csm)
        buffer = bytearray()
        try:
            while data := await reader.read(65536):
                buffer += data
                while (size := tcp_wire.frame_size(buffer)) is not None and len(buffer) >= size:
                    frame, buffer[:size] = bytes(buffer[:size]), b""
                    message = tcp_wire.decode(frame)
                    assert message is not None, frame
                    connection.received.append((time.monotonic(), message, size))
                    self.handler(self, connection, message)
                    self.changed.set()
        except ConnectionError:
            pass
        finally:
            writer.close()
            self.changed.set()


@pytest.fixture
async def peer() -> AsyncIterator[ScriptedTcpPeer]:
    running = await ScriptedTcpPeer().start()
    yield running
    await running.stop()


async def started(uri: str, window: int = 1, timeout_s: float = 10.0, **kwargs: object) -> CoapSender:
    sender = CoapSender(uri, RequestOptions(timeout_s=timeout_s), window=window, **kwargs)
    await sender.start()
    return sender


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    await async_wait_until(predicate, timeout, interval=0.01, what=what)


# -- the tests -----------------------------------------------------------------------------------------------


async def test_our_csm_comes_first_and_many_requests_share_one_connection_at_most_window_outstanding(
    peer: ScriptedTcpPeer,
) -> None:
    """§5.3: our CSM is the first message (Max-Message-Size, no Block-Wise-Transfer); every request goes on
    the one connection; the peer holds its answers until 8 are outstanding, so 8 at once (never 9) is both
    reached and not exceeded."""
    pending: list[tuple[PeerConnection, tcp_wire.Message]] = []

    def eight_at_a_time(p: ScriptedTcpPeer, connection: PeerConnection, message: tcp_wire.Message) -> None:
        if 1 <= message.code < 32:
            pending.append((connection, message))
            assert len(pending) <= 8, "more requests outstanding than the window"
            if len(pending) == 8:
                for c, m in pending:
                    c.answer(m, payload=m.payload)
                pending.clear()

    peer.handler = eight_at_a_time
    sender = await started(peer.uri, window=8)
    try:
        futures = [sender.submit(("r", str(n)), b"%d" % n, WHERE) for n in range(40)]
        answers = await asyncio.gather(*futures)
    finally:
        await sender.stop()
    assert [a.payload for a in answers] == [b"%d" % n for n in range(40)]
    assert all(isinstance(a, Answer) and a.code == CHANGED for a in answers)
    (connection,) = peer.connections
    first = connection.received[0][1]
    assert first.code == tcp_wire.CSM
    assert first.uint(tcp_wire.MAX_MESSAGE_SIZE) == tcp.OUR_MAX_MESSAGE_SIZE
    assert first.option(tcp_wire.BLOCK_WISE_TRANSFER) is None
    assert len(connection.requests) == 40
    assert len({r.token for r in connection.requests}) == 40  # unique while outstanding (here: at all)
    request = connection.requests[3]
    assert request.option(wire.URI_HOST) is None  # an IP literal: no Uri-Host
    assert [v for n, v in request.options if n == wire.URI_PATH] == [b"r", b"3"]
    assert request.uint(wire.CONTENT_FORMAT) == 50


async def test_responses_are_matched_by_token_in_any_order(peer: ScriptedTcpPeer) -> None:
    """§3.3: the peer answers five requests in reverse order, each with its own payload: each request gets
    its own answer."""
    held: list[tuple[PeerConnection, tcp_wire.Message]] = []

    def reverse(p: ScriptedTcpPeer, connection: PeerConnection, message: tcp_wire.Message) -> None:
        if 1 <= message.code < 32:
            held.append((connection, message))
            if len(held) == 5:
                for c, m in reversed(held):
                    c.answer(m, code=0x45, payload=b"answer to " + m.payload)

    peer.handler = reverse
    sender = await started(peer.uri, window=5)
    try:
        answers = await asyncio.gather(*(sender.submit(("m",), b"%d" % n, WHERE) for n in range(5)))
    finally:
        await sender.stop()
    assert [a.payload for a in answers] == [b"answer to %d" % n for n in range(5)]


async def test_no_request_goes_before_the_peers_csm_and_its_small_max_message_size_means_block1() -> None:
    """§5.3, §5.3.1, §6: nothing but our CSM is sent until the peer's CSM came; it announces 128 bytes, so a
    1000-byte body goes Block1 in blocks whose messages all fit (64 bytes of body each), Size1 on the first,
    2.31 Continue for each but the last."""
    body = bytes(range(256)) * 4
    got = bytearray()

    def block_server(p: ScriptedTcpPeer, connection: PeerConnection, message: tcp_wire.Message) -> None:
        if not 1 <= message.code < 32:
            return
        block1 = message.uint(wire.BLOCK1)
        assert block1 is not None
        got.extend(message.payload)
        more = bool(block1 & 0x08)
        options = tcp_wire.encode_options([(wire.BLOCK1, wire.uint(block1))])
        connection.send(tcp_wire.encode(CONTINUE if more else CHANGED, message.token, options))

    peer = await ScriptedTcpPeer(block_server, csm=None).start()
    sender = await started(peer.uri)
    try:
        future = sender.submit(("big",), body, WHERE)
        await wait_for(lambda: bool(peer.connections and peer.connections[0].received), "our CSM")
        connection = peer.connections[0]
        await asyncio.sleep(0)  # (the request would be written in the same loop pass as the CSM)
        assert [m.code for _, m, _ in connection.received] == [tcp_wire.CSM]
        connection.send(tcp_wire.csm(128))
        answer = await future
    finally:
        await sender.stop()
        await peer.stop()
    assert answer.code == CHANGED
    assert bytes(got) == body
    sizes = [size for _, m, size in connection.received if 1 <= m.code < 32]
    assert len(sizes) == 1000 // 64 + 1 and max(sizes) <= 128
    blocks = [m.uint(wire.BLOCK1) for m in connection.requests]
    assert [b >> 4 for b in blocks] == list(range(16)) and {b & 0x07 for b in blocks} == {2}
    assert connection.requests[0].uint(wire.SIZE1) == len(body)
    assert all(m.uint(wire.SIZE1) is None for m in connection.requests[1:])


async def test_a_peers_ping_is_answered_with_a_pong_of_its_token_and_custody(peer: ScriptedTcpPeer) -> None:
    """§5.4: Pong with the Ping's token, Custody when the Ping asked for it; an Empty message is ignored."""
    sender = await started(peer.uri)
    try:
        await sender.submit(("x",), b"1", WHERE)
        connection = peer.connections[0]
        connection.send(tcp_wire.encode(0x00, b"", b""))  # 0.00 Empty: ignored (§3.4)
        connection.send(tcp_wire.ping(b"\x01\x02"))
        connection.send(
            tcp_wire.encode(tcp_wire.PING, b"\x03", tcp_wire.encode_options([(tcp_wire.CUSTODY, b"")]))
        )
        await wait_for(lambda: len(connection.messages(tcp_wire.PONG)) == 2, "two Pongs")
        assert (await sender.submit(("x",), b"2", WHERE)).code == CHANGED  # and the connection still works
    finally:
        await sender.stop()
    plain, custody = connection.messages(tcp_wire.PONG)
    assert (plain.token, plain.option(tcp_wire.CUSTODY)) == (b"\x01\x02", None)
    assert (custody.token, custody.option(tcp_wire.CUSTODY)) == (b"\x03", b"")
    assert len(peer.connections) == 1


async def test_an_idle_connection_is_pinged_and_one_without_a_pong_is_dropped(
    peer: ScriptedTcpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§5.4: after PING_IDLE_S of silence we Ping; Pongs keep the connection; a Ping left without a Pong
    for PONG_TIMEOUT_S ends it, and the next request opens a new one."""
    monkeypatch.setattr(tcp, "PING_IDLE_S", 0.2)
    monkeypatch.setattr(tcp, "PONG_TIMEOUT_S", 0.3)
    sender = await started(peer.uri)
    try:
        await sender.submit(("x",), b"1", WHERE)
        first = peer.connections[0]
        await wait_for(lambda: len(first.messages(tcp_wire.PING)) >= 2, "two Pings while idle")
        pings = [t for t, m, _ in first.received if m.code == tcp_wire.PING]
        assert pings[1] - pings[0] >= 0.2 - 0.01  # idle for PING_IDLE_S after the Pong
        assert sender.endpoints == 1
        peer.handler = lambda p, c, m: c.answer(m) if 1 <= m.code < 32 else None  # Pongs no more
        with capture_logs() as logs:
            await wait_for(lambda: sender.endpoints == 0, "the connection dropped for want of a Pong")
        assert any(line["event"] == "coap.tcp_no_pong" for line in logs)
        assert (await sender.submit(("x",), b"2", WHERE)).code == CHANGED
    finally:
        await sender.stop()
    assert len(peer.connections) == 2
    assert [r.payload for r in peer.connections[1].requests] == [b"2"]


async def test_a_dropped_connection_is_reopened_and_every_unanswered_request_sent_again(
    peer: ScriptedTcpPeer,
) -> None:
    """The peer answers 3 requests, then drops the connection (RST) with 5 outstanding: those 5 go again on
    a new connection, every request ends 2.04, nothing lost."""

    def drop_after_three(p: ScriptedTcpPeer, connection: PeerConnection, message: tcp_wire.Message) -> None:
        if not 1 <= message.code < 32:
            return
        if connection.number > 0 or len(connection.requests) <= 3:
            connection.answer(message, payload=message.payload)
        elif len(connection.requests) == 8:
            connection.writer.transport.abort()

    peer.handler = drop_after_three
    sender = await started(peer.uri, window=5)
    try:
        with capture_logs() as logs:
            answers = await asyncio.gather(*(sender.submit(("s",), b"%d" % n, WHERE) for n in range(20)))
    finally:
        await sender.stop()
    assert [a.payload for a in answers] == [b"%d" % n for n in range(20)]
    first, second = peer.connections
    answered_first = {r.payload for r in first.requests[:3]}
    assert {r.payload for r in second.requests} == {b"%d" % n for n in range(20)} - answered_first
    assert second.received[0][1].code == tcp_wire.CSM
    lost = [line for line in logs if line["event"] == "coap.tcp_connection_lost"]
    assert lost and lost[0]["unanswered"] == 5


async def test_a_release_sends_new_requests_to_a_new_connection_after_its_hold_off(
    peer: ScriptedTcpPeer,
) -> None:
    """§5.5: the peer releases the connection (Hold-Off 1 s) and still answers what was outstanding there;
    the next request goes on a new connection opened no earlier than the Hold-Off."""
    released_at: list[float] = []

    def release_first(p: ScriptedTcpPeer, connection: PeerConnection, message: tcp_wire.Message) -> None:
        if not 1 <= message.code < 32:
            return
        if connection.number == 0 and not released_at:
            connection.send(tcp_wire.release(hold_off_s=1))
            released_at.append(time.monotonic())
        connection.answer(message, payload=message.payload)

    peer.handler = release_first
    sender = await started(peer.uri)
    try:
        assert (await sender.submit(("r",), b"1", WHERE)).payload == b"1"
        assert (await sender.submit(("r",), b"2", WHERE)).payload == b"2"
    finally:
        await sender.stop()
    first, second = peer.connections
    assert [r.payload for r in first.requests] == [b"1"]
    assert [r.payload for r in second.requests] == [b"2"]
    assert second.received[0][0] - released_at[0] >= 1.0 - 0.05


async def test_an_abort_from_the_peer_closes_and_the_request_goes_again(peer: ScriptedTcpPeer) -> None:
    """§5.6: the peer aborts instead of answering: logged with its diagnostic; the request is answered on a
    new connection."""

    def abort_first(p: ScriptedTcpPeer, connection: PeerConnection, message: tcp_wire.Message) -> None:
        if 1 <= message.code < 32:
            if connection.number == 0:
                connection.send(tcp_wire.abort("not today"))
                connection.writer.close()
            else:
                connection.answer(message)

    peer.handler = abort_first
    sender = await started(peer.uri)
    try:
        with capture_logs() as logs:
            assert (await sender.submit(("a",), b"1", WHERE)).code == CHANGED
    finally:
        await sender.stop()
    assert len(peer.connections) == 2
    (aborted,) = [line for line in logs if line["event"] == "coap.tcp_aborted"]
    assert aborted["diagnostic"] == "not today"


async def test_a_peer_whose_first_message_is_not_a_csm_is_aborted() -> None:
    """§5.3: a missing CSM is a connection error: we send Abort and close; the request, never sent, fails at
    its deadline naming the server and why."""
    peer = await ScriptedTcpPeer(csm=tcp_wire.encode(CHANGED, b"", b"")).start()
    sender = await started(peer.uri, timeout_s=1.0)
    try:
        with pytest.raises(DeliveryError) as caught:
            await sender.submit(("a",), b"1", WHERE)
    finally:
        await sender.stop()
        await peer.stop()
    assert caught.value.retriable
    assert f"no connection to coap+tcp://127.0.0.1:{peer.port}" in str(caught.value)
    assert "not a CSM" in str(caught.value)
    aborts = peer.connections[0].messages(tcp_wire.ABORT)
    assert aborts and b"not a CSM" in aborts[0].payload
    assert all(not c.requests for c in peer.connections)


async def test_a_server_that_comes_up_late_gets_the_request_within_its_deadline() -> None:
    """Connection refused: we try again with a backoff while the request waits; once the server listens,
    the request is answered."""
    port = free_port("tcp")
    sender = await started(f"coap+tcp://127.0.0.1:{port}", timeout_s=10.0)
    peer = ScriptedTcpPeer(port=port)
    try:
        with capture_logs() as logs:
            future = sender.submit(("late",), b"1", WHERE)
            await wait_for(
                lambda: any(line["event"] == "coap.tcp_connect_failed" for line in logs), "a refusal"
            )
            await peer.start()
            assert (await future).code == CHANGED
    finally:
        await sender.stop()
        await peer.stop()
    (failed,) = [line for line in logs if line["event"] == "coap.tcp_connect_failed"]
    assert "ConnectionRefusedError" in failed["error"]


async def test_a_request_that_cannot_connect_fails_retriably_at_its_deadline_naming_the_error() -> None:
    port = free_port("tcp")
    sender = await started(f"coap+tcp://127.0.0.1:{port}", timeout_s=0.5)
    try:
        with pytest.raises(DeliveryError) as caught:
            await sender.submit(("x",), b"1", WHERE)
    finally:
        await sender.stop()
    assert caught.value.retriable
    assert f"no connection to coap+tcp://127.0.0.1:{port} within 0.5 s" in str(caught.value)
    assert "ConnectionRefusedError" in str(caught.value)


async def test_cancelling_abandons_the_request_and_frees_the_window(peer: ScriptedTcpPeer) -> None:
    """Window 1: the first request is never answered until cancelled; the second goes out then; a late answer
    to the first is an unmatched response."""
    held: list[tuple[PeerConnection, tcp_wire.Message]] = []

    def hold_first(p: ScriptedTcpPeer, connection: PeerConnection, message: tcp_wire.Message) -> None:
        if 1 <= message.code < 32:
            if message.payload == b"1":
                held.append((connection, message))
            else:
                connection.answer(message)

    peer.handler = hold_first
    sender = await started(peer.uri)
    try:
        first = sender.submit(("c",), b"1", WHERE)
        second = sender.submit(("c",), b"2", WHERE)
        await wait_for(lambda: bool(held), "the first request at the peer")
        assert len(peer.requests) == 1
        first.cancel()
        assert (await second).code == CHANGED
        with capture_logs() as logs:
            connection, message = held[0]
            connection.answer(message)
            await wait_for(
                lambda: any(line["event"] == "coap.unmatched_response" for line in logs), "unmatched"
            )
    finally:
        await sender.stop()
    assert len(peer.connections) == 1
