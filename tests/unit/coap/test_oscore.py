"""The OSCORE glue (streamapp/coap/oscore.py) without sockets: a ProtectedExchange on the fake endpoint of
test_exchange.py, the "server" being the test with the mirror context (aiocoap's own unprotect and protect);
the context directory's checks; the sequence number persisted ahead (RFC 8613 §7.5). Against aiocoap's
OSCORE server: tests/integration/test_oscore.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import aiocoap
import pytest
from aiocoap import oscore as aiocoap_oscore
from aiocoap.message import Direction
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber

from streamapp.coap import oscore, wire
from streamapp.coap.exchange import ClientEndpoint
from streamapp.coap.oscore import (
    OscoreError,
    ProtectedExchange,
    SecurityContext,
    open_contexts,
)
from streamapp.coap.request_options import RequestOptions
from streamapp.config.oscore_context import MAX_SEQUENCE_NUMBER, check_context_directory
from streamapp.config.settings import Settings
from streamapp.errors import ConfigError
from streamapp.patches.aiocoap import PersistentContext
from tests.oscore_server import ContextPair, make_contexts
from tests.unit.coap.test_exchange import (
    FakeLink,
    FakeLoop,
    Outcome,
    endpoint,
    fixed_random,  # noqa: F401 (the same fixed draw: an autouse fixture)
)

KCQL = "INSERT INTO r SELECT * FROM t"
BASE = {"connect.coap.uri": "coap://127.0.0.1:5683", "connect.coap.kcql": KCQL}


@pytest.fixture
def pair(tmp_path: Path) -> ContextPair:
    return make_contexts(tmp_path)


@pytest.fixture
def client(pair: ContextPair) -> SecurityContext:
    context = SecurityContext(str(pair.client))
    yield context
    context.close()


@pytest.fixture
def server(pair: ContextPair) -> aiocoap_oscore.FilesystemSecurityContext:
    context = aiocoap_oscore.FilesystemSecurityContext(str(pair.server))
    yield context
    if context.lockfile is not None:
        context._destroy()


def protected(
    context: SecurityContext, host: str | None = "sensors.example", payload: bytes = b'{"t":1}'
) -> tuple[ClientEndpoint, FakeLoop, FakeLink, Outcome]:
    ep, loop, link, _ = endpoint()
    outcome = Outcome()
    ex = ProtectedExchange(
        context,
        int(Code.PUT),
        True,
        host,
        ("base", "room 1"),
        ("a=1",),
        50,
        payload,
        ack_timeout=2.0,
        random_factor=1.5,
        max_retransmit=4,
        timeout_s=95.0,
        on_done=outcome,
    )
    ep.start(ex)
    return ep, loop, link, outcome


def received(datagram: bytes) -> aiocoap.Message:
    message = aiocoap.Message.decode(datagram)
    message.direction = Direction.INCOMING
    return message


def reply(server, request: aiocoap.Message, request_id, inner: aiocoap.Message) -> bytes:
    """The server's piggybacked, protected answer to ``request``."""
    outer, _ = server.protect(inner, request_id)
    outer.mtype = aiocoap.ACK
    outer.mid = request.mid
    outer.token = request.token
    return outer.encode()


# -- protect / unprotect -----------------------------------------------------------------------------------


def test_the_outer_message_shows_only_post_uri_host_and_the_oscore_option(client, server) -> None:
    _ep, _, link, outcome = protected(client)
    ((_, datagram),) = link.sent
    outer = received(datagram)
    # RFC 8613 §4.2, §4.1: the outer code is POST; Uri-Path, Uri-Query, Content-Format are class E (inside).
    assert outer.code == Code.POST
    assert {o.number for o in outer.opt.option_list()} == {OptionNumber.URI_HOST, OptionNumber.OSCORE}
    assert outer.opt.uri_host == "sensors.example"
    assert b"room 1" not in datagram and b'{"t":1}' not in datagram and b"a=1" not in datagram
    inner, _ = server.unprotect(outer)
    assert (inner.code, inner.opt.uri_path, inner.opt.uri_query, inner.opt.content_format, inner.payload) == (
        Code.PUT,
        ("base", "room 1"),
        ("a=1",),
        50,
        b'{"t":1}',
    )
    assert outcome.calls == []


