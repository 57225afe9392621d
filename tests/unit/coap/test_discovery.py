"""The pure parts of discoverIP4/discoverIP6 (the multicast itself: tests/netns/test_discovery.py)."""

from __future__ import annotations

import asyncio
import socket

import aiocoap
import pytest
from aiocoap.numbers.codes import Code

from streamapp.coap.discovery import _Answers, discovered_uri
from streamapp.config.settings import Settings
from streamapp.config.uris import GROUPS, discovery_group
from streamapp.engine.pipeline import Route
from streamapp.errors import ConfigError

KCQL = "INSERT INTO a SELECT * FROM t"


@pytest.mark.parametrize(
    ("uri", "group"),
    [
        ("coap://discoverIP4:5683", "224.0.1.187"),
        ("coap://DISCOVERIP4", "224.0.1.187"),
        ("coap://discoverIP6:5683/base", "ff05::fd"),
        ("coap://discover.example:5683", None),
        ("coap://127.0.0.1", None),
    ],
)
def test_only_the_two_words_mean_discovery(uri: str, group: str | None) -> None:
    found = discovery_group(uri)
    assert (found.address if found else None) == group


def test_the_found_address_replaces_the_word_and_keeps_port_and_path() -> None:
    assert (
        discovered_uri("coap://discoverIP4:5683/base/x", ("10.0.0.7", 5683)) == "coap://10.0.0.7:5683/base/x"
    )
    assert (
        discovered_uri("coap://discoverIP6:5683", ("2001:db8::5", 5683, 0, 0)) == "coap://[2001:db8::5]:5683"
    )
    lo = socket.if_nametoindex("lo")
    assert discovered_uri("coap://discoverIP6", ("fe80::1", 5683, 0, lo)) == "coap://[fe80::1%lo]:5683"


def test_coaps_discovery_is_refused_at_start_naming_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping({"connect.coap.uri": "coaps://discoverIP4:5684", "connect.coap.kcql": KCQL})
    assert info.value.key == "connect.coap.uri"
    assert "DTLS has no multicast" in str(info.value)


@pytest.mark.parametrize(
    "kcql",
    [
        "INSERT INTO a SELECT * FROM t PROPERTIES(uri='coap://discoverIP4:5683')",
        "INSERT INTO 'coap://discoverIP6:5683/a' SELECT * FROM t",
    ],
)
def test_a_statement_server_cannot_be_discovered(kcql: str) -> None:
    settings = Settings.from_mapping({"connect.coap.uri": "coap://127.0.0.1", "connect.coap.kcql": kcql})
    with pytest.raises(ConfigError) as info:
        Route.compile(settings.statements[0])
    assert info.value.key == "connect.coap.kcql"
    assert "statement 1" in str(info.value) and "for connect.coap.uri only" in str(info.value)


def _answer(token: bytes, code: Code) -> bytes:
    message = aiocoap.Message(code=code, payload=b"</a>")
    message.mtype, message.mid, message.token = aiocoap.NON, 1, token
    return message.encode()


async def test_only_a_2_05_with_the_requests_token_is_an_answer() -> None:
    answered: asyncio.Future[tuple] = asyncio.get_running_loop().create_future()
    answers = _Answers(b"tok12345", answered)
    answers.datagram_received(b"\xff garbage", ("10.0.0.1", 5683))
    answers.datagram_received(_answer(b"other", Code.CONTENT), ("10.0.0.2", 5683))
    answers.datagram_received(_answer(b"tok12345", Code.NOT_FOUND), ("10.0.0.3", 5683))
    assert not answered.done()
    answers.datagram_received(_answer(b"tok12345", Code.CONTENT), ("10.0.0.4", 5683))
    answers.datagram_received(_answer(b"tok12345", Code.CONTENT), ("10.0.0.5", 5683))
    assert answered.result() == ("10.0.0.4", 5683)


def test_the_groups_are_all_coap_nodes() -> None:
    assert {g.address for g in GROUPS.values()} == {"224.0.1.187", "ff05::fd"}
