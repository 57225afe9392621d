"""``coap+tcp://`` and ``coaps+tcp://`` wherever a server URI goes (``connect.coap.uri``, a statement's
INSERT target or ``PROPERTIES(uri=...)``, per-record templates), their default ports, and the TLS keys:
``check``'s errors name the key (docs/tcp.md)."""

from __future__ import annotations

import pytest

from streamapp.coap.security import unused_dtls_keys
from streamapp.coap.sender import Server
from streamapp.coap.tcp_tls import load_tls_options, tls_options, uses_tls
from streamapp.config.settings import Settings
from streamapp.engine.addressing import compile_server
from streamapp.errors import ConfigError
from streamapp.records import Record
from tests.certs import Pki

KCQL = "INSERT INTO sensors SELECT * FROM readings"


def load(uri: str, kcql: str = KCQL, **more: str) -> Settings:
    return Settings.from_mapping({"connect.coap.uri": uri, "connect.coap.kcql": kcql, **more})


@pytest.mark.parametrize("uri", ["coap+tcp://gw.example", "coaps+tcp://gw.example:6000/base", "COAP+TCP://h"])
def test_the_worker_uri_may_be_tcp_or_tls(uri: str) -> None:
    assert load(uri).uri == uri


@pytest.mark.parametrize(
    ("uri", "tcp", "tls", "port"),
    [
        ("coap+tcp://gw.example", True, False, 5683),
        ("coaps+tcp://gw.example", True, True, 5684),
        ("coaps+tcp://gw.example:7000/a", True, True, 7000),
        ("coap://gw.example", False, False, 5683),
        ("coaps://gw.example", False, False, 5684),
    ],
)
def test_the_scheme_picks_the_transport_and_the_default_port(
    uri: str, tcp: bool, tls: bool, port: int
) -> None:
    """RFC 8323 §8.1, §8.2: coap+tcp defaults to 5683, coaps+tcp to 5684."""
    server = Server(uri)
    assert (server.tcp, server.tls, server.port) == (tcp, tls, port)
    assert server.options.host == "gw.example"  # Uri-Host as over UDP


def test_a_statement_server_may_be_tcp_and_templated() -> None:
    settings = load(
        "coap://127.0.0.1",
        "INSERT INTO 'coap+tcp://{site}.gw.example:6000/dev/{id}' SELECT * FROM readings; "
        "INSERT INTO r SELECT * FROM readings PROPERTIES(uri='coaps+tcp://{site}.gw.example')",
        **{"connect.coap.truststore.path": "unused-here.pem"},
    )
    first, second = settings.statements
    value = Record(
        value={"site": "berlin", "id": 7},
        key=None,
        headers=(),
        topic="t",
        partition=0,
        offset=9,
        timestamp=None,
    )
    assert compile_server(first)(value) == "coap+tcp://berlin.gw.example:6000"
    assert compile_server(second)(value) == "coaps+tcp://berlin.gw.example"
    assert uses_tls(settings)


def test_discovery_is_for_udp_only() -> None:
    with pytest.raises(ConfigError) as info:
        load("coap+tcp://discoverIP4:5683")
    assert info.value.key == "connect.coap.uri"
    assert "TCP has no multicast" in str(info.value)


def test_coaps_tcp_without_a_truststore_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        tls_options(load("coaps+tcp://gw.example"))
    assert info.value.key == "connect.coap.truststore.path"
    assert "coaps+tcp://" in str(info.value)


def test_coap_tcp_needs_no_tls() -> None:
    assert tls_options(load("coap+tcp://gw.example")) is None


def test_tls_options_from_the_keystore_and_truststore(pki: Pki) -> None:
    settings = load(
        "coaps+tcp://localhost",
        **{
            "connect.coap.keystore.path": str(pki.client_p12),
            "connect.coap.truststore.path": str(pki.trust_p12),
        },
    )
    options = tls_options(settings)
    assert options is not None
    assert "client certificate 'CN=streamapp-client'" in options.description
    assert "trusting 1 certificate(s) from PKCS#12 truststore" in options.description
    assert options.context.check_hostname
    assert unused_dtls_keys(settings) == []  # the TLS keys are used, not "ignored"


def test_tls_options_from_pem_files_and_a_pem_bundle(pki: Pki) -> None:
    options = load_tls_options(
        private_key_file=str(pki.client_key),
        public_key_file=str(pki.client_cert),
        keystore_path=None,
        keystore_pass="",
        truststore_path=str(pki.ca),
        truststore_pass="",
        certs=(),
        cert_chain_key="client",
    )
    assert "from PEM files" in options.description and "PEM truststore" in options.description


def test_a_mismatched_pem_pair_names_the_key(pki: Pki) -> None:
    with pytest.raises(ConfigError) as info:
        load_tls_options(
            private_key_file=str(pki.server_key),
            public_key_file=str(pki.client_cert),
            keystore_path=None,
            keystore_pass="",
            truststore_path=str(pki.ca),
            truststore_pass="",
            certs=(),
            cert_chain_key="client",
        )
    assert info.value.key == "connect.coap.public.key.file"