def test_the_inner_response_is_the_answer(client, server) -> None:
    ep, _, link, outcome = protected(client, host=None)
    request = received(link.sent[0][1])
    _, request_id = server.unprotect(request)
    ep.datagram_received(
        reply(
            server, request, request_id, aiocoap.Message(code=Code.CREATED, payload=b"ok", content_format=0)
        )
    )
    assert outcome.response == (int(Code.CREATED), b"ok", 0)


def test_a_retransmission_repeats_the_protected_datagram(client) -> None:
    _ep, loop, link, _ = protected(client)
    loop.advance(2.6)
    assert len(link.sent) == 2 and link.sent[0][1] == link.sent[1][1]  # same ID, same sequence number
    assert client.next_sequence_number == 1


def test_an_unprotected_answer_is_no_delivery(client) -> None:
    ep, _, link, outcome = protected(client)
    sent = wire.decode(link.sent[0][1])
    ep.datagram_received(wire.encode(wire.ACK, int(Code.CHANGED), sent.mid, sent.token, b"", b""))
    error = outcome.error
    assert isinstance(error, OscoreError) and error.code == int(Code.CHANGED) and not error.retriable
    assert "without OSCORE protection" in str(error)


def test_the_servers_unprotected_replay_error_says_why(client) -> None:
    ep, _, link, outcome = protected(client)
    sent = wire.decode(link.sent[0][1])
    ep.datagram_received(
        wire.encode(wire.ACK, int(Code.UNAUTHORIZED), sent.mid, sent.token, b"", b"Replay detected")
    )
    error = outcome.error
    assert isinstance(error, OscoreError) and error.code == int(Code.UNAUTHORIZED) and not error.retriable
    assert "4.01 Unauthorized without OSCORE protection (Replay detected)" in str(error)


def test_a_response_that_fails_verification_is_discarded(client, server) -> None:
    ep, _, link, outcome = protected(client)
    request = received(link.sent[0][1])
    _, request_id = server.unprotect(request)
    datagram = bytearray(reply(server, request, request_id, aiocoap.Message(code=Code.CHANGED)))
    datagram[-1] ^= 0x01  # one bit of the tag
    ep.datagram_received(bytes(datagram))
    error = outcome.error
    assert isinstance(error, OscoreError) and not error.retriable
    assert "failed OSCORE verification" in str(error) and "RFC 8613 §8.4" in str(error)


def test_an_echo_challenge_is_answered_once_with_a_new_sequence_number(client, server) -> None:
    ep, _, link, outcome = protected(client)
    first = received(link.sent[0][1])
    _, first_id = server.unprotect(first)
    challenge = aiocoap.Message(code=Code.UNAUTHORIZED, echo=b"\x05\x06fresh")
    ep.datagram_received(reply(server, first, first_id, challenge))
    assert outcome.calls == []
    second = received(link.sent[-1][1])
    assert second.mid != first.mid and second.token != first.token
    inner, request_id = server.unprotect(second)
    assert inner.opt.echo == b"\x05\x06fresh" and inner.payload == b'{"t":1}'
    assert request_id.partial_iv != first_id.partial_iv
    # A second challenge to the request that carried the Echo value: given up, not resent again.
    ep.datagram_received(reply(server, second, request_id, challenge))
    error = outcome.error
    assert isinstance(error, OscoreError) and error.code == int(Code.UNAUTHORIZED) and not error.retriable
    assert len(link.sent) == 2


def test_a_body_over_one_block_goes_in_inner_block1(client, server) -> None:
    body = bytes(range(256)) * 10  # 2560 bytes: three blocks of 1024
    ep, _, link, outcome = protected(client, payload=body)
    got = b""
    for number in range(3):
        request = received(link.sent[-1][1])
        assert request.opt.block1 is None  # no outer Block1: the body is split before protection
        inner, request_id = server.unprotect(request)
        assert inner.opt.block1.block_number == number
        assert (inner.opt.size1 == len(body)) == (number == 0)
        got += inner.payload
        more = inner.opt.block1.more
        answer = aiocoap.Message(code=Code.CONTINUE if more else Code.CHANGED, block1=inner.opt.block1)
        ep.datagram_received(reply(server, request, request_id, answer))
    assert got == body
    assert outcome.response.code == int(Code.CHANGED)


