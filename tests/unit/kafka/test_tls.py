"""The Kafka client's TLS context (``ssl.*`` keys), tried in real handshakes with a local TLS server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import faust
import pytest
from cryptography.hazmat.primitives import serialization

from streamapp.config.keys import Secret
from streamapp.config.settings import Settings, StoreLocation
from streamapp.errors import ConfigError
from streamapp.kafka.security import broker_credentials
from streamapp.kafka.tls import client_ssl_context
from tests.certs import STORE_PASSWORD, Pki, make_pki

BASE = {"connect.coap.uri": "coap://127.0.0.1:5683", "connect.coap.kcql": "INSERT INTO r SELECT * FROM t"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def store(
    key: str, path: Path, password: str | None = STORE_PASSWORD, kind: str | None = None
) -> StoreLocation:
    return StoreLocation(key, str(path), Secret(password) if password is not None else None, kind)


def trust(path: Path, **kwargs) -> StoreLocation:
    return store("ssl.truststore.location", path, **kwargs)


def keys(path: Path, **kwargs) -> StoreLocation:
    return store("ssl.keystore.location", path, **kwargs)


@asynccontextmanager
async def tls_server(cert: Path, key: Path, client_ca: Path | None = None) -> AsyncIterator[tuple[int, list]]:
    """A TLS server on 127.0.0.1; yields its port and the client certificates it saw."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    seen: list = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peercert"))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    async with server:
        yield server.sockets[0].getsockname()[1], seen


async def handshake(port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=host), 5
    )
    data = await asyncio.wait_for(reader.read(2), 5)
    writer.close()
    return data


def config_error(build: Callable[[], object]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        build()
    return info.value


@pytest.mark.parametrize("truststore", ["ca", "trust_p12", "trust_jks"])
async def test_every_truststore_type_verifies_the_broker(pki: Pki, truststore: str) -> None:
    path = getattr(pki, truststore)
    if path is None:
        pytest.skip(pki.jks_skip_reason or "no JKS store")
    context, description = client_ssl_context(trust(path), None, None, check_hostname=True)
    async with tls_server(pki.server_cert, pki.server_key) as (port, _):
        assert await handshake(port, context) == b"ok"
    assert "trusting 1 certificate(s)" in description and STORE_PASSWORD not in description


async def test_a_broker_signed_by_another_ca_is_refused(pki: Pki) -> None:
    context, _ = client_ssl_context(trust(pki.other_ca), None, None, check_hostname=True)
    async with tls_server(pki.server_cert, pki.server_key) as (port, _):
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake(port, context)


async def test_host_name_checked_unless_identification_is_off(pki: Pki) -> None:
    async with tls_server(pki.wrong_host_server_cert, pki.wrong_host_server_key) as (port, _):
        checked, _ = client_ssl_context(trust(pki.ca), None, None, check_hostname=True)
        with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
            await handshake(port, checked)
        unchecked, description = client_ssl_context(trust(pki.ca), None, None, check_hostname=False)
        assert await handshake(port, unchecked) == b"ok"
        assert "NOT checked" in description


@pytest.fixture(scope="module")
def pem_keystore(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kafka's PEM keystore: the private key (encrypted with ssl.key.password) and the chain in one file."""
    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"keypass"),
    )
    path = tmp_path_factory.mktemp("pem") / "client-keystore.pem"
    path.write_bytes(encrypted + pki.client_cert.read_bytes() + pki.ca.read_bytes())
    return path


@pytest.mark.parametrize("keystore", ["pem", "client_p12", "client_jks"])
async def test_every_keystore_type_presents_the_client_certificate(
    pki: Pki, pem_keystore: Path, keystore: str
) -> None:
    if keystore == "pem":
        location, key_password = keys(pem_keystore, password=None), Secret("keypass")
    else:
        path = getattr(pki, keystore)
        if path is None:
            pytest.skip(pki.jks_skip_reason or "no JKS store")
        location, key_password = keys(path), None
    context, description = client_ssl_context(trust(pki.ca), location, key_password, check_hostname=True)
    async with tls_server(pki.server_cert, pki.server_key, client_ca=pki.ca) as (port, seen):
        assert await handshake(port, context) == b"ok"
    subject = dict(item[0] for item in seen[0]["subject"])
    assert subject["commonName"] == "streamapp-client"
    assert "client certificate 'CN=streamapp-client'" in description and "keypass" not in description


async def test_without_a_keystore_a_verifying_broker_refuses(pki: Pki) -> None:
    context, _ = client_ssl_context(trust(pki.ca), None, None, check_hostname=True)
    async with tls_server(pki.server_cert, pki.server_key, client_ca=pki.ca) as (port, _):
        try:
            answer = await handshake(port, context)
        except (ssl.SSLError, ConnectionError):
            answer = None  # TLS 1.2, or TLS 1.3 reporting the alert on the read
        assert answer != b"ok"


