"""CoapSender against real servers: what counts as delivered, and how every failure is classified."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiocoap.numbers.codes import Code

from streamapp.coap.sender import CoapSender, RequestOptions
from streamapp.errors import DeliveryError, RecordCoordinates
from streamapp.peers import LibcoapServer, free_port
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


async def test_libcoap_creates_then_changes(libcoap_server: LibcoapServer) -> None:
    sender = await started(libcoap_server.uri, timeout_s=5.0)
    try:
        assert await sender.send(("dev", "1"), b'{"v":1}', WHERE) == Code.CREATED
        assert await sender.send(("dev", "1"), b'{"v":2}', WHERE) == Code.CHANGED
    finally:
        await sender.stop()
    assert libcoap_server.get("dev/1") == b'{"v":2}'