def test_an_exhausted_context_fails_without_sending(client) -> None:
    client.context.sender_sequence_number = MAX_SEQUENCE_NUMBER
    _ep, _, link, outcome = protected(client)
    assert link.sent == []
    assert "exhausted" in str(outcome.error) and "§7.2.1" in str(outcome.error)


# -- the sequence number (RFC 8613 §7.5) ---------------------------------------------------------------------


def persisted(directory: Path) -> int:
    return json.loads((directory / "sequence.json").read_text())["next-to-send"]


def test_every_sequence_number_is_persisted_before_it_is_used(pair: ContextPair) -> None:
    context = SecurityContext(str(pair.client))
    try:
        for _ in range(200):
            _, request_id = context.protect(aiocoap.Message(code=Code.PUT, uri_path=("r",)))
            used = int.from_bytes(request_id.partial_iv, "big")
            assert persisted(pair.client) > used  # a restart now starts above it
    finally:
        # Dropped without close(), as a SIGKILL leaves it: the next start skips ahead of every used number.
        context.context.lockfile.release()
        context.context.lockfile = None
        context.closed = True
    again = SecurityContext(str(pair.client))
    try:
        assert again.next_sequence_number > 199
    finally:
        again.close()
    assert persisted(pair.client) == again.next_sequence_number  # a clean stop writes back the exact next


def test_a_failed_persist_is_not_counted(pair: ContextPair, monkeypatch: pytest.MonkeyPatch) -> None:
    context = SecurityContext(str(pair.client))
    try:
        context.protect(aiocoap.Message(code=Code.PUT))  # 0 used, 10 persisted
        for _ in range(9):
            context.protect(aiocoap.Message(code=Code.PUT))  # up to 9
        real_replace = os.replace

        def full_disk(*args: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", full_disk)
        with pytest.raises(OscoreError, match="could not be persisted") as info:
            context.protect(aiocoap.Message(code=Code.PUT))
        assert info.value.retriable
        with pytest.raises(OscoreError):  # still not persisted: still refused (aiocoap would hand out 11..)
            context.protect(aiocoap.Message(code=Code.PUT))
        monkeypatch.setattr(os, "replace", real_replace)
        _, request_id = context.protect(aiocoap.Message(code=Code.PUT))
        assert persisted(pair.client) > int.from_bytes(request_id.partial_iv, "big")
    finally:
        context.close()


def test_a_context_is_used_by_one_process_at_a_time(pair: ContextPair) -> None:
    first = SecurityContext(str(pair.client))
    try:
        with pytest.raises(ConfigError) as info:
            SecurityContext(str(pair.client))
        assert info.value.key == "connect.coap.oscore.context"
        assert "lock" in str(info.value) and "in use by another process" in str(info.value)
    finally:
        first.close()


def test_one_directory_named_twice_is_one_context(pair: ContextPair) -> None:
    contexts = open_contexts([str(pair.client), str(pair.client) + "/", None, ""])
    try:
        assert len({id(c) for c in contexts.values()}) == 1
    finally:
        oscore.close_contexts(contexts)


def test_persistent_context_fsyncs_the_directory(pair: ContextPair, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    context = PersistentContext(str(pair.client))
    try:
        context.protect(aiocoap.Message(code=Code.PUT))
        assert len(synced) >= 2  # the file, then the directory
    finally:
        context.release()


# -- the context directory -----------------------------------------------------------------------------------


def error_for(directory: str) -> str:
    with pytest.raises(ValueError) as info:
        check_context_directory(directory)
    return str(info.value)


def test_a_good_directory_passes(pair: ContextPair) -> None:
    check_context_directory(str(pair.client))
    check_context_directory("")  # none


def test_missing_directory(tmp_path: Path) -> None:
    assert "no such directory" in error_for(str(tmp_path / "nowhere"))


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert "is not a directory" in error_for(str(tmp_path / "f"))


def test_empty_directory(tmp_path: Path) -> None:
    assert "neither settings.json nor secret.json" in error_for(str(tmp_path))


def test_invalid_json_names_the_file(pair: ContextPair) -> None:
    (pair.client / "secret.json").write_text('{"secret_hex": ')
    assert error_for(str(pair.client)) == f"{pair.client / 'secret.json'}: not valid JSON (line 1, column 16)"


def test_unreadable_file_names_it(pair: ContextPair) -> None:
    (pair.client / "settings.json").unlink()
    (pair.client / "settings.json").mkdir()  # cannot be read, even by root
    assert error_for(str(pair.client)).startswith(f"{pair.client / 'settings.json'}: cannot be read")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"recipient-id_hex": "00"}, "sender-id is missing"),
        ({"sender-id_hex": "01", "recipient-id_hex": "0g"}, "recipient-id_hex is not hexadecimal"),
        ({"sender-id_hex": "01", "recipient-id_hex": "01"}, "sender-id and recipient-id are the same"),
        ({"sender-id_hex": "01", "recipient-id_hex": "02", "colour": 1}, "unknown field 'colour'"),
        ({"sender-id_hex": "01", "recipient-id_hex": "02", "algorithm": "DES"}, "not an AEAD algorithm"),
        ({"sender-id_hex": "01" * 8, "recipient-id_hex": "02"}, "sender-id is longer than 7 bytes"),
        ({"sender-id": 1, "recipient-id_hex": "02"}, "sender-id must be given as sender-id_hex"),
        ({"sender-id_hex": "01", "recipient-id_hex": "02", "secret_hex": "00"}, "secret is given twice"),
    ],
)
def test_wrong_fields(pair: ContextPair, settings: dict, expected: str) -> None:
    (pair.client / "settings.json").write_text(json.dumps(settings))
    message = error_for(str(pair.client))
    assert expected in message
    assert pair.secret_hex not in message


