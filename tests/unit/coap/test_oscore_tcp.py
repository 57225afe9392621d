"""OSCORE over CoAP over TCP (streamapp/coap/oscore.py's ProtectedTcpExchange) without sockets: a real
TcpClient and TcpConnection whose transport only records what is written, the "server" being the test with
the mirror context (aiocoap's own unprotect and protect) and aiocoap's own TCP message codec. What is proven:
the outer message, the inner answer, the failures, the Echo resend, every message protected anew after a
dropped connection (the old bytes again would be a replay), inner Block1 sized to the peer's
Max-Message-Size. Against aiocoap's OSCORE server over TCP and TLS: tests/integration/test_oscore_tcp.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiocoap
import pytest
from aiocoap import oscore as aiocoap_oscore
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.transports.tcp import _decode_message, _serialize

from streamapp.coap import tcp, tcp_wire
from streamapp.coap.exchange import BlockwiseError, Response
from streamapp.coap.oscore import OscoreError, ProtectedTcpExchange, SecurityContext
from streamapp.config.oscore_context import MAX_SEQUENCE_NUMBER
from tests.oscore_server import ContextPair, make_contexts
from tests.unit.coap.test_exchange import Outcome

HOST = "sensors.example"
PATH = ("base", "room 1")
QUERY = ("a=1",)


@pytest.fixture
def pair(tmp_path: Path) -> ContextPair:
    return make_contexts(tmp_path)


@pytest.fixture
def client(pair: ContextPair) -> Iterator[SecurityContext]:
    context = SecurityContext(str(pair.client))
    yield context
    context.close()


@pytest.fixture
def server(pair: ContextPair) -> Iterator[aiocoap_oscore.FilesystemSecurityContext]:
    context = aiocoap_oscore.FilesystemSecurityContext(str(pair.server))
    yield context
    if context.lockfile is not None:
        context._destroy()


class RecordingTransport:
    """The transport of a connection: what is written, kept; closing is noted."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Peer:
    """One TcpClient with connections on recording transports, the peer's CSM given by the test."""

    def __init__(self, max_message_size: int = tcp_wire.DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.client = tcp.TcpClient(
            HOST, 5683, f"coap+tcp://{HOST}:5683", window=8, tls=None, connect_timeout_s=5.0
        )
        self.client._connect = lambda: None  # type: ignore[method-assign]  # connections come from connect()
        self.max_message_size = max_message_size
        self.transport = RecordingTransport()
        self.connection = self.connect()

    def connect(self) -> tcp.TcpConnection:
        """A new connection, our CSM written and the peer's received: requests may go on it."""
        connection = tcp.TcpConnection(self.client)
        self.transport = RecordingTransport()
        connection.connection_made(self.transport)  # type: ignore[arg-type]
        connection.data_received(tcp_wire.csm(self.max_message_size))
        self.client.connection = self.connection = connection
        self.client.pump()
        return connection

    def drop(self) -> None:
        """The connection is reset with whatever is outstanding on it."""
        self.connection.connection_lost(ConnectionResetError("reset by peer"))

    def requests(self) -> list[aiocoap.Message]:
        """Every request written on the current connection (its CSM left out), as aiocoap reads them."""
        messages = [_decode_message(data) for data in self.transport.written]
        return [m for m in messages if m.code.is_request()]

    def answer(
        self,
        server: aiocoap_oscore.FilesystemSecurityContext,
        request: aiocoap.Message,
        request_id: Any,
        inner: aiocoap.Message,
    ) -> None:
        """The server's protected answer to ``request`` on the current connection."""
        outer, _ = server.protect(inner, request_id)
        outer.token = request.token
        self.connection.data_received(_serialize(outer))


def exchange(context: SecurityContext, payload: bytes = b'{"t":1}') -> tuple[ProtectedTcpExchange, Outcome]:
    outcome = Outcome()
    request = ProtectedTcpExchange(
        context, int(Code.PUT), HOST, PATH, QUERY, 50, payload, timeout_s=95.0, on_done=outcome
    )
    return request, outcome


def sequence_number(request_id: Any) -> int:
    return int.from_bytes(request_id.partial_iv, "big")


# -- protect / unprotect -----------------------------------------------------------------------------------


async def test_the_outer_message_shows_only_post_uri_host_and_the_oscore_option(client, server) -> None:
    peer = Peer()
    request, outcome = exchange(client)
    peer.client.start(request)
    ((written,),) = [[d for d in peer.transport.written if _decode_message(d).code.is_request()]]
    outer = _decode_message(written)  # aiocoap's own TCP codec reads our bytes
    # RFC 8613 §4.2, §4.1: the outer code is POST; Uri-Path, Uri-Query, Content-Format are class E (inside).
    assert outer.code == Code.POST
    assert {o.number for o in outer.opt.option_list()} == {OptionNumber.URI_HOST, OptionNumber.OSCORE}
    assert outer.opt.uri_host == HOST
    assert b"room 1" not in written and b'{"t":1}' not in written and b"a=1" not in written
    inner, _ = server.unprotect(outer)
    assert (inner.code, inner.opt.uri_path, inner.opt.uri_query, inner.opt.content_format, inner.payload) == (
        Code.PUT,
        PATH,
        QUERY,
        50,
        b'{"t":1}',
    )
    assert outcome.calls == []


async def test_the_inner_response_is_the_answer(client, server) -> None:
    peer = Peer()
    request, outcome = exchange(client)
    peer.client.start(request)
    (sent,) = peer.requests()
    _, request_id = server.unprotect(sent)
    answer = aiocoap.Message(code=Code.CREATED, payload=b"ok", content_format=0)
    peer.answer(server, sent, request_id, answer)
    assert outcome.response == Response(int(Code.CREATED), b"ok", 0)
    assert peer.client.idle


async def test_an_unprotected_answer_is_no_delivery(client) -> None:
    peer = Peer()
    request, outcome = exchange(client)
    peer.client.start(request)
    (sent,) = peer.requests()
    peer.connection.data_received(tcp_wire.encode(int(Code.CHANGED), sent.token, b"", b""))
    error = outcome.error
    assert isinstance(error, OscoreError) and error.code == int(Code.CHANGED) and not error.retriable
    assert "without OSCORE protection" in str(error)


async def test_a_response_that_fails_verification_is_discarded(client, server) -> None:
    peer = Peer()
    request, outcome = exchange(client)
    peer.client.start(request)
    (sent,) = peer.requests()
    _, request_id = server.unprotect(sent)
    outer, _ = server.protect(aiocoap.Message(code=Code.CHANGED), request_id)
    outer.token = sent.token
    data = bytearray(_serialize(outer))
    data[-1] ^= 0x01  # one bit of the tag
    peer.connection.data_received(bytes(data))
    error = outcome.error
    assert isinstance(error, OscoreError) and not error.retriable
    assert "failed OSCORE verification" in str(error) and "RFC 8613 §8.4" in str(error)


async def test_an_echo_challenge_is_answered_once_with_a_new_token_and_sequence_number(
    client, server
) -> None:
    peer = Peer()
    request, outcome = exchange(client)
    peer.client.start(request)
    (first,) = peer.requests()
    _, first_id = server.unprotect(first)
    challenge = aiocoap.Message(code=Code.UNAUTHORIZED, echo=b"\x05\x06fresh")
    peer.answer(server, first, first_id, challenge)
    assert outcome.calls == []
    second = peer.requests()[-1]
    assert second.token != first.token
    inner, request_id = server.unprotect(second)
    assert inner.opt.echo == b"\x05\x06fresh" and inner.payload == b'{"t":1}'
    assert sequence_number(request_id) > sequence_number(first_id)
    # A second challenge to the request that carried the Echo value: given up, not resent again.
    peer.answer(server, second, request_id, challenge)
    error = outcome.error
    assert isinstance(error, OscoreError) and error.code == int(Code.UNAUTHORIZED) and not error.retriable
    assert len(peer.requests()) == 2


async def test_an_exhausted_context_fails_without_sending(client) -> None:
    client.context.sender_sequence_number = MAX_SEQUENCE_NUMBER
    peer = Peer()
    request, outcome = exchange(client)
    peer.client.start(request)
    assert peer.requests() == []
    assert "exhausted" in str(outcome.error) and "§7.2.1" in str(outcome.error)
    assert peer.client.idle


# -- a dropped connection (RFC 8613 §7.4) --------------------------------------------------------------------


async def test_a_request_sent_again_after_a_dropped_connection_is_protected_anew(client, server) -> None:
    """The server took the request (its sequence number is now seen) and the connection dropped before the
    answer: the request goes again on the next connection as a new protected message, which the server
    accepts; the old bytes again would have been refused as a replay."""
    peer = Peer()
    request, outcome = exchange(client)
    peer.client.start(request)
    (old_bytes,) = [d for d in peer.transport.written if _decode_message(d).code.is_request()]
    _, old_id = server.unprotect(_decode_message(old_bytes))  # processed; the answer never leaves
    peer.drop()
    assert outcome.calls == [] and list(peer.client.waiting) == [request]
    peer.connect()
    (again,) = peer.requests()
    assert again.payload != _decode_message(old_bytes).payload
    inner, new_id = server.unprotect(again)  # accepted: no ReplayError
    assert sequence_number(new_id) > sequence_number(old_id)
    assert inner.payload == b'{"t":1}' and inner.opt.uri_path == PATH
    with pytest.raises(aiocoap_oscore.ReplayError):
        server.unprotect(_decode_message(old_bytes))
    peer.answer(server, again, new_id, aiocoap.Message(code=Code.CHANGED))
    assert outcome.response.code == int(Code.CHANGED)


async def test_an_echo_answered_before_a_drop_may_be_answered_again_after_it(client, server) -> None:
    """A server that lost its replay window, then the connection: the request starts over on the next one,
    Echo budget included, so the restarted server's challenge is answered too."""
    peer = Peer()
    request, outcome = exchange(client)
    peer.client.start(request)
    (first,) = peer.requests()
    _, first_id = server.unprotect(first)
    challenge = aiocoap.Message(code=Code.UNAUTHORIZED, echo=b"one")
    peer.answer(server, first, first_id, challenge)
    peer.drop()
    peer.connect()
    (again,) = peer.requests()
    inner, again_id = server.unprotect(again)
    assert inner.opt.echo is None  # an Echo value belongs to the server state it came from
    peer.answer(server, again, again_id, aiocoap.Message(code=Code.UNAUTHORIZED, echo=b"two"))
    resent = peer.requests()[-1]
    inner, resent_id = server.unprotect(resent)
    assert inner.opt.echo == b"two"
    peer.answer(server, resent, resent_id, aiocoap.Message(code=Code.CHANGED))
    assert outcome.response.code == int(Code.CHANGED)


# -- block-wise (RFC 8613 §4.1.3.4.1, RFC 8323 §6) -----------------------------------------------------------


async def test_a_body_that_fits_goes_whole_even_over_1024_bytes(client, server) -> None:
    peer = Peer(max_message_size=1 << 20)  # aiocoap's CSM
    body = b"z" * 5000
    request, outcome = exchange(client, payload=body)
    peer.client.start(request)
    (sent,) = peer.requests()
    inner, request_id = server.unprotect(sent)
    assert inner.opt.block1 is None and inner.payload == body
    peer.answer(server, sent, request_id, aiocoap.Message(code=Code.CHANGED))
    assert outcome.response.code == int(Code.CHANGED)


@pytest.mark.parametrize(("max_message_size", "block_size"), [(160, 32), (256, 128), (1152, 1024)])
async def test_a_body_over_the_peers_max_message_size_goes_in_protected_inner_blocks_that_fit(
    client, server, max_message_size: int, block_size: int
) -> None:
    """Each block is its own protected request (inner Block1, Size1 on the first; no outer Block1) in a
    message no larger than the peer's Max-Message-Size, its resend with a 40-byte Echo too; 2.31 Continue
    asks for the next; the server reassembles the body."""
    body = bytes(range(256)) * 12  # 3072 bytes
    peer = Peer(max_message_size)
    request, outcome = exchange(client, payload=body)
    peer.client.start(request)
    got = b""
    numbers = []
    sizes = set()
    echoed = False
    while not outcome.calls:
        data = [d for d in peer.transport.written if _decode_message(d).code.is_request()][-1]
        assert len(data) <= max_message_size
        sent = _decode_message(data)
        assert sent.opt.block1 is None and sent.opt.size1 is None
        inner, request_id = server.unprotect(sent)
        numbers.append(sequence_number(request_id))
        block1 = inner.opt.block1
        assert block1 is not None and (inner.opt.size1 == len(body)) == (block1.block_number == 0)
        sizes.add(block1.size)
        if block1.block_number == 1 and not echoed:
            echoed = True  # the server asks for freshness once: the block again, with 40 bytes of Echo
            peer.answer(server, sent, request_id, aiocoap.Message(code=Code.UNAUTHORIZED, echo=b"e" * 40))
            continue
        assert block1.block_number * block1.size == len(got)
        got += inner.payload
        answer = aiocoap.Message(code=Code.CONTINUE if block1.more else Code.CHANGED, block1=block1)
        peer.answer(server, sent, request_id, answer)
    assert outcome.response.code == int(Code.CHANGED)
    assert got == body and echoed
    assert numbers == sorted(set(numbers))  # every message its own sequence number
    assert sizes == {block_size}  # the largest whose protected message fits
    assert len(numbers) == len(body) // block_size + 1  # every block once, and one Echo resend


async def test_a_max_message_size_with_no_room_for_a_block_fails_without_spending_a_sequence_number(
    client,
) -> None:
    peer = Peer(max_message_size=100)
    request, outcome = exchange(client, payload=b"x" * 500)
    peer.client.start(request)
    assert peer.requests() == []
    error = outcome.error
    assert isinstance(error, BlockwiseError) and "Max-Message-Size of 100 bytes" in str(error)
    assert client.next_sequence_number == 0


async def test_an_echo_longer_than_rfc_9175_allows_is_never_sent_over_the_peers_limit(client, server) -> None:
    body = b"y" * 3000
    peer = Peer(max_message_size=256)
    request, outcome = exchange(client, payload=body)
    peer.client.start(request)
    (sent,) = peer.requests()
    _, request_id = server.unprotect(sent)
    peer.answer(server, sent, request_id, aiocoap.Message(code=Code.UNAUTHORIZED, echo=b"e" * 200))
    assert len(peer.requests()) == 1
    error = outcome.error
    assert isinstance(error, BlockwiseError) and "does not fit" in str(error)


def test_the_overhead_bound_covers_every_id_context_host_and_sequence_number(tmp_path: Path) -> None:
    """protection_overhead() is an upper bound on what protect() adds to the plaintext (the outer options
    and the tag), whatever the ID context, the host and the sequence number (Partial IV of 1 to 5 bytes)."""
    for index, (host, id_context) in enumerate(
        [(None, None), ("h", b""), ("a-long-host-name.example", b"\x01" * 20), (None, b"\x02" * 200)]
    ):
        pair = make_contexts(tmp_path / str(index), client_id=b"\x01\x02\x03", id_context=id_context)
        context = SecurityContext(str(pair.client))
        try:
            bound = context.protection_overhead(host)
            inner_options = len(aiocoap.Message(uri_path=("r",)).opt.encode())
            plaintext = 1 + inner_options + 1 + 1  # code, options, payload marker, one byte of payload
            for number in (0, 255, 1 << 16, 1 << 39):
                context.context.sender_sequence_number = number
                context.context.sequence_number_persisted = number  # (aiocoap persists ahead of it)
                inner = aiocoap.Message(code=Code.PUT, uri_host=host, uri_path=("r",), payload=b"p")
                outer, _ = context.protect(inner)
                added = len(outer.opt.encode()) + len(outer.payload) - plaintext
                assert added <= bound
            assert bound - added <= 4  # and a tight one: at most the Partial IV's unused bytes
        finally:
            context.close()
