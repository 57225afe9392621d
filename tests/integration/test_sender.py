"""CoapSender against real servers: what counts as delivered, and how every failure is classified."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiocoap.numbers.codes import Code

from streamapp.coap import exchange
from streamapp.coap import sender as sender_module
from streamapp.coap.request_options import RequestOptions
from streamapp.coap.sender import CoapSender
from streamapp.errors import DeliveryError
from streamapp.records import Answer, RecordCoordinates
from streamapp_harness.libcoap import LibcoapServer
from streamapp_harness.process import free_port
from tests.recording_server import RecordingCoapServer

WHERE = RecordCoordinates("readings", 0, 12)


async def started(uri: str, **options: object) -> CoapSender:
    sender = CoapSender(uri, RequestOptions(**options))  # type: ignore[arg-type]
    await sender.start()
    return sender


@pytest.fixture
async def sender(recorder: RecordingCoapServer) -> AsyncIterator[CoapSender]:
    s = await started(recorder.uri + "/base", timeout_s=5.0)
    yield s
    await s.stop()


async def test_put_json_to_base_path_plus_resource(sender: CoapSender, recorder: RecordingCoapServer) -> None:
    code = await sender.send(("sensors", "room 1"), b'{"t":1}', WHERE)
    assert code == Code.CHANGED
    (req,) = recorder.requests
    assert (req.method, req.path, req.payload, req.content_format, req.mtype) == (
        "PUT",
        "/base/sensors/room 1",
        b'{"t":1}',
        50,
        "CON",
    )


async def test_submit_gives_the_whole_answer_for_a_reply(
    sender: CoapSender, recorder: RecordingCoapServer
) -> None:
    recorder.set_response("base/lamp", Code.CONTENT, payload=b'{"on":true}', content_format=50)
    recorder.set_response("base/gone", Code.NOT_FOUND, payload=b"no such lamp", content_format=0)
    answer = await sender.submit(("lamp",), b"{}", WHERE)
    assert (answer.dotted, answer.payload, answer.content_format) == ("2.05", b'{"on":true}', 50)
    with pytest.raises(DeliveryError) as refused:
        await sender.submit(("gone",), b"{}", WHERE)
    assert refused.value.answer == Answer(0x84, b"no such lamp", 0)
    assert sender.resource_uri(("lamp",)) == recorder.uri + "/base/lamp"


async def test_post_non_still_awaits_the_response(recorder: RecordingCoapServer) -> None:
    sender = await started(recorder.uri, method="POST", confirmable=False, content_format=60, timeout_s=5.0)
    try:
        assert (await sender.send(("a",), b"x", WHERE)).is_successful()
    finally:
        await sender.stop()
    (req,) = recorder.requests
    assert (req.method, req.mtype, req.content_format) == ("POST", "NON", 60)


@pytest.mark.parametrize(
    ("code", "dotted", "retriable"),
    [
        (Code.NOT_FOUND, "4.04", False),
        (Code.BAD_REQUEST, "4.00", False),
        (Code.UNSUPPORTED_CONTENT_FORMAT, "4.15", False),
        (Code.TOO_MANY_REQUESTS, "4.29", True),
        (Code.REQUEST_ENTITY_INCOMPLETE, "4.08", True),
        (Code.INTERNAL_SERVER_ERROR, "5.00", True),
        (Code.SERVICE_UNAVAILABLE, "5.03", True),
    ],
)
async def test_non_2xx_is_a_classified_delivery_error(
    sender: CoapSender, recorder: RecordingCoapServer, code: Code, dotted: str, retriable: bool
) -> None:
    recorder.set_response("/base/dev", code)
    with pytest.raises(DeliveryError) as info:
        await sender.send(("dev",), b"{}", WHERE)
    err = info.value
    assert (err.code, err.retriable, err.resource) == (dotted, retriable, "dev")
    assert str(err).startswith(f"record readings/0@12: {recorder.uri}/base/dev answered {dotted}")


async def test_timeout_is_retriable_and_names_the_uri(recorder: RecordingCoapServer) -> None:
    recorder.set_delay(3)
    sender = await started(recorder.uri, timeout_s=0.3)
    try:
        with pytest.raises(DeliveryError, match=r"no response from coap://.*/slow within 0\.3 s") as info:
            await sender.send(("slow",), b"{}", WHERE)
    finally:
        await sender.stop()
    assert info.value.retriable and info.value.code is None


async def test_nobody_listening_is_retriable() -> None:
    sender = await started(f"coap://127.0.0.1:{free_port('udp')}", timeout_s=3.0)
    try:
        with pytest.raises(DeliveryError) as info:
            await sender.send(("x",), b"{}", WHERE)
    finally:
        await sender.stop()
    assert info.value.retriable and info.value.code is None


async def test_a_silent_server_gets_exactly_max_retransmit_plus_one_transmissions() -> None:
    """ACK_TIMEOUT and MAX_RETRANSMIT reach aiocoap: the silent peer counts the datagrams, and the error names
    the keys that bound the exchange."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.settimeout(0)
    port = silent.getsockname()[1]
    sender = await started(f"coap://127.0.0.1:{port}", ack_timeout_s=0.1, max_retransmit=2)
    try:
        started_at = time.monotonic()
        with pytest.raises(DeliveryError) as info:
            await sender.send(("quiet",), b"{}", WHERE)
        took = time.monotonic() - started_at
    finally:
        await sender.stop()
        datagrams = []
        with contextlib.suppress(BlockingIOError):
            while True:
                datagrams.append(silent.recv(2048))
        silent.close()
    message = str(info.value)
    assert "to 3 transmissions of a confirmable request" in message
    assert "connect.coap.max.retransmit=2" in message and "connect.coap.ack.timeout=100 ms" in message
    assert info.value.retriable
    assert len(datagrams) == 3 and len(set(datagrams)) == 1, datagrams  # the same CON message, sent 3 times
    # waits of 0.1-0.15, 0.2-0.3 and 0.4-0.6 s (0.7 s at least); MAX_TRANSMIT_WAIT of these is 1.05 s: aiocoap
    # gives up by then, before the sender's own timeout (1.15 s), even with the largest random factor
    assert 0.65 <= took < 5, took


