"""coaps:// against libcoap's own DTLS servers (OpenSSL and GnuTLS builds): every credential form and cipher
suite of the matrix, every refusal with its cause named within 10 s, a server restart, and datagram loss.

Requests are made by streamapp's CoapSender (aiocoap + the python-mbedtls transport); what the server holds
is read back with libcoap's own coap-client over DTLS.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from streamapp.coap.request_options import RequestOptions
from streamapp.coap.security import dtls_options
from streamapp.coap.sender import CoapSender
from streamapp.config.settings import Settings
from streamapp.errors import ConfigError, DeliveryError
from streamapp.records import RecordCoordinates
from streamapp_harness.libcoap import CoapsCredentials, LibcoapServer
from tests.certs import Pki

WHERE = RecordCoordinates("devices", 0, 42)
PSK = b"Sup3r-S3cret-PSK"
IDENTITY = "streamapp-device"
KCQL = "INSERT INTO r SELECT * FROM devices"
#: RFC 7252's certificate suite: the only one offered in the X.509 tests, so the handshake proves it.
CCM8 = "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"


def settings_for(uri: str, **props: str) -> Settings:
    return Settings.from_mapping({"connect.coap.uri": uri, "connect.coap.kcql": KCQL, **props})


@asynccontextmanager
async def coaps_sender(
    uri: str, options: RequestOptions | None = None, **props: str
) -> AsyncIterator[CoapSender]:
    options = options or RequestOptions(timeout_s=20.0)
    sender = CoapSender(uri, options, dtls_options(settings_for(uri, **props)))
    await sender.start()
    try:
        yield sender
    finally:
        await sender.stop()


def psk_props() -> dict[str, str]:
    return {"connect.coap.username": IDENTITY, "connect.coap.password": PSK.decode()}


def pem_props(pki: Pki) -> dict[str, str]:
    return {
        "connect.coap.private.key.file": str(pki.client_key),
        "connect.coap.public.key.file": str(pki.client_cert),
        "connect.coap.truststore.path": str(pki.ca),
    }


def server_pki(pki: Pki, cert: Path | None = None, key: Path | None = None) -> dict[str, Path]:
    return {"cert": cert or pki.server_cert, "key": key or pki.server_key, "ca": pki.ca}


def reader(pki: Pki) -> CoapsCredentials:
    """libcoap's client, with the test client certificate, to read back what the server holds."""
    return CoapsCredentials(cert=pki.client_cert, key=pki.client_key, ca=pki.ca)


@pytest.fixture
def psk_openssl() -> Iterator[LibcoapServer]:
    with LibcoapServer(
        flavour="openssl", psk=PSK, client_credentials=CoapsCredentials(psk=PSK, identity=IDENTITY)
    ) as server:
        yield server


@pytest.mark.parametrize(
    ("flavour", "suite"),
    [
        ("openssl", "TLS_PSK_WITH_AES_128_CCM_8"),
        ("gnutls", "TLS_PSK_WITH_AES_128_CCM_8"),
        ("gnutls", "TLS_PSK_WITH_AES_128_CBC_SHA256"),
    ],
)
async def test_psk(flavour: str, suite: str) -> None:
    reader_psk = CoapsCredentials(psk=PSK, identity=IDENTITY, flavour=flavour)
    with LibcoapServer(flavour=flavour, psk=PSK, client_credentials=reader_psk) as server:
        async with coaps_sender(
            server.coaps_uri, **psk_props(), **{"connect.coap.cipher.suites": suite}
        ) as sender:
            for n in range(3):
                await sender.send(("dev", "a"), b'{"n":%d}' % n, WHERE)
        assert server.get("dev/a", dtls=True) == b'{"n":2}'


X509_CLIENTS = {
    "pem": pem_props,
    "pkcs12": lambda pki: {
        "connect.coap.keystore.path": str(pki.client_p12),
        "connect.coap.truststore.path": str(pki.trust_p12),
    },
    "jks": lambda pki: {
        "connect.coap.keystore.path": str(pki.client_jks),
        "connect.coap.truststore.path": str(pki.trust_jks),
        "connect.coap.certs": "ca",
    },
    "pem-rsa": lambda pki: {
        "connect.coap.private.key.file": str(pki.client_rsa_key),
        "connect.coap.public.key.file": str(pki.client_rsa_cert),
        "connect.coap.truststore.path": str(pki.ca),
    },
}


