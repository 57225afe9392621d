"""streamapp's CoAP client (CoapSender: aiocoap + python-mbedtls 2.10.1 / Mbed TLS 2.28) against Eclipse
Californium 3.14.0 (californium-core + scandium, set up as cf-plugtest-server by
streamapp_harness/californium.py).

One Californium JVM serves the whole module: plain CoAP, and DTLS with a PSK store and a server certificate
from the test PKI (tests/certs.py), client certificates required (NEEDED) and checked against that PKI's CA.
Every case asserts the response CoapSender got and what Californium itself recorded (received.jsonl).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from aiocoap.numbers.codes import Code

from streamapp.coap.request_options import RequestOptions
from streamapp.coap.security import dtls_options
from streamapp.coap.sender import ONE_BLOCK, CoapSender
from streamapp.config.settings import Settings
from streamapp.errors import DeliveryError
from streamapp.records import RecordCoordinates
from streamapp_harness.californium import CaliforniumRequest, CaliforniumServer
from tests.certs import Pki

pytestmark = pytest.mark.slow

WHERE = RecordCoordinates("devices", 0, 7)
KCQL = "INSERT INTO r SELECT * FROM devices"
IDENTITY = "streamapp-device"
PSK = b"Sup3r-S3cret-PSK"
JSON = 50  # application/json, streamapp's default Content-Format


@pytest.fixture(scope="module")
def californium(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaliforniumServer]:
    with CaliforniumServer(
        psk_identities={IDENTITY: PSK, "someone-else": b"another secret"},
        cert=pki.server_cert,
        key=pki.server_key,
        trust=pki.ca,
        client_auth="NEEDED",
        workdir=tmp_path_factory.mktemp("californium"),
    ) as server:
        yield server


@asynccontextmanager
async def sender(uri: str, options: RequestOptions | None = None, **props: str) -> AsyncIterator[CoapSender]:
    """A started CoapSender for ``uri``; ``props`` are connect.coap.* keys (DTLS credentials, suites)."""
    settings = Settings.from_mapping({"connect.coap.uri": uri, "connect.coap.kcql": KCQL, **props})
    s = CoapSender(uri, options or RequestOptions(timeout_s=10.0), dtls_options(settings))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


def psk(suite: str) -> dict[str, str]:
    return {
        "connect.coap.username": IDENTITY,
        "connect.coap.password": PSK.decode(),
        "connect.coap.cipher.suites": suite,
    }


def new_requests(server: CaliforniumServer, before: int) -> list[CaliforniumRequest]:
    return server.received()[before:]


async def test_plain_con_put_and_post(californium: CaliforniumServer) -> None:
    before = len(californium.received())
    async with sender(californium.uri) as s:
        assert await s.send(("test",), b'{"n":1}', WHERE) == Code.CHANGED
        assert await s.send(("create1",), b'{"n":2}', WHERE) == Code.CREATED
        assert await s.send(("large-update",), b'{"n":3}', WHERE) == Code.CHANGED
    async with sender(californium.uri, RequestOptions(method="POST", timeout_s=10.0)) as s:
        assert await s.send(("large-create",), b'{"n":4}', WHERE) == Code.CREATED
    got = [
        (r.scheme, r.type, r.method, r.path, r.content_format, r.payload)
        for r in new_requests(californium, before)
    ]
    assert got == [
        ("coap", "CON", "PUT", "/test", JSON, b'{"n":1}'),
        ("coap", "CON", "PUT", "/create1", JSON, b'{"n":2}'),
        ("coap", "CON", "PUT", "/large-update", JSON, b'{"n":3}'),
        ("coap", "CON", "POST", "/large-create", JSON, b'{"n":4}'),
    ]


async def test_put_where_californium_allows_only_post_is_a_permanent_4_05(
    californium: CaliforniumServer,
) -> None:
    async with sender(californium.uri) as s:
        with pytest.raises(DeliveryError) as info:
            await s.send(("large-create",), b"{}", WHERE)
    assert info.value.code == "4.05" and not info.value.retriable
    assert "answered 4.05 Method Not Allowed" in str(info.value)


async def test_non_requests(californium: CaliforniumServer) -> None:
    before = len(californium.received())
    async with sender(californium.uri, RequestOptions(confirmable=False, timeout_s=10.0)) as s:
        for n in range(3):
            assert await s.send(("test",), b'{"non":%d}' % n, WHERE) == Code.CHANGED
    got = [(r.type, r.method, r.payload) for r in new_requests(californium, before)]
    assert got == [("NON", "PUT", b'{"non":%d}' % n) for n in range(3)]


@pytest.mark.parametrize("suite", ["TLS_PSK_WITH_AES_128_CCM_8", "TLS_PSK_WITH_AES_128_CBC_SHA256"])
async def test_dtls_psk(californium: CaliforniumServer, suite: str) -> None:
    """Only ``suite`` is offered, so a completed handshake used it."""
    before = len(californium.received())
    body = b'{"suite":"%s"}' % suite.encode()
    async with sender(californium.coaps_uri, **psk(suite)) as s:
        assert await s.send(("test",), body, WHERE) == Code.CHANGED
        assert await s.send(("create1",), body, WHERE) == Code.CREATED
    got = [(r.scheme, r.peer, r.path, r.payload) for r in new_requests(californium, before)]
    assert got == [("coaps", IDENTITY, "/test", body), ("coaps", IDENTITY, "/create1", body)]


async def test_dtls_ecdhe_ecdsa_ccm8_with_certificates_both_ways(
    californium: CaliforniumServer, pki: Pki
) -> None:
    """The server's chain (leaf for localhost/127.0.0.1, signed by the test CA) is verified by Mbed TLS
    against the test CA (connect.coap.truststore.path), and the host name too: the URI names localhost.
    Californium requires the client's certificate (NEEDED) and verifies it against the same CA."""
    before = len(californium.received())
    props = {
        "connect.coap.private.key.file": str(pki.client_key),
        "connect.coap.public.key.file": str(pki.client_cert),
        "connect.coap.truststore.path": str(pki.ca),
        "connect.coap.cipher.suites": "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    }
    async with sender(f"coaps://localhost:{californium.dtls_port}", **props) as s:
        assert await s.send(("large-update",), b'{"x509":true}', WHERE) == Code.CHANGED
    got = [(r.scheme, r.peer, r.path, r.payload) for r in new_requests(californium, before)]
    assert got == [("coaps", "CN=streamapp-client", "/large-update", b'{"x509":true}')]


async def test_a_server_chain_outside_the_truststore_is_refused(
    californium: CaliforniumServer, pki: Pki
) -> None:
    """The same server, trusted through another CA only: the client refuses the handshake, so the test
    above really verified the chain."""
    before = len(californium.received())
    props = {
        "connect.coap.private.key.file": str(pki.client_key),
        "connect.coap.public.key.file": str(pki.client_cert),
        "connect.coap.truststore.path": str(pki.other_ca),
        "connect.coap.handshake.timeout": "5000",
    }
    async with sender(f"coaps://localhost:{californium.dtls_port}", **props) as s:
        with pytest.raises(DeliveryError) as info:
            await s.send(("test",), b"{}", WHERE)
    assert "the server's certificate was refused" in str(info.value)
    assert "which is not in the truststore" in str(info.value)
    assert new_requests(californium, before) == []


@pytest.mark.parametrize("scheme", ["coap", "coaps"])
async def test_block1_body_larger_than_one_block(californium: CaliforniumServer, scheme: str) -> None:
    body = b'{"blob":"' + b"x" * 2989 + b'"}'
    assert len(body) == 3000 > ONE_BLOCK
    before_messages = len(californium.received("message"))
    before = len(californium.received())
    uri, props = (
        (californium.uri, {})
        if scheme == "coap"
        else (californium.coaps_uri, psk("TLS_PSK_WITH_AES_128_CCM_8"))
    )
    async with sender(uri, **props) as s:
        assert await s.send(("large-update",), body, WHERE) == Code.CHANGED
    (request,) = new_requests(californium, before)
    assert (request.scheme, request.method, request.path, request.payload) == (
        scheme,
        "PUT",
        "/large-update",
        body,
    )
    blocks = [m for m in californium.received("message")[before_messages:] if m.path == "/large-update"]
    # aiocoap starts with a 1024-byte block; Californium's 2.31 asks for 64-byte blocks (its preferred size),
    # and aiocoap goes on with those from offset 1024 (block 16): 1 + ceil((3000 - 1024) / 64) = 32 blocks.
    assert blocks[0].block1 == "(szx=6/1024, m=true, num=0)"
    assert blocks[1].block1 == "(szx=2/64, m=true, num=16)"
    assert len(blocks) == 32 and blocks[-1].block1 == "(szx=2/64, m=false, num=46)"
    assert b"".join(b.payload for b in blocks) == body


async def test_server_killed_and_restarted_mid_stream_over_dtls(californium: CaliforniumServer) -> None:
    """SIGKILL: the server's DTLS session is gone without a word; the client finds its session dead by
    silence, handshakes again, and delivers everything (CON requests are retransmitted meanwhile)."""
    before = len(californium.received())
    pid = californium.pid
    async with sender(
        californium.coaps_uri, RequestOptions(timeout_s=30.0), **psk("TLS_PSK_WITH_AES_128_CCM_8")
    ) as s:
        for n in range(3):
            assert await s.send(("test",), b'{"seq":%d}' % n, WHERE) == Code.CHANGED
        californium.restart(crash=True)
        assert californium.pid != pid
        started = time.monotonic()
        for n in range(3, 6):
            assert await s.send(("test",), b'{"seq":%d}' % n, WHERE) == Code.CHANGED
        renewed_after = time.monotonic() - started
    got = [(r.peer, r.payload) for r in new_requests(californium, before)]
    assert got == [(IDENTITY, b'{"seq":%d}' % n) for n in range(6)]
    assert renewed_after < 20, f"the session was renewed after {renewed_after:.1f} s"
