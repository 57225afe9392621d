"""The CoAP message format of the exchange layer (streamapp/coap/wire.py), against aiocoap's own encoder and
decoder: the same bytes for every request the sink can make, the same reading of every response."""

from __future__ import annotations

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type
from hypothesis import given
from hypothesis import strategies as st

from streamapp.coap import wire

segments = st.text(max_size=300)  # past 12 and 268 bytes the length takes one and two more bytes
paths = st.lists(segments, max_size=6).map(tuple)
queries = st.lists(st.text(max_size=40), max_size=3).map(tuple)
content_formats = st.none() | st.sampled_from([0, 42, 50, 60, 11542, 65535])
payloads = st.binary(max_size=1100)
tokens = st.binary(min_size=0, max_size=8)
hosts = st.none() | st.sampled_from(["localhost", "coap.example", "a" * 40])


def aiocoap_request(
    mtype: int,
    code: int,
    mid: int,
    token: bytes,
    host: str | None,
    path: tuple[str, ...],
    content_format: int | None,
    query: tuple[str, ...],
    payload: bytes,
    **options: object,
) -> bytes:
    message = aiocoap.Message(
        code=Code(code),
        payload=payload,
        uri_path=path,
        uri_query=query,
        content_format=content_format,
        **options,
    )
    if host is not None:
        message.opt.uri_host = host
    message.mtype, message.mid, message.token = Type(mtype), mid, token
    return message.encode()


@given(
    st.sampled_from([wire.CON, wire.NON]),
    st.sampled_from([int(Code.PUT), int(Code.POST), int(Code.DELETE)]),
    st.integers(0, 0xFFFF),
    tokens,
    hosts,
    paths,
    content_formats,
    queries,
    payloads,
)
def test_a_request_is_the_bytes_aiocoap_encodes(
    mtype: int,
    code: int,
    mid: int,
    token: bytes,
    host: str | None,
    path: tuple[str, ...],
    content_format: int | None,
    query: tuple[str, ...],
    payload: bytes,
) -> None:
    cache = wire.OptionCache(host)
    options, _ = cache.get(path, query, content_format)
    ours = wire.encode(mtype, code, mid, token, options, payload)
    assert ours == aiocoap_request(mtype, code, mid, token, host, path, content_format, query, payload)
    assert cache.get(path, query, content_format)[0] is options, "the second time from the cache"


@given(
    st.integers(0, 0xFFFF),
    tokens,
    hosts,
    paths,
    content_formats,
    queries,
    st.integers(0, 0xFFFFF),
    st.booleans(),
    st.integers(0, 6),
    st.none() | st.integers(0, 1 << 24),
    payloads,
)
def test_block_options_are_the_bytes_aiocoap_encodes(
    mid: int,
    token: bytes,
    host: str | None,
    path: tuple[str, ...],
    content_format: int | None,
    query: tuple[str, ...],
    number: int,
    more: bool,
    szx: int,
    size1: int | None,
    payload: bytes,
) -> None:
    options, last = wire.OptionCache(host).get(path, query, content_format)
    block = wire.block_options(last, wire.block_value(number, more, szx), size1)
    ours = wire.encode(wire.CON, int(Code.PUT), mid, token, options + block, payload)
    expected = aiocoap_request(
        wire.CON,
        int(Code.PUT),
        mid,
        token,
        host,
        path,
        content_format,
        query,
        payload,
        block1=(number, more, szx),
        **({"size1": size1} if size1 is not None else {}),
    )
    assert ours == expected


def test_the_base_path_comes_before_the_resource() -> None:
    options, last = wire.OptionCache(None, ("api", "v1")).get(("dev", "7"), ("a=1",), 50)
    assert options == wire.encode_options(None, ("api", "v1", "dev", "7"), 50, ("a=1",))
    assert last == wire.URI_QUERY


def test_the_option_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "CACHED_OPTIONS", 3)
    cache = wire.OptionCache(None)
    for n in range(10):
        cache.get((str(n),), (), None)
    assert len(cache._cache) == 3
    assert cache.get(("9",), (), None)[0] == wire.encode_options(None, ("9",), None, ())


other_options = st.fixed_dictionaries(
    {},
    optional={
        "etag": st.binary(min_size=1, max_size=8),
        "location_path": st.lists(st.text(max_size=20), max_size=3).map(tuple),
        "max_age": st.integers(0, 1 << 32 - 1),
        "content_format": st.integers(0, 65535),
        "size2": st.integers(0, 1 << 20),
        "block1": st.tuples(st.integers(0, 0xFFFFF), st.booleans(), st.integers(0, 6)),
        "block2": st.tuples(st.integers(0, 0xFFFFF), st.booleans(), st.integers(0, 6)),
    },
)


@given(
    st.sampled_from(list(Type)),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    tokens,
    other_options,
    st.binary(max_size=200),
)
def test_a_datagram_reads_as_aiocoap_reads_it(
    mtype: Type, code: int, mid: int, token: bytes, options: dict[str, object], payload: bytes
) -> None:
    message = aiocoap.Message(code=Code(code), payload=payload, **options)
    message.mtype, message.mid, message.token = mtype, mid, token
    data = message.encode()
    ours = wire.decode(data)
    theirs = aiocoap.Message.decode(data)
    assert ours is not None
    assert (ours.mtype, ours.code, ours.mid, ours.token, ours.payload) == (
        int(theirs.mtype),
        int(theirs.code),
        theirs.mid,
        theirs.token,
        theirs.payload,
    )
    theirs_format = theirs.opt.content_format
    assert ours.content_format == (None if theirs_format is None else int(theirs_format))
    for ours_block, theirs_block in ((ours.block1, theirs.opt.block1), (ours.block2, theirs.opt.block2)):
        if theirs_block is None:
            assert ours_block is None
        else:
            assert ours_block == wire.block_value(*theirs_block)


@pytest.mark.parametrize(
    ("why", "data"),
    [
        ("too short", b"\x40\x44\x00"),
        ("version 0", b"\x00\x44\x00\x01"),
        ("version 2", b"\x80\x44\x00\x01"),
        ("token length 9", b"\x69\x44\x00\x01" + b"t" * 9),
        ("token cut short", b"\x64\x44\x00\x01ab"),
        ("a payload marker and no payload", b"\x60\x44\x00\x01\xff"),
        ("option delta 15", b"\x60\x44\x00\x01\xf1x"),
        ("option length 15", b"\x60\x44\x00\x01\x1fx"),
        ("extended delta cut", b"\x60\x44\x00\x01\xd0"),
        ("extended length cut", b"\x60\x44\x00\x01\x0e\x01"),
        ("option value cut", b"\x60\x44\x00\x01\xb5ab"),
    ],
)
def test_a_datagram_that_breaks_the_format_is_none(why: str, data: bytes) -> None:
    assert wire.decode(data) is None, why


def test_empty_ack_and_rst() -> None:
    assert wire.empty(wire.ACK, 0x1234) == b"\x60\x00\x12\x34"
    assert wire.empty(wire.RST, 0xBEEF) == b"\x70\x00\xbe\xef"
    ack = wire.decode(wire.empty(wire.ACK, 7))
    assert ack is not None and (ack.mtype, ack.code, ack.mid, ack.token, ack.payload) == (
        wire.ACK,
        0,
        7,
        b"",
        b"",
    )
