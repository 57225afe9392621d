"""OSCORE (RFC 8613) against aiocoap's OSCORE server (tests/oscore_server.py: the recording server behind
aiocoap's OscoreSiteWrapper, its recipient context the mirror of the sink's): requests protected and
delivered, the Echo challenge of a server that lost its replay window, replays and wrong keys refused with
the reason, a body over one block, the protected message over coaps://, and the sender sequence number that
is never reused across a SIGKILL (a process sending protected requests is killed mid-stream and started
again: the server, which refuses any sequence number it has seen, accepts everything after the restart)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from streamapp.coap.oscore import open_contexts
from streamapp.coap.request_options import RequestOptions
from streamapp.coap.security import dtls_options
from streamapp.coap.sender import CoapSender
from streamapp.config.settings import Settings
from streamapp.errors import DeliveryError
from streamapp.records import RecordCoordinates
from streamapp_harness.libcoap import CoapsCredentials, LibcoapServer
from tests.oscore_server import ContextPair, OscoreCoapServer, make_contexts, server_sequence_unknown

WHERE = RecordCoordinates("devices", 0, 7)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pair(tmp_path: Path) -> ContextPair:
    return make_contexts(tmp_path)


@asynccontextmanager
async def protected_sender(uri: str, context: Path, **options: object) -> AsyncIterator[CoapSender]:
    contexts = open_contexts([str(context)])
    sender = CoapSender(
        uri,
        RequestOptions(timeout_s=10.0, oscore_context=str(context), **options),  # type: ignore[arg-type]
        oscore=contexts,
    )
    await sender.start()
    try:
        yield sender
    finally:
        await sender.stop()  # closes the contexts


async def test_protected_requests_are_delivered(pair: ContextPair) -> None:
    with OscoreCoapServer(pair.server) as server:
        async with protected_sender(server.uri + "/base", pair.client, method="POST") as sender:
            for n in range(5):
                answer = await sender.submit(("dev", "a b"), b'{"n":%d}' % n, WHERE, query=("x=1",))
                assert answer.dotted == "2.04"
        recorded = server.requests
        assert [(r.method, r.path, r.query, r.content_format) for r in recorded] == [
            ("POST", "/base/dev/a b", ("x=1",), 50)
        ] * 5
        assert [r.payload for r in recorded] == [b'{"n":%d}' % n for n in range(5)]
        assert server.unprotected == 0
        assert server.accepted_sequence_numbers == [0, 1, 2, 3, 4]


async def test_a_body_over_one_block_is_reassembled_by_the_server(pair: ContextPair) -> None:
    body = json.dumps({"blob": "x" * 5000}).encode()
    with OscoreCoapServer(pair.server) as server:
        async with protected_sender(server.uri, pair.client) as sender:
            assert (await sender.submit(("big",), body, WHERE)).dotted == "2.04"
        assert [r.payload for r in server.requests] == [body]


async def test_an_echo_challenge_is_answered_once(pair: ContextPair) -> None:
    server_sequence_unknown(pair.server)  # the server lost its replay window (a crash): B.1.2 recovery
    with OscoreCoapServer(pair.server) as server:
        async with protected_sender(server.uri, pair.client) as sender:
            for n in range(3):
                assert (await sender.submit(("dev",), b"%d" % n, WHERE)).dotted == "2.04"
        # The first request was refused with 4.01 + Echo (not processed), its resend with Echo accepted.
        assert [r.payload for r in server.requests] == [b"0", b"1", b"2"]
        assert server.accepted_sequence_numbers == [1, 2, 3]


async def test_a_reused_sequence_number_is_refused_with_the_reason(pair: ContextPair) -> None:
    with OscoreCoapServer(pair.server) as server:
        async with protected_sender(server.uri, pair.client) as sender:
            for n in range(3):
                await sender.submit(("dev",), b"%d" % n, WHERE)
        # A context restored from a backup: its sequence numbers go back (what RFC 8613 §7.5 forbids).
        (pair.client / "sequence.json").write_text(json.dumps({"next-to-send": 0, "received": "unknown"}))
        async with protected_sender(server.uri, pair.client) as sender:
            with pytest.raises(DeliveryError) as info:
                await sender.submit(("dev",), b"again", WHERE)
        error = info.value
        assert (error.code, error.retriable) == ("4.01", False)
        assert "4.01 Unauthorized without OSCORE protection (Replay detected)" in str(error)
        assert [r.payload for r in server.requests] == [b"0", b"1", b"2"]


async def test_a_wrong_master_secret_is_refused_with_the_reason(tmp_path: Path) -> None:
    right = make_contexts(tmp_path / "right")
    wrong = make_contexts(tmp_path / "wrong")  # same IDs, another secret
    with OscoreCoapServer(right.server) as server:
        async with protected_sender(server.uri, wrong.client) as sender:
            with pytest.raises(DeliveryError) as info:
                await sender.submit(("dev",), b"{}", WHERE)
    assert info.value.code == "4.00" and not info.value.retriable
    assert "without OSCORE protection (Decryption failed)" in str(info.value)
    assert server.requests == []


async def test_an_unknown_sender_id_is_refused_with_the_reason(tmp_path: Path) -> None:
    known = make_contexts(tmp_path / "known")
    stranger = make_contexts(tmp_path / "stranger", client_id=b"\x09")
    with OscoreCoapServer(known.server) as server:
        async with protected_sender(server.uri, stranger.client) as sender:
            with pytest.raises(
                DeliveryError, match=r"4\.01 Unauthorized without OSCORE .*Security context not found"
            ):
                await sender.submit(("dev",), b"{}", WHERE)


async def test_over_coaps_the_protected_message_is_carried_by_dtls(pair: ContextPair) -> None:
    """libcoap's DTLS server has no OSCORE: it gets the protected message through the DTLS session and
    refuses the critical OSCORE option with an unprotected 4.02, which is no delivery. (An OSCORE server
    over DTLS would answer it as aiocoap's does over UDP: the exchange layer carries the same outer message
    either way.)"""
    psk = b"Sup3r-S3cret-PSK"
    identity = "streamapp-device"
    with LibcoapServer(
        flavour="openssl", psk=psk, client_credentials=CoapsCredentials(psk=psk, identity=identity)
    ) as server:
        settings = Settings.from_mapping(
            {
                "connect.coap.uri": server.coaps_uri,
                "connect.coap.kcql": "INSERT INTO r SELECT * FROM t",
                "connect.coap.username": identity,
                "connect.coap.password": psk.decode(),
            }
        )
        contexts = open_contexts([str(pair.client)])
        sender = CoapSender(
            server.coaps_uri,
            RequestOptions(timeout_s=20.0, oscore_context=str(pair.client)),
            dtls_options(settings),
            oscore=contexts,
        )
        await sender.start()
        try:
            with pytest.raises(DeliveryError) as info:
                await sender.submit(("dev",), b'{"secret-ish": 1}', WHERE)
        finally:
            await sender.stop()
        assert info.value.code == "4.02" and "without OSCORE protection" in str(info.value)
        assert server.get("dev", dtls=True) is None  # nothing was PUT: the request was only ever protected


# -- the sequence number across a SIGKILL (RFC 8613 §7.5) ----------------------------------------------------

SENDER_SCRIPT = """
import asyncio, sys
from streamapp.coap.oscore import open_contexts
from streamapp.coap.sender import CoapSender
from streamapp.coap.request_options import RequestOptions
from streamapp.records import RecordCoordinates