@pytest.mark.parametrize("client", sorted(X509_CLIENTS))
async def test_x509_mutual_authentication_with_ecdsa_ccm8(client: str, pki: Pki) -> None:
    if client == "jks" and pki.client_jks is None:
        pytest.skip(pki.jks_skip_reason or "no JKS keystore")
    with LibcoapServer(flavour="openssl", client_credentials=reader(pki), **server_pki(pki)) as server:
        uri = f"coaps://localhost:{server.dtls_port}"  # a host name, so the certificate's name is checked too
        props = {**X509_CLIENTS[client](pki), "connect.coap.cipher.suites": CCM8}
        async with coaps_sender(uri, **props) as sender:
            await sender.send(("x509",), b'{"client":"%s"}' % client.encode(), WHERE)
        assert server.get("x509", dtls=True) == b'{"client":"%s"}' % client.encode()


async def refused(uri: str, **props: str) -> tuple[DeliveryError, float]:
    started = time.monotonic()
    async with coaps_sender(uri, **props) as sender:
        with pytest.raises(DeliveryError) as info:
            await sender.send(("never",), b"{}", WHERE)
    return info.value, time.monotonic() - started


@pytest.mark.parametrize("flavour", ["openssl", "gnutls"])
async def test_wrong_psk_is_refused_fast_and_named(flavour: str) -> None:
    with LibcoapServer(flavour=flavour, psk=PSK) as server:
        error, took = await refused(
            server.coaps_uri, **{"connect.coap.username": IDENTITY, "connect.coap.password": "not-the-key"}
        )
    assert took < 10, f"refusal took {took:.1f} s"
    assert "wrong PSK (connect.coap.password)" in str(error)
    assert str(error).startswith("record devices/0@42: ")
    assert error.retriable
    assert "not-the-key" not in str(error)


async def test_unknown_identity_is_refused() -> None:
    with LibcoapServer(flavour="gnutls", psk_identities={"alice": PSK}) as server:
        error, took = await refused(
            server.coaps_uri, **{"connect.coap.username": "mallory", "connect.coap.password": PSK.decode()}
        )
    assert took < 10
    assert "identity the server does not know (connect.coap.username)" in str(error)


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("untrusted", "which is not in the truststore"),
        ("expired", "expired on"),
        ("wrong_host", "is not for host 'localhost'"),
    ],
)
async def test_bad_server_certificates_are_refused_with_the_reason(
    case: str, fragment: str, pki: Pki
) -> None:
    files = {
        "untrusted": (pki.untrusted_server_cert, pki.untrusted_server_key),
        "expired": (pki.expired_server_cert, pki.expired_server_key),
        "wrong_host": (pki.wrong_host_server_cert, pki.wrong_host_server_key),
    }[case]
    with LibcoapServer(
        flavour="openssl", verify_peer=False, cert=files[0], key=files[1], ca=pki.ca
    ) as server:
        error, took = await refused(f"coaps://localhost:{server.dtls_port}", **pem_props(pki))
    assert took < 10
    assert "the server's certificate was refused" in str(error)
    assert fragment in str(error)


