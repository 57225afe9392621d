"""OSCORE (RFC 8613) over CoAP over TCP and TLS (RFC 8323) against aiocoap's OSCORE server serving
``coap+tcp://`` and ``coaps+tcp://`` (tests/oscore_server.py with ``transport="tcp"``/``"tls"``): protected
requests arrive decrypted at the resource and their protected answers come back; a connection dropped (reset
by the server) or a server restarted mid-stream leaves no request unanswered, and every request sent again
was protected anew, so the server, which refuses any sequence number it has seen, refused none; the Echo
challenge of a server that lost its replay window is answered; and what a reused sequence number gets from
aiocoap over TCP (nothing at all), which is why a resend must never be the old protected message. The rules
without sockets: tests/unit/coap/test_oscore_tcp.py."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiocoap.numbers.codes import Code

from streamapp.coap.oscore import open_contexts
from streamapp.coap.sender import CoapSender, RequestOptions
from streamapp.coap.tcp_tls import TlsOptions
from streamapp.errors import DeliveryError
from streamapp.records import RecordCoordinates
from streamapp_harness.process import async_wait_until
from tests.certs import Pki
from tests.integration.test_tcp_peers import client_tls, server_context
from tests.oscore_server import ContextPair, OscoreCoapServer, make_contexts, server_sequence_unknown

WHERE = RecordCoordinates("oscore-tcp", 0, 1)
CHANGED = int(Code.CHANGED)


@pytest.fixture
def pair(tmp_path: Path) -> ContextPair:
    return make_contexts(tmp_path)


@asynccontextmanager
async def protected_sender(
    uri: str,
    context: Path,
    *,
    window: int = 1,
    tls: TlsOptions | None = None,
    timeout_s: float = 20.0,
    **options: object,
) -> AsyncIterator[CoapSender]:
    sender = CoapSender(
        uri,
        RequestOptions(timeout_s=timeout_s, oscore_context=str(context), **options),  # type: ignore[arg-type]
        window=window,
        tls=tls,
        oscore=open_contexts([str(context)]),
    )
    await sender.start()
    try:
        yield sender
    finally:
        await sender.stop()  # closes the contexts


def assert_every_request_accepted_once(server: OscoreCoapServer) -> None:
    """Every request the resource saw came through OSCORE under a sequence number of its own, and none was
    refused as a replay (RFC 8613 §7.4)."""
    accepted = server.accepted_sequence_numbers
    assert server.replays == 0
    assert server.unprotected == 0
    assert len(set(accepted)) == len(accepted) == server.count


async def test_protected_requests_over_coap_tcp_arrive_decrypted_and_their_answers_come_back(
    pair: ContextPair,
) -> None:
    with OscoreCoapServer(pair.server, transport="tcp") as server:
        server.set_response("/base/dev/a b", Code.CREATED, payload=b"stored", content_format=0)
        async with protected_sender(server.uri + "/base", pair.client, window=8, method="POST") as sender:
            answers = await asyncio.gather(
                *(sender.submit(("dev", "a b"), b'{"n":%d}' % n, WHERE, query=("x=1",)) for n in range(40))
            )
            # aiocoap announces a Max-Message-Size of 1 MiB: a 20 000-byte body is one protected message.
            big = await sender.submit(("big",), b"z" * 20_000, WHERE)
            link = sender._default.link
            assert link is not None and link.connections_opened == 1
        recorded = server.requests
        assert_every_request_accepted_once(server)
    # The answer is the inner one: its code, payload and Content-Format, verified.
    assert {(a.code, a.payload, a.content_format) for a in answers} == {(int(Code.CREATED), b"stored", 0)}
    assert {(r.method, r.path, r.query, r.content_format) for r in recorded[:-1]} == {
        ("POST", "/base/dev/a b", ("x=1",), 50)
    }
    assert sorted(r.payload for r in recorded[:-1]) == sorted(b'{"n":%d}' % n for n in range(40))
    assert big.code == CHANGED and recorded[-1].payload == b"z" * 20_000
    assert sorted(server.accepted_sequence_numbers) == list(range(41))  # one message for the big body too


async def test_a_connection_dropped_mid_stream_every_request_sent_again_protected_anew(
    pair: ContextPair,
) -> None:
    """The server resets its connections while requests are being answered (taken, answers not sent): those
    and the ones behind them go again on a new connection, each a new protected message, and the server
    accepts them all; no record is lost, the ones it had taken arrive twice (at-least-once, docs/tcp.md)."""
    with OscoreCoapServer(pair.server, transport="tcp") as server:
        server.set_delay(0.05)  # answers take 50 ms: the drop lands with requests taken and unanswered
        async with protected_sender(server.uri, pair.client, window=8) as sender:
            futures = [sender.submit(("s",), b"%d" % n, WHERE) for n in range(120)]
            await async_wait_until(
                lambda: server.count >= 40 and server.in_flight > 0, 20, what="40 requests, some in flight"
            )
            assert await asyncio.to_thread(server.drop_connections) == 1
            answers = await asyncio.gather(*futures)
            link = sender._default.link
            assert link is not None and link.connections_opened == 2
        assert_every_request_accepted_once(server)
        payloads = Counter(r.payload for r in server.requests)
    assert {a.code for a in answers} == {CHANGED}
    assert set(payloads) == {b"%d" % n for n in range(120)}
    assert max(payloads.values()) == 2  # taken before the drop, sent again after it: accepted again


async def test_a_server_restarted_mid_stream_accepts_every_request_sent_again(pair: ContextPair) -> None:
    """The server stops (Release, its connections closed, its replay window stored) and starts again on
    the same port: the requests left unanswered are sent again protected anew and accepted."""
    with OscoreCoapServer(pair.server, transport="tcp") as server:
        server.set_delay(0.02)
        async with protected_sender(server.uri, pair.client, window=8) as sender:
            futures = [sender.submit(("r",), b"%d" % n, WHERE) for n in range(150)]
            await async_wait_until(lambda: server.count >= 50, 20, what="50 requests at the server")
            await asyncio.to_thread(server.restart)
            assert not all(f.done() for f in futures)
            answers = await asyncio.gather(*futures)
            link = sender._default.link
            assert link is not None and link.connections_opened >= 2
        assert_every_request_accepted_once(server)
        assert {r.payload for r in server.requests} == {b"%d" % n for n in range(150)}
    assert {a.code for a in answers} == {CHANGED}


async def test_over_coaps_tcp_protected_requests_survive_a_dropped_connection(
    pair: ContextPair, pki: Pki
) -> None:
    """The same over TLS (the server's name checked, ALPN coap): OSCORE inside, TLS around it."""
    context = server_context(pki.server_cert, pki.server_key)
    with OscoreCoapServer(pair.server, transport="tls", ssl_context=context, host="localhost") as server:
        server.set_delay(0.05)
        async with protected_sender(server.uri, pair.client, window=4, tls=client_tls(pki)) as sender:
            futures = [sender.submit(("tls",), b"%d" % n, WHERE) for n in range(60)]
            await async_wait_until(
                lambda: server.count >= 20 and server.in_flight > 0, 20, what="20 requests, some in flight"
            )
            connection = sender._default.link.connection  # type: ignore[union-attr]
            assert connection is not None and connection.transport is not None
            assert connection.transport.get_extra_info("ssl_object").selected_alpn_protocol() == "coap"
            assert await asyncio.to_thread(server.drop_connections) == 1
            answers = await asyncio.gather(*futures)
        assert_every_request_accepted_once(server)
        assert {r.payload for r in server.requests} == {b"%d" % n for n in range(60)}
    assert {a.code for a in answers} == {CHANGED}


async def test_an_echo_challenge_over_tcp_is_answered_once(pair: ContextPair) -> None:
    server_sequence_unknown(pair.server)  # the server lost its replay window (a crash): B.1.2 recovery
    with OscoreCoapServer(pair.server, transport="tcp") as server:
        async with protected_sender(server.uri, pair.client) as sender:
            for n in range(3):
                assert (await sender.submit(("dev",), b"%d" % n, WHERE)).code == CHANGED
        # The first request was refused with 4.01 + Echo (not processed), its resend with Echo accepted.
        assert [r.payload for r in server.requests] == [b"0", b"1", b"2"]
        assert server.accepted_sequence_numbers == [1, 2, 3]


async def test_a_reused_sequence_number_over_tcp_gets_no_answer_from_aiocoap(pair: ContextPair) -> None:
    """Why a resend is never the old protected message: aiocoap's OSCORE server over TCP refuses a replay
    without a word (it answers refusals to CON requests only, and a TCP request has no type), so the
    request could only end at its deadline; with another server it would end with "Replay detected"."""
    with OscoreCoapServer(pair.server, transport="tcp") as server:
        async with protected_sender(server.uri, pair.client) as sender:
            for n in range(3):
                await sender.submit(("dev",), b"%d" % n, WHERE)
        # A context restored from a backup: its sequence numbers go back (what RFC 8613 §7.5 forbids).
        (pair.client / "sequence.json").write_text(json.dumps({"next-to-send": 0, "received": "unknown"}))
        async with protected_sender(server.uri, pair.client, timeout_s=1.0) as sender:
            with pytest.raises(DeliveryError) as info:
                await sender.submit(("dev",), b"again", WHERE)
        assert server.replays == 1
        assert [r.payload for r in server.requests] == [b"0", b"1", b"2"]
    assert info.value.retriable and "no response" in str(info.value)