def test_a_broken_sequence_file(pair: ContextPair) -> None:
    (pair.client / "sequence.json").write_text('{"next-to-send": -1, "received": "unknown"}')
    assert "sequence.json: next-to-send is not a sequence number" in error_for(str(pair.client))


def test_an_unknown_replay_window_stays_unknown_after_a_clean_stop(pair: ContextPair) -> None:
    """A context provisioned with "received": "unknown" starts again after the worker stopped cleanly
    (aiocoap alone would write a replay window of nulls on close that no start can read)."""
    (pair.client / "sequence.json").write_text('{"next-to-send": 5, "received": "unknown"}')
    SecurityContext(str(pair.client)).close()
    persisted = json.loads((pair.client / "sequence.json").read_text())
    assert persisted == {"next-to-send": 5, "received": "unknown"}
    check_context_directory(str(pair.client))
    again = SecurityContext(str(pair.client))
    assert again.next_sequence_number == 5
    again.close()


def test_settings_name_the_key_and_the_file(pair: ContextPair) -> None:
    (pair.client / "settings.json").write_text("[")
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping({**BASE, "connect.coap.oscore.context": str(pair.client)})
    assert info.value.key == "connect.coap.oscore.context"
    assert str(pair.client / "settings.json") in str(info.value)


def test_a_statement_property_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping(
            {
                **BASE,
                "connect.coap.kcql": f"INSERT INTO r SELECT * FROM t PROPERTIES(oscore.context={tmp_path}/x)",
            }
        )
    assert "oscore.context" in str(info.value) and "no such directory" in str(info.value)


def test_which_requests_a_context_protects(pair: ContextPair) -> None:
    worker = RequestOptions(oscore_context=str(pair.client))
    assert worker.overridden(()).oscore_context == str(pair.client)
    # A statement with its own server gets none of the worker's server's context, unless it names one.
    assert worker.overridden((("uri", "coap://other:5683"),)).oscore_context is None
    both = (("uri", "coap://other:5683"), ("oscore.context", str(pair.server)))
    assert worker.overridden(both).oscore_context == str(pair.server)
    assert worker.overridden((("oscore.context", ""),)).oscore_context is None
    settings = Settings.from_mapping({**BASE, "connect.coap.oscore.context": str(pair.client)})
    assert RequestOptions.from_values(settings.values).oscore_context == str(pair.client)


def test_no_secret_in_repr_or_describe(pair: ContextPair, client: SecurityContext) -> None:
    settings = Settings.from_mapping({**BASE, "connect.coap.oscore.context": str(pair.client)})
    shown = repr(client) + repr(client.context) + str(settings.describe())
    assert pair.secret_hex not in shown and str(pair.client) in shown
