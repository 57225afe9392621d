"""CoAP servers that misbehave (issue 15): the sender stays within its time bound and every request ends
as delivered or as a located ``DeliveryError`` for the error policy; nothing hangs, nothing crashes.

The hostile server is a raw UDP socket on 127.0.0.1 that decodes requests with aiocoap's own parser and
answers as each test says: with a wrong token, a huge payload, an endless block-wise response, or a flood
of unsolicited datagrams to the client's port beside the right answer.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption

from streamapp.coap.request_options import RequestOptions
from streamapp.coap.sender import CoapSender
from streamapp.errors import DeliveryError
from streamapp.records import RecordCoordinates

WHERE = RecordCoordinates("readings", 3, 77)
Answer = Callable[[aiocoap.Message, tuple[str, int], asyncio.DatagramTransport], None]


class HostileServer(asyncio.DatagramProtocol):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = aiocoap.Message.decode(data)
        except Exception:
            return
        if request.mtype in (Type.ACK, Type.RST):
            return
        self.requests += 1
        assert self.transport is not None
        self.answer(request, addr, self.transport)

    @property
    def uri(self) -> str:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return f"coap://{host}:{port}"


def raw_message(
    mtype: Type, mid: int, code: Code, token: bytes = b"", payload: bytes = b""
) -> aiocoap.Message:
    """A message with its type, Message ID and token set by hand (as aiocoap's API says only a peer
    should; this one is hostile)."""
    message = aiocoap.Message(code=code, payload=payload)
    message.mtype, message.mid, message.token = mtype, mid, token
    return message


def reply(request: aiocoap.Message, code: Code, payload: bytes = b"", **fields: object) -> aiocoap.Message:
    """A piggybacked answer to a CON request (same Message ID and token), or a NON one."""
    message = raw_message(
        Type.ACK if request.mtype == Type.CON else Type.NON, request.mid, code, request.token, payload
    )
    for name, value in fields.items():
        setattr(message.opt, name, value)
    return message


@pytest.fixture
async def hostile() -> AsyncIterator[Callable[[Answer], asyncio.Future[HostileServer]]]:
    transports: list[asyncio.DatagramTransport] = []

    async def start(answer: Answer) -> HostileServer:
        loop = asyncio.get_running_loop()
        transport, server = await loop.create_datagram_endpoint(
            lambda: HostileServer(answer), local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        return server

    yield start  # type: ignore[misc]
    for transport in transports:
        transport.close()


async def sending(uri: str, **options: object) -> CoapSender:
    sender = CoapSender(uri, RequestOptions(**options))  # type: ignore[arg-type]
    await sender.start()
    return sender


async def test_an_answer_with_the_wrong_token_is_no_answer(hostile) -> None:
    def wrong_token(request: aiocoap.Message, addr, transport) -> None:
        answer = reply(request, Code.CHANGED)
        answer.token = bytes(b ^ 0xFF for b in request.token) or b"\x01"
        transport.sendto(answer.encode(), addr)

    server = await hostile(wrong_token)
    sender = await sending(server.uri, ack_timeout_s=0.1, max_retransmit=2, timeout_s=3.0)
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError) as info:
            await sender.send(("r",), b"{}", WHERE)
    finally:
        await sender.stop()
    assert time.monotonic() - started < 4.0
    assert info.value.retriable and info.value.where == WHERE and "readings/3@77" in str(info.value)


async def test_a_huge_response_payload_is_still_a_delivery(hostile) -> None:
    def huge(request: aiocoap.Message, addr, transport) -> None:
        transport.sendto(reply(request, Code.CHANGED, os.urandom(60_000)).encode(), addr)

    server = await hostile(huge)
    sender = await sending(server.uri, timeout_s=5.0)
    try:
        assert await sender.send(("r",), b"{}", WHERE) == Code.CHANGED
    finally:
        await sender.stop()


async def test_an_endless_block_wise_response_never_holds_a_request(hostile) -> None:
    """Every block of the response says more follows (Block2, more=1, forever). The sink never asks for a
    response's further blocks (exchange.py): the code of the first is the answer. A body of one block: its
    2.04 is the delivery. A larger body goes block-wise (Block1: three blocks, each answered 2.31): the 2.04
    to its last block is the delivery, and nothing more is asked for."""

    def endless(request: aiocoap.Message, addr, transport) -> None:
        if request.opt.block1 is not None and request.opt.block1.more:
            answer = reply(request, Code.CONTINUE, block1=request.opt.block1)
        else:
            number = request.opt.block2.block_number + 1 if request.opt.block2 is not None else 0
            block = BlockOption.BlockwiseTuple(number, True, 6)
            answer = reply(request, Code.CHANGED, b"x" * 1024, block2=block, block1=request.opt.block1)
        transport.sendto(answer.encode(), addr)

    server = await hostile(endless)
    sender = await sending(server.uri, timeout_s=2.0)
    started = time.monotonic()
    try:
        assert await sender.send(("r",), b"y" * 100, WHERE) == Code.CHANGED
        assert server.requests == 1
        assert await sender.send(("r",), b"y" * 3000, WHERE) == Code.CHANGED
    finally:
        await sender.stop()
    took = time.monotonic() - started
    assert took < 2.0, took
    assert server.requests == 1 + 3  # three Block1 blocks, no Block2 request


async def test_a_flood_of_unsolicited_datagrams_beside_the_answers_does_not_disturb_delivery(
    hostile,
) -> None:
    """Per request 100 datagrams to the client's port before the right answer: random bytes (some of
    them options aiocoap cannot decode), unsolicited responses with unknown tokens, RSTs and pings for
    Message IDs it never sent. Every request is delivered; an answer the flood pushed out of the socket's
    buffer is recovered by CoAP's own retransmission."""

    def junk(request: aiocoap.Message, i: int) -> bytes:
        mid = (request.mid + 1000 + i) % 65536
        kind = i % 4
        if kind == 0:
            return os.urandom(1 + i % 60)
        if kind == 1:
            return raw_message(Type.NON, mid, Code.CONTENT, os.urandom(4)).encode()
        return raw_message(Type.RST if kind == 2 else Type.CON, mid, Code.EMPTY).encode()

    def flood(request: aiocoap.Message, addr, transport) -> None:
        for i in range(100):
            transport.sendto(junk(request, i), addr)
        transport.sendto(reply(request, Code.CHANGED).encode(), addr)

    server = await hostile(flood)
    sender = await sending(server.uri, timeout_s=30.0)
    try:
        for n in range(30):
            assert await sender.send(("r", str(n)), b"{}", WHERE) == Code.CHANGED
    finally:
        await sender.stop()
    assert server.requests >= 30
