"""``coap+tcp://`` and ``coaps+tcp://`` against real servers: aiocoap's TCP and TLS servers
(tests/recording_server.py, ``transport="tcp"``/``"tls"``) and libcoap's ``coap-server-openssl`` (TCP on its
port, TLS on port + 1, ``-X`` for its Max-Message-Size): many requests over one connection, Block1 under a
small Max-Message-Size, a server restarted mid-stream with every request answered, TLS with the server's name
verified (host name and IP address), a name mismatch and an untrusted certificate refused naming the server
and the key, a client certificate from the keystore. The rules one by one: test_tcp_rules.py."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from streamapp.coap.request_options import RequestOptions
from streamapp.coap.sender import CoapSender
from streamapp.coap.tcp_tls import TlsOptions, load_tls_options
from streamapp.errors import DeliveryError
from streamapp.records import RecordCoordinates
from streamapp_harness.libcoap import LibcoapServer
from streamapp_harness.process import async_wait_until
from tests.certs import Pki
from tests.recording_server import RecordingCoapServer

WHERE = RecordCoordinates("tcp-peers", 0, 1)
CHANGED, CREATED = 0x44, 0x41


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["coap"])
    return context


def client_tls(pki: Pki, *, keystore: bool = False) -> TlsOptions:
    return load_tls_options(
        private_key_file=None,
        public_key_file=None,
        keystore_path=str(pki.client_p12) if keystore else None,
        keystore_pass="rootPass",
        truststore_path=str(pki.trust_p12),
        truststore_pass="rootPass",
        certs=(),
        cert_chain_key="client",
    )


async def started(
    uri: str, *, window: int = 1, tls: TlsOptions | None = None, timeout_s: float = 20.0
) -> CoapSender:
    sender = CoapSender(uri, RequestOptions(timeout_s=timeout_s), window=window, tls=tls)
    await sender.start()
    return sender


@pytest.fixture
def tcp_recorder() -> Iterator[RecordingCoapServer]:
    with RecordingCoapServer(transport="tcp") as server:
        yield server


# -- aiocoap ----------------------------------------------------------------------------------------------


async def test_aiocoap_tcp_server_many_requests_over_one_connection(
    tcp_recorder: RecordingCoapServer,
) -> None:
    sender = await started(tcp_recorder.uri, window=16)
    try:
        answers = await asyncio.gather(
            *(sender.submit(("dev", str(n % 7)), b'{"n":%d}' % n, WHERE) for n in range(300))
        )
        # aiocoap announces 1 MiB: a 20 000-byte body is one message, no Block1
        big = await sender.submit(("big",), b"z" * 20_000, WHERE)
        link = sender._default.link
        assert link is not None and link.connections_opened == 1 and sender.endpoints == 1
    finally:
        await sender.stop()
    assert {a.code for a in answers} == {CHANGED} and big.code == CHANGED
    recorded = tcp_recorder.requests
    assert sorted(r.payload for r in recorded[:-1]) == sorted(b'{"n":%d}' % n for n in range(300))
    assert recorded[-1].payload == b"z" * 20_000
    assert {r.content_format for r in recorded} == {50}


async def test_aiocoap_tcp_server_restarted_mid_stream_every_request_answered(
    tcp_recorder: RecordingCoapServer,
) -> None:
    """The server stops (Release, then its connections closed) and comes back on the same port while 200
    requests are going: each ends 2.04 and every body reached the server (duplicates possible)."""
    tcp_recorder.set_delay(0.02)  # a slower server: the restart lands with requests outstanding
    sender = await started(tcp_recorder.uri, window=8)
    try:
        futures = [sender.submit(("s",), b"%d" % n, WHERE) for n in range(200)]
        await async_wait_until(lambda: tcp_recorder.count >= 50, 10, what="50 requests at the server")
        await asyncio.to_thread(tcp_recorder.restart)
        assert not all(f.done() for f in futures)
        answers = await asyncio.gather(*futures)
        link = sender._default.link
        assert link is not None and link.connections_opened >= 2
    finally:
        await sender.stop()
    assert {a.code for a in answers} == {CHANGED}
    assert {r.payload for r in tcp_recorder.requests} == {b"%d" % n for n in range(200)}


async def test_aiocoap_tls_server_with_its_name_verified(pki: Pki) -> None:
    """coaps+tcp://localhost and coaps+tcp://127.0.0.1: the certificate names both; ALPN coap."""
    context = server_context(pki.server_cert, pki.server_key)
    for host in ("localhost", "127.0.0.1"):
        with RecordingCoapServer(transport="tls", ssl_context=context, host=host) as server:
            sender = await started(server.uri, window=4, tls=client_tls(pki))
            try:
                answers = await asyncio.gather(*(sender.submit(("t",), b"%d" % n, WHERE) for n in range(20)))
                connection = sender._default.link.connection  # type: ignore[union-attr]
                assert connection is not None and connection.transport is not None
                assert connection.transport.get_extra_info("ssl_object").selected_alpn_protocol() == "coap"
            finally:
                await sender.stop()
            assert {a.code for a in answers} == {CHANGED}
            assert len(server.requests) == 20


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("wrong_host", "the server's certificate does not name 'localhost'"),
        ("untrusted", "the server's certificate is not trusted"),
    ],
)
async def test_aiocoap_tls_server_a_bad_certificate_fails_at_once_naming_server_and_key(
    pki: Pki, which: str, expected: str
) -> None:
    cert, key = getattr(pki, f"{which}_server_cert"), getattr(pki, f"{which}_server_key")
    with RecordingCoapServer(
        transport="tls", ssl_context=server_context(cert, key), host="localhost"
    ) as server:
        sender = await started(server.uri, tls=client_tls(pki), timeout_s=30.0)
        try:
            with pytest.raises(DeliveryError) as caught:
                await asyncio.wait_for(sender.submit(("t",), b"1", WHERE), 10)  # at once, not at 30 s
        finally:
            await sender.stop()
        assert not server.requests
    message = str(caught.value)
    assert expected in message
    assert f"TLS handshake with coaps+tcp://localhost:{server.port} failed" in message
    if which == "untrusted":
        assert f"connect.coap.truststore.path '{pki.trust_p12}'" in message


