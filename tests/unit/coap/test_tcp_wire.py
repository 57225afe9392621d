"""The CoAP-over-TCP message format (streamapp/coap/tcp_wire.py, RFC 8323 §3.2) against aiocoap's own TCP
framing (aiocoap/transports/tcp.py: ``_serialize``, ``_encode_length``, ``_extract_message_size``,
``_decode_message``): the same bytes for every request the sink can make, the same length reading, the same
decoding; the extended lengths at each boundary; the signaling messages (§5)."""

from __future__ import annotations

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.transports import tcp as aiocoap_tcp
from hypothesis import given
from hypothesis import strategies as st

from streamapp.coap import tcp_wire, wire

segments = st.text(max_size=300)
paths = st.lists(segments, max_size=6).map(tuple)
queries = st.lists(st.text(max_size=40), max_size=3).map(tuple)
content_formats = st.none() | st.sampled_from([0, 42, 50, 60, 11542, 65535])
# Past 12, 268 and 65 804 bytes the length takes one, two and four more bytes.
payloads = st.binary(max_size=300) | st.integers(65_780, 65_830).map(lambda n: b"\xa5" * n)
tokens = st.binary(min_size=0, max_size=8)
hosts = st.none() | st.sampled_from(["localhost", "coap.example"])


def aiocoap_message(
    code: int,
    token: bytes,
    host: str | None,
    path: tuple[str, ...],
    content_format: int | None,
    query: tuple[str, ...],
    payload: bytes,
    **options: object,
) -> aiocoap.Message:
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
    message.token = token
    return message


@given(
    st.sampled_from([int(Code.PUT), int(Code.POST), int(Code.DELETE)]),
    tokens,
    hosts,
    paths,
    content_formats,
    queries,
    payloads,
)
def test_a_request_is_byte_identical_to_aiocoaps_tcp_serialization(
    code: int,
    token: bytes,
    host: str | None,
    path: tuple[str, ...],
    content_format: int | None,
    query: tuple[str, ...],
    payload: bytes,
) -> None:
    options = wire.encode_options(host, path, content_format, query)
    ours = tcp_wire.encode(code, token, options, payload)
    theirs = aiocoap_tcp._serialize(aiocoap_message(code, token, host, path, content_format, query, payload))
    assert ours == theirs
    assert tcp_wire.message_size(len(token), len(options), len(payload)) == len(ours)
    # The length as aiocoap reads it: header + token + options and payload, the whole message.
    assert tcp_wire.frame_size(ours) == sum(aiocoap_tcp._extract_message_size(ours)) == len(ours)


@given(tokens, paths, st.integers(0, 2000), st.booleans(), st.sampled_from([0, 3, 6]), payloads)
def test_a_block1_request_is_byte_identical_to_aiocoaps(
    token: bytes, path: tuple[str, ...], number: int, more: bool, szx: int, payload: bytes
) -> None:
    options = wire.encode_options(None, path, 50, ())
    last = wire.last_option(None, path, 50, ())
    block = wire.block_options(
        last, wire.block_value(number, more, szx), len(payload) if number == 0 else None
    )
    ours = tcp_wire.encode(int(Code.PUT), token, options + block, payload)
    extra: dict[str, object] = {"block1": aiocoap.optiontypes.BlockOption.BlockwiseTuple(number, more, szx)}
    if number == 0:
        extra["size1"] = len(payload)
    theirs = aiocoap_tcp._serialize(
        aiocoap_message(int(Code.PUT), token, None, path, 50, (), payload, **extra)
    )
    assert ours == theirs


@given(
    st.sampled_from([int(Code.CHANGED), int(Code.CONTENT), int(Code.NOT_FOUND), 0x5F, 0x8D]),
    tokens,
    content_formats,
    st.none() | st.tuples(st.integers(0, 1000), st.booleans(), st.integers(0, 6)),
    payloads,
)
def test_a_response_decodes_as_aiocoap_decodes_it(
    code: int,
    token: bytes,
    content_format: int | None,
    block1: tuple[int, bool, int] | None,
    payload: bytes,
) -> None:
    message = aiocoap.Message(code=Code(code), payload=payload, content_format=content_format)
    message.token = token
    if block1 is not None:
        message.opt.block1 = aiocoap.optiontypes.BlockOption.BlockwiseTuple(*block1)
    frame = aiocoap_tcp._serialize(message)
    ours = tcp_wire.decode(frame)
    theirs = aiocoap_tcp._decode_message(frame)
    assert ours is not None
    assert (ours.code, ours.token, ours.payload) == (int(theirs.code), theirs.token, theirs.payload)
    assert ours.uint(wire.CONTENT_FORMAT) == (
        None if theirs.opt.content_format is None else int(theirs.opt.content_format)
    )
    expected_block1 = None if block1 is None else wire.block_value(*block1)
    assert ours.uint(wire.BLOCK1) == expected_block1
    assert [n for n, _ in ours.options] == [int(o.number) for o in theirs.opt.option_list()]