def test_wrong_store_password_names_the_store(pki: Pki) -> None:
    e = config_error(
        lambda: client_ssl_context(trust(pki.trust_p12, password="nope"), None, None, check_hostname=True)
    )
    assert e.key == "ssl.truststore.location" and "wrong password" in str(e) and "nope" not in str(e)
    e = config_error(
        lambda: client_ssl_context(
            trust(pki.ca), keys(pki.client_p12, password="nope"), None, check_hostname=True
        )
    )
    assert e.key == "ssl.keystore.location"


def test_wrong_key_password_names_ssl_key_password(pki: Pki, pem_keystore: Path) -> None:
    e = config_error(
        lambda: client_ssl_context(
            trust(pki.ca), keys(pem_keystore, password=None), Secret("bad"), check_hostname=True
        )
    )
    assert e.key == "ssl.key.password" and "bad" not in str(e).split(":", 1)[1]


def test_a_declared_type_must_match_the_file(pki: Pki) -> None:
    e = config_error(lambda: client_ssl_context(trust(pki.ca, kind="JKS"), None, None, check_hostname=True))
    assert e.key == "ssl.truststore.type" and "PEM file" in str(e)


def test_missing_and_empty_files_name_the_key(pki: Pki, tmp_path: Path) -> None:
    e = config_error(
        lambda: client_ssl_context(trust(tmp_path / "nope.pem"), None, None, check_hostname=True)
    )
    assert e.key == "ssl.truststore.location" and "does not exist" in str(e)
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    e = config_error(lambda: client_ssl_context(trust(pki.ca), keys(empty), None, check_hostname=True))
    assert e.key == "ssl.keystore.location" and "empty" in str(e)


def test_a_keystore_whose_certificate_is_not_its_keys(pki: Pki, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.pem"
    mixed.write_bytes(pki.client_key.read_bytes() + pki.server_cert.read_bytes())
    e = config_error(
        lambda: client_ssl_context(trust(pki.ca), keys(mixed, password=None), None, check_hostname=True)
    )
    assert e.key == "ssl.keystore.location" and "does not match" in str(e)


def test_broker_credentials_for_each_protocol(pki: Pki) -> None:
    login = (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="bob" password="pw-123";'
    )
    plain = Settings.from_mapping(BASE)
    assert broker_credentials(plain) == (None, "PLAINTEXT")

    tls = Settings.from_mapping({**BASE, "security.protocol": "SSL", "ssl.truststore.location": str(pki.ca)})
    credentials, description = broker_credentials(tls)
    assert isinstance(credentials, faust.SSLCredentials) and credentials.context.check_hostname
    assert description.startswith("SSL (trusting 1 certificate(s) from PEM")

    sasl = Settings.from_mapping(
        {
            **BASE,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": login,
            "ssl.truststore.location": str(pki.ca),
        }
    )
    credentials, description = broker_credentials(sasl)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("bob", "pw-123")
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.protocol.value == "SASL_SSL"
    assert credentials.ssl_context is not None
    assert "pw-123" not in description and "pw-123" not in repr(credentials)
    assert description.startswith("SASL_SSL SCRAM-SHA-512 as 'bob'")

    sasl_plain = Settings.from_mapping(
        {
            **BASE,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.jaas.config": login.replace("scram.ScramLoginModule", "plain.PlainLoginModule"),
        }
    )
    credentials, _ = broker_credentials(sasl_plain)
    assert credentials.protocol.value == "SASL_PLAINTEXT" and credentials.ssl_context is None


def test_the_app_hands_the_credentials_to_every_aiokafka_client(pki: Pki) -> None:
    """What Faust passes to aiokafka's consumer, producer and admin client."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from streamapp.app import create_app

    settings = Settings.from_mapping(
        {
            **BASE,
            "consumer.override.security.protocol": "SASL_SSL",
            "consumer.override.sasl.mechanism": "SCRAM-SHA-256",
            "consumer.override.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                'username="u1" password="p1";'
            ),
            "ssl.truststore.location": str(pki.ca),
        }
    )
    app = create_app(settings)
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials)
    assert auth["security_protocol"] == "SASL_SSL"
    assert (auth["sasl_mechanism"], auth["sasl_plain_username"], auth["sasl_plain_password"]) == (
        "SCRAM-SHA-256",
        "u1",
        "p1",
    )
    assert isinstance(auth["ssl_context"], ssl.SSLContext) and auth["ssl_context"].check_hostname
    assert app.conf.id == "connect-coap-sink"
    assert (app.conf.broker_session_timeout, app.conf.broker_heartbeat_interval) == (6.0, 2.0)