def test_credential_files_are_checked_at_start(pki: Pki, tmp_path: Path) -> None:
    uri = "coaps://127.0.0.1:5684"
    cases = {
        "missing keystore": (
            {
                "connect.coap.keystore.path": str(tmp_path / "nope.p12"),
                "connect.coap.truststore.path": str(pki.ca),
            },
            "connect.coap.keystore.path: ",
        ),
        "wrong password": (
            {
                "connect.coap.keystore.path": str(pki.client_p12),
                "connect.coap.keystore.pass": "Wr0ng-Pass",
                "connect.coap.truststore.path": str(pki.trust_p12),
            },
            "wrong password",
        ),
        "alias not found": (
            {
                "connect.coap.keystore.path": str(pki.client_p12),
                "connect.coap.cert.chain.key": "nobody",
                "connect.coap.truststore.path": str(pki.trust_p12),
            },
            "nobody",
        ),
        "suite of the other kind": (
            {**psk_props(), "connect.coap.cipher.suites": "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"},
            "connect.coap.cipher.suites: TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 cannot be used with PSK",
        ),
    }
    for name, (props, fragment) in cases.items():
        with pytest.raises(ConfigError) as info:
            dtls_options(settings_for(uri, **props))
        assert fragment in str(info.value), name
        assert "Wr0ng-Pass" not in str(info.value) and PSK.decode() not in str(info.value)


@pytest.mark.parametrize("crash", [False, True], ids=["stopped", "crashed"])
async def test_server_restart_mid_stream_renews_the_session_and_loses_nothing(
    psk_openssl: LibcoapServer, crash: bool
) -> None:
    """Stopped, the server says close_notify; crashed, it says nothing and the session is found dead."""
    server = psk_openssl
    async with coaps_sender(server.coaps_uri, **psk_props()) as sender:
        for n in range(3):
            await sender.send(("seq",), b"%d" % n, WHERE)
        server.restart(crash=crash)
        started = time.monotonic()
        for n in range(3, 6):
            await sender.send(("seq",), b"%d" % n, WHERE)
        renewed_after = time.monotonic() - started
    assert server.get("seq", dtls=True) == b"5"
    assert renewed_after < 20, f"the session was renewed after {renewed_after:.1f} s"


@pytest.mark.slow  # 10-25 s of retransmissions: `make test` runs it, `make check` leaves it out
async def test_twenty_percent_datagram_loss(pki: Pki) -> None:
    with LibcoapServer(
        flavour="openssl", loss="20%", client_credentials=reader(pki), **server_pki(pki)
    ) as server:
        uri = f"coaps://localhost:{server.dtls_port}"
        # Short, many retransmissions (and room for handshake flights to be resent) so that losing every
        # copy of one answer is negligible (0.2 ** 9 per request) rather than a flaky test.
        lossy_link = RequestOptions(ack_timeout_s=0.5, max_retransmit=8)
        props = {**pem_props(pki), "connect.coap.handshake.timeout": "30000"}
        async with coaps_sender(uri, lossy_link, **props) as sender:
            for n in range(30):
                await sender.send(("lossy", str(n)), b"%d" % n, WHERE)
    # every request got its 2.xx (send raises otherwise); nothing more to read back through a lossy server


async def test_a_handshake_whose_first_answers_are_all_lost_completes_in_a_new_attempt() -> None:
    """The server drops its first four datagrams (``-l 1-4``). One attempt sends its ClientHello at 0, 1 and
    3 s and gives up at 7 s; the next, from a new socket, gets through at ~8 s. A single attempt with the
    doubling timer would next send at 15 s, after the 12 s deadline."""
    with LibcoapServer(flavour="openssl", loss="1-4", psk=PSK) as server:
        uri = f"coaps://localhost:{server.dtls_port}"
        props = {**psk_props(), "connect.coap.handshake.timeout": "12000"}
        async with coaps_sender(uri, **props) as sender:
            started = time.monotonic()
            await sender.send(("late",), b"1", WHERE)
            took = time.monotonic() - started
    assert 7 <= took < 12, took


def test_check_shows_the_dtls_setup_without_secrets(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamapp.cli import main

    properties = tmp_path / "coap-sink.properties"
    properties.write_text(
        f"connect.coap.uri=coaps://localhost:5684\nconnect.coap.kcql={KCQL}\n"
        f"connect.coap.keystore.path={pki.client_p12}\nconnect.coap.keystore.pass=rootPass\n"
        f"connect.coap.truststore.path={pki.trust_p12}\n"
    )
    monkeypatch.setenv("STREAMAPP_CONFIG", str(properties))
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "DTLS: " in out and "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8" in out
    assert "rootPass" not in out
    assert "PRIVATE KEY" not in out