@pytest.mark.parametrize(
    ("length", "nibble", "extended"),
    [
        (0, 0, b""),
        (12, 12, b""),
        (13, 13, b"\x00"),
        (268, 13, b"\xff"),
        (269, 14, b"\x00\x00"),
        (65_804, 14, b"\xff\xff"),
        (65_805, 15, b"\x00\x00\x00\x00"),
        (70_000, 15, (70_000 - 65_805).to_bytes(4, "big")),
    ],
)
def test_the_length_field_at_each_boundary(length: int, nibble: int, extended: bytes) -> None:
    assert tcp_wire.length_field(length) == (nibble, extended) == aiocoap_tcp._encode_length(length)
    # options, payload marker and payload of exactly `length` bytes (one empty option for 1)
    options, payload = (b"\x10", b"") if length == 1 else (b"", b"x" * max(0, length - 1))
    frame = tcp_wire.encode(0x45, b"\x01\x02", options, payload)
    assert frame[0] == nibble << 4 | 2
    assert frame[1 : 1 + len(extended)] == extended
    assert tcp_wire.frame_size(frame) == len(frame)
    decoded = tcp_wire.decode(frame)
    assert decoded is not None and decoded.code == 0x45 and decoded.token == b"\x01\x02"


def test_the_size_is_unknown_until_the_extended_length_is_complete() -> None:
    frame = tcp_wire.encode(0x45, b"", b"", b"x" * 70_000)
    for cut in range(5):
        assert tcp_wire.frame_size(frame[:cut]) is None
    assert tcp_wire.frame_size(frame[:5]) == len(frame)
    assert tcp_wire.frame_size(b"\x00" + frame, 1) == len(frame)


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (bytes((0x09, 0x45)) + b"\x00" * 9, "a TKL over 8 (§3.2)"),
        (bytes((0x10, 0x45, 0xFF)), "a payload marker without a payload"),
        (bytes((0x10, 0x45, 0xF0)), "the reserved delta 15"),
        (bytes((0x20, 0x45, 0xD1, 0x01)), "an option longer than the message"),
        (bytes((0x30, 0x45)), "a frame shorter than its length"),
    ],
)
def test_a_message_that_breaks_the_format_is_none(frame: bytes, why: str) -> None:
    assert tcp_wire.decode(frame) is None, why


def test_signaling_messages() -> None:
    """CSM, Ping, Pong, Release and Abort as aiocoap writes and reads them (§5)."""
    csm = tcp_wire.decode(tcp_wire.csm(1152, block_wise=True))
    assert csm is not None and csm.code == tcp_wire.CSM == int(Code.CSM)
    assert csm.uint(tcp_wire.MAX_MESSAGE_SIZE) == 1152
    assert csm.option(tcp_wire.BLOCK_WISE_TRANSFER) == b""
    theirs = aiocoap_tcp._decode_message(tcp_wire.csm(1 << 20))
    assert [(int(o.number), o.value) for o in theirs.opt.option_list()] == [(2, (1 << 20).to_bytes(3, "big"))]

    ping = aiocoap.Message(code=Code.PING)
    ping.token = b"\x07"
    assert tcp_wire.ping(b"\x07") == aiocoap_tcp._serialize(ping)
    pong = tcp_wire.decode(tcp_wire.pong(b"\x07", custody=True))
    assert pong is not None and (pong.code, pong.token, pong.option(tcp_wire.CUSTODY)) == (0xE3, b"\x07", b"")
    theirs_pong = aiocoap.Message(code=Code.PONG)
    theirs_pong.token = b"\x07"
    assert tcp_wire.pong(b"\x07") == aiocoap_tcp._serialize(theirs_pong)

    release = tcp_wire.decode(tcp_wire.release(hold_off_s=30))
    assert release is not None and (release.code, release.uint(tcp_wire.HOLD_OFF)) == (0xE4, 30)
    abort = tcp_wire.decode(tcp_wire.abort("bad CSM", bad_csm_option=9))
    assert abort is not None
    assert (abort.code, abort.uint(tcp_wire.BAD_CSM_OPTION), abort.payload) == (0xE5, 9, b"bad CSM")
    assert tcp_wire.critical(1) and not tcp_wire.critical(tcp_wire.MAX_MESSAGE_SIZE)