def test_the_default_timeout_is_max_transmit_wait_of_the_transmission_parameters_and_one_ack_timeout() -> (
    None
):
    assert RequestOptions().response_timeout_s == pytest.approx(93.0 + 2.0)
    assert RequestOptions(ack_timeout_s=0.5, max_retransmit=8).response_timeout_s == pytest.approx(
        383.25 + 0.5
    )
    assert RequestOptions(timeout_s=5.0, max_retransmit=8).response_timeout_s == 5.0
    properties = (("ack.timeout", "1000"), ("max.retransmit", "1"))
    assert RequestOptions().overridden(properties).response_timeout_s == pytest.approx(4.5 + 1.0)


async def test_the_server_is_resolved_once_and_again_after_a_failure(
    recorder: RecordingCoapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolutions = []
    resolve = exchange.resolve

    async def counted(host: str, port: int) -> tuple[object, ...]:
        resolutions.append((host, port))
        return await resolve(host, port)

    monkeypatch.setattr(exchange, "resolve", counted)
    sender = await started(recorder.uri, timeout_s=0.5)
    try:
        for n in range(20):
            await sender.send(("r", str(n)), b"{}", WHERE)
        assert len(resolutions) == 1, resolutions
        recorder.set_delay(2)
        with pytest.raises(DeliveryError, match=r"within 0\.5 s"):
            await sender.send(("slow",), b"{}", WHERE)
        recorder.set_delay(0)
        for n in range(5):
            await sender.send(("again", str(n)), b"{}", WHERE)
    finally:
        await sender.stop()
    # the first request's, then none until the timeout made the sender forget the address, then one more
    assert resolutions == [("127.0.0.1", recorder.port)] * 2, resolutions
    assert len([r for r in recorder.requests if r.path.startswith("/r/")]) == 20


@pytest.mark.parametrize("size", [1024, 1025, 5000])
async def test_a_body_larger_than_one_block_goes_block_wise(libcoap_server: LibcoapServer, size: int) -> None:
    body = json.dumps({"blob": "x" * (size - 12)}).encode()
    assert len(body) == size
    sender = await started(libcoap_server.uri, timeout_s=5.0)
    try:
        await sender.send(("big", str(size)), body, WHERE)
    finally:
        await sender.stop()
    assert libcoap_server.get(f"big/{size}") == body


async def test_libcoap_creates_then_changes(libcoap_server: LibcoapServer) -> None:
    sender = await started(libcoap_server.uri, timeout_s=5.0)
    try:
        assert await sender.send(("dev", "1"), b'{"v":1}', WHERE) == Code.CREATED
        assert await sender.send(("dev", "1"), b'{"v":2}', WHERE) == Code.CHANGED
    finally:
        await sender.stop()
    assert libcoap_server.get("dev/1") == b'{"v":2}'


async def test_every_message_id_is_counted_on_its_endpoint(recorder: RecordingCoapServer) -> None:
    sender = CoapSender(recorder.uri, RequestOptions(timeout_s=5.0))
    await sender.start()
    try:
        for i in range(3):
            await sender.send(("a",), b'{"n":%d}' % i, WHERE)
        await sender.send(("big",), b"x" * 3000, WHERE)  # 3 blocks of 1024 bytes: 3 messages
    finally:
        ids = sender.message_ids
        endpoints = sender.endpoints
        await sender.stop()
    assert (ids, endpoints) == (6, 1)
    assert len(recorder.requests) == 4


async def test_statement_servers_idle_for_exchange_lifetime_are_closed_and_reopened_on_use(
    recorder: RecordingCoapServer,
) -> None:
    sender = CoapSender(recorder.uri, RequestOptions(timeout_s=5.0), lifetime_s=0.2)
    await sender.start()
    try:
        first, second = f"{recorder.uri}/gw1", f"{recorder.uri}/gw2"
        await sender.send(("a",), b"1", WHERE, server=first)
        await sender.send(("a",), b"2", WHERE, server=second)
        assert sender.endpoints == 2
        await sender.close_idle_servers()  # used within the lifetime: kept
        assert sender.endpoints == 2
        await asyncio.sleep(0.25)
        await sender.send(("a",), b"3", WHERE, server=second)
        await sender.close_idle_servers()
        assert sender.endpoints == 1  # gw1 closed, gw2 just used
        assert (await sender.send(("a",), b"4", WHERE, server=first)).is_successful()
        assert sender.endpoints == 2
        assert [r.payload for r in recorder.requests] == [b"1", b"2", b"3", b"4"]
    finally:
        await sender.stop()


async def test_beyond_the_open_server_limit_the_least_recently_used_idle_server_is_closed(
    recorder: RecordingCoapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sender_module, "MAX_OPEN_SERVERS", 2)
    sender = await started(recorder.uri, timeout_s=5.0)
    try:
        for n in (1, 2, 3):
            await sender.send(("a",), str(n).encode(), WHERE, server=f"{recorder.uri}/gw{n}")
        async with asyncio.timeout(5):  # the close of gw1 runs as its own task
            while sender.endpoints != 2:
                await asyncio.sleep(0.01)
        assert sender._servers.keys() == {f"{recorder.uri}/gw2", f"{recorder.uri}/gw3"}
        assert len(recorder.requests) == 3
    finally:
        await sender.stop()


async def test_servers_opened_in_one_burst_at_the_limit_each_close_a_different_idle_one(
    recorder: RecordingCoapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two new servers addressed before any close has run (back to back, no await between) must not pick
    the same idle server twice."""
    monkeypatch.setattr(sender_module, "MAX_OPEN_SERVERS", 2)
    sender = await started(recorder.uri, timeout_s=5.0)
    try:
        for n in (1, 2):
            await sender.send(("a",), str(n).encode(), WHERE, server=f"{recorder.uri}/gw{n}")
        for n in (3, 4):
            sender._server(f"{recorder.uri}/gw{n}", WHERE, ("a",))
        closes = list(sender._closing)  # the closes run as their own tasks; none of them may fail
        async with asyncio.timeout(5):
            results = await asyncio.gather(*closes, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert sender._servers.keys() == {f"{recorder.uri}/gw3", f"{recorder.uri}/gw4"}
        for n in (3, 4):
            assert (
                await sender.send(("a",), str(n).encode(), WHERE, server=f"{recorder.uri}/gw{n}")
            ).is_successful()
        assert len(recorder.requests) == 4
    finally:
        await sender.stop()