async def test_a_coaps_tcp_server_without_tls_options_is_an_error_for_the_record() -> None:
    sender = await started("coap+tcp://127.0.0.1:9")
    try:
        with pytest.raises(DeliveryError) as caught:
            await sender.submit(("t",), b"1", WHERE, server="coaps+tcp://localhost:5684")
    finally:
        await sender.stop()
    assert not caught.value.retriable
    assert "connect.coap.truststore.path" in str(caught.value)


# -- libcoap ----------------------------------------------------------------------------------------------


@pytest.fixture
def libcoap_tcp(tmp_path: Path, pki: Pki) -> Iterator[LibcoapServer]:
    """coap-server-openssl with a 256-byte Max-Message-Size (``-X``) and a certificate: TCP on its port,
    TLS (client certificate required) on port + 1."""
    with LibcoapServer(
        flavour="openssl",
        cert=pki.server_cert,
        key=pki.server_key,
        ca=pki.ca,
        extra_args=["-X", "256"],
        log_path=tmp_path / "coap-server.log",
    ) as server:
        yield server


async def test_libcoap_tcp_block1_under_its_max_message_size(libcoap_tcp: LibcoapServer) -> None:
    """libcoap's CSM says 256 bytes: a 3000-byte body goes Block1 and is stored whole; small ones are not
    split."""
    body = bytes(range(256)) * 11 + b"end"
    sender = await started(f"coap+tcp://127.0.0.1:{libcoap_tcp.port}", window=4)
    try:
        answers = await asyncio.gather(
            *(sender.submit(("small", str(n)), b"%d" % n, WHERE) for n in range(20))
        )
        big = await sender.submit(("big",), body, WHERE)
        connection = sender._default.link.connection  # type: ignore[union-attr]
        assert connection is not None and connection.peer_max_message_size == 256
    finally:
        await sender.stop()
    assert {a.code for a in answers} <= {CHANGED, CREATED} and big.code in (CHANGED, CREATED)
    stored = await asyncio.to_thread(libcoap_tcp.get, "big")
    assert stored == body
    assert await asyncio.to_thread(libcoap_tcp.get, "small/7") == b"7"


async def test_libcoap_tls_with_a_client_certificate_from_the_keystore(
    libcoap_tcp: LibcoapServer, pki: Pki
) -> None:
    sender = await started(
        f"coaps+tcp://localhost:{libcoap_tcp.port + 1}", window=4, tls=client_tls(pki, keystore=True)
    )
    try:
        answers = await asyncio.gather(*(sender.submit(("tls", str(n)), b"%d" % n, WHERE) for n in range(10)))
        big = await sender.submit(("tls-big",), b"q" * 1000, WHERE)
    finally:
        await sender.stop()
    assert {a.code for a in answers} <= {CHANGED, CREATED} and big.code in (CHANGED, CREATED)
    assert await asyncio.to_thread(libcoap_tcp.get, "tls-big") == b"q" * 1000


async def test_libcoap_tls_refuses_a_client_without_a_certificate_and_says_which_keys(
    libcoap_tcp: LibcoapServer, pki: Pki
) -> None:
    sender = await started(
        f"coaps+tcp://localhost:{libcoap_tcp.port + 1}", tls=client_tls(pki), timeout_s=30.0
    )
    try:
        with pytest.raises(DeliveryError) as caught:
            await asyncio.wait_for(sender.submit(("t",), b"1", WHERE), 10)
    finally:
        await sender.stop()
    assert "connect.coap.keystore.path" in str(caught.value)


async def test_libcoap_tcp_killed_and_restarted_mid_stream_every_request_answered(
    libcoap_tcp: LibcoapServer,
) -> None:
    """SIGKILL: the kernel closes the connection without a CoAP word. A stream of 300 requests (8 lanes)
    is held after 40 answers, the server killed, the stream let go (its requests meet the dead connection,
    then refusals and the backoff), the server started again on the same ports: every request ends 2.xx, the
    connection was opened again, and the resources hold their bodies."""
    sender = await started(f"coap+tcp://127.0.0.1:{libcoap_tcp.port}", window=8)
    answers: list[int] = []
    go_on = asyncio.Event()

    async def lane(first: int) -> None:
        for n in range(first, 300, 8):
            if len(answers) >= 40:
                await go_on.wait()
            answers.append((await sender.submit(("k", str(n)), b"%d" % n, WHERE)).code)

    try:
        with capture_logs() as logs:
            lanes = asyncio.gather(*(lane(n) for n in range(8)))
            await async_wait_until(lambda: len(answers) >= 40, 10, what="40 answers")
            await asyncio.to_thread(libcoap_tcp.stop, kill=True)
            go_on.set()
            await async_wait_until(
                lambda: any(line["event"] == "coap.tcp_connect_failed" for line in logs), 10, what="a refusal"
            )
            assert len(answers) < 300
            await asyncio.to_thread(libcoap_tcp.start)
            await lanes
        assert sender._default.link.connections_opened == 2  # type: ignore[union-attr]
    finally:
        await sender.stop()
    assert len(answers) == 300 and set(answers) <= {CHANGED, CREATED}
    for n in (299, 290, 280):  # (what was stored before the kill went with the process)
        assert await asyncio.to_thread(libcoap_tcp.get, f"k/{n}") == b"%d" % n