async def main(uri, context, first, count):
    contexts = open_contexts([context])
    sender = CoapSender(uri, RequestOptions(timeout_s=10.0, oscore_context=context), oscore=contexts)
    await sender.start()
    for n in range(first, first + count):
        await sender.submit(("seq",), str(n).encode(), RecordCoordinates("t", 0, n))
        print(n, flush=True)
    await sender.stop()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


def run_sender(uri: str, context: Path, first: int, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SENDER_SCRIPT, uri, str(context), str(first), str(count)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def test_a_sigkilled_sender_never_reuses_a_sequence_number(pair: ContextPair) -> None:
    with OscoreCoapServer(pair.server) as server:
        for round_ in range(3):  # killed at different points of the persisted steps (10, 20, 40, ...)
            first = round_ * 100_000
            process = run_sender(server.uri, pair.client, first, 100_000)
            target = len(server.accepted_sequence_numbers) + 37 + 60 * round_
            try:
                accepted = server.accepted_sequence_numbers
                wait_for(lambda a=accepted, t=target: len(a) >= t, 60, f"{target} requests")
            finally:
                process.send_signal(signal.SIGKILL)
                _, stderr = process.communicate(timeout=30)
            assert process.returncode == -signal.SIGKILL, stderr
            # What survives the kill: a "next-to-send" above every number used (persisted before the use).
            persisted = json.loads((pair.client / "sequence.json").read_text())["next-to-send"]
            wait_for(lambda: server.in_flight == 0, 10, "the server to finish")
            assert persisted > max(server.accepted_sequence_numbers)
        # The restarted sender's requests are all accepted by a server that refuses every number it has seen.
        before = len(server.accepted_sequence_numbers)
        process = run_sender(server.uri, pair.client, 10**6, 50)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        delivered = [line for line in stdout.splitlines() if line.isdigit()]  # (log lines go there too)
        assert delivered == [str(n) for n in range(10**6, 10**6 + 50)]
        seen = server.accepted_sequence_numbers
        assert len(seen) == before + 50
        assert len(set(seen)) == len(seen)  # no sequence number was used twice
        assert min(seen[before:]) > max(seen[:before])  # the restart skipped ahead
        assert server.unprotected == 0
