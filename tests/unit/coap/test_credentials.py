"""DTLS credentials: PSK, PEM, PKCS#12 and JKS sources, truststores, every error, and no secret anywhere."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mbedtls.pk
import mbedtls.tls
import mbedtls.x509
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import pkcs12

from streamapp.coap.credentials import (
    CERT_CHAIN_KEY,
    CERTS,
    KEYSTORE_PATH,
    PASSWORD,
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    TRUSTSTORE_PATH,
    USERNAME,
    DtlsCredentials,
    load_credentials,
)
from streamapp.errors import ConfigError
from tests.certs import Pki, make_pki

PSK = "Sup3r-S3cret-PSK"
KEYSTORE_PASS = "Kst0re-S3cret-Pass"
TRUSTSTORE_PASS = "Tru5t-S3cret-Pass"
WRONG_PASS = "Wr0ng-S3cret-Guess"
SECRETS = [PSK, KEYSTORE_PASS, TRUSTSTORE_PASS, WRONG_PASS, "rootPass"]


@dataclass(frozen=True)
class Files:
    """The session PKI plus files made for this module: stores with distinctive passwords, bad files."""

    pki: Pki
    client_p12: Path  # KEYSTORE_PASS
    trust_p12: Path  # TRUSTSTORE_PASS
    two_cas_p12: Path  # aliases "ca" and "other", password rootPass
    chain_pem: Path  # client leaf + CA
    ec_traditional_key: Path
    rsa_traditional_key: Path
    ed25519_key: Path
    encrypted_key: Path
    public_key_only: Path
    garbage: Path
    der_garbage: Path
    jks_garbage: Path
    # Base64 lines of every private key, which no text may contain (and pytest must not print).
    key_material: tuple[str, ...] = field(repr=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    folder = tmp_path_factory.mktemp("extra")
    bundle = pkcs12.load_pkcs12(pki.client_p12.read_bytes(), b"rootPass")
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    other_ca = x509.load_pem_x509_certificate(pki.other_ca.read_bytes())
    client_key = serialization.load_pem_private_key(pki.client_key.read_bytes(), None)
    rsa_key = serialization.load_pem_private_key(pki.client_rsa_key.read_bytes(), None)

    def write(name: str, data: bytes) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    def encryption(password: str) -> serialization.KeySerializationEncryption:
        return serialization.BestAvailableEncryption(password.encode())

    pem = serialization.Encoding.PEM
    traditional, pkcs8 = serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8
    ed_key = ed25519.Ed25519PrivateKey.generate()
    files = Files(
        pki=pki,
        client_p12=write(
            "client.p12",
            pkcs12.serialize_key_and_certificates(
                b"client", bundle.key, bundle.cert.certificate, [ca], encryption(KEYSTORE_PASS)
            ),
        ),
        trust_p12=write(
            "trust.p12",
            pkcs12.serialize_java_truststore(
                [pkcs12.PKCS12Certificate(ca, b"ca")], encryption(TRUSTSTORE_PASS)
            ),
        ),
        two_cas_p12=write(
            "two-cas.p12",
            pkcs12.serialize_java_truststore(
                [pkcs12.PKCS12Certificate(ca, b"ca"), pkcs12.PKCS12Certificate(other_ca, b"other")],
                encryption("rootPass"),
            ),
        ),
        chain_pem=write("chain.pem", pki.client_cert.read_bytes() + pki.ca.read_bytes()),
        ec_traditional_key=write(
            "ec-traditional.key", client_key.private_bytes(pem, traditional, serialization.NoEncryption())
        ),
        rsa_traditional_key=write(
            "rsa-traditional.key", rsa_key.private_bytes(pem, traditional, serialization.NoEncryption())
        ),
        ed25519_key=write("ed25519.key", ed_key.private_bytes(pem, pkcs8, serialization.NoEncryption())),
        encrypted_key=write("encrypted.key", client_key.private_bytes(pem, pkcs8, encryption(KEYSTORE_PASS))),
        public_key_only=write(
            "public.pem",
            client_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
        ),
        garbage=write("garbage.bin", b"this is not a keystore\n"),
        der_garbage=write("garbage.der", b"\x30\x82\x01\x00" + bytes(range(256))),
        jks_garbage=write("garbage.jks", b"\xfe\xed\xfe\xed\x00\x00\x00\x02" + bytes(64)),
        # Evaluated last, so every key file written above is in.
        key_material=tuple(
            line
            for path in [*pki.folder.glob("*.key"), *folder.glob("*.key")]
            for line in path.read_text().splitlines()
            if line and not line.startswith("-----")
        ),
    )
    assert files.key_material
    return files


def load(**overrides: Any) -> DtlsCredentials:
    arguments: dict[str, Any] = {
        "username": None,
        "password": None,
        "private_key_file": None,
        "public_key_file": None,
        "keystore_path": None,
        "keystore_pass": "rootPass",
        "truststore_path": None,
        "truststore_pass": "rootPass",
        "certs": (),
        "cert_chain_key": "client",
    }
    for name, value in overrides.items():
        assert name in arguments, name
        arguments[name] = str(value) if isinstance(value, Path) else value
    return load_credentials(**arguments)


def assert_no_secret(text: str, files: Files) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert "-----BEGIN" not in text and "KEY-----" not in text
    for line in files.key_material:
        assert line not in text
    # No long base64 run either (a key or a whole DER blob in any encoding).
    assert not re.search(r"[A-Za-z0-9+/=]{40,}", text), text


def config_error(files: Files, key: str, **overrides: Any) -> str:
    """Expect a ConfigError on ``key``; check it carries no secret and return its text."""
    with pytest.raises(ConfigError) as info:
        load(**overrides)
    assert info.value.key == key, str(info.value)
    assert_no_secret(str(info.value), files)
    assert_no_secret(repr(info.value), files)
    return str(info.value)


def assert_clean(creds: DtlsCredentials, files: Files) -> None:
    assert_no_secret(creds.description, files)
    assert_no_secret(repr(creds), files)
    assert_no_secret(str(creds), files)


def der_of_pem(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)


def trusted_ders(creds: DtlsCredentials) -> list[bytes]:
    assert creds.trust_store is not None
    return [crt.to_DER() for crt in creds.trust_store]


def leaf_der(creds: DtlsCredentials) -> bytes:
    assert creds.certificate_chain is not None
    return creds.certificate_chain[0][0].to_DER()


# --- PSK ----------------------------------------------------------------------------------------------------


def test_psk(files: Files) -> None:
    creds = load(username="sensor-gw-1", password=PSK)
    assert creds.mode == "psk"
    assert creds.psk == ("sensor-gw-1", PSK.encode("utf-8"))
    assert creds.certificate_chain is None and creds.trust_store is None
    assert "sensor-gw-1" in creds.description and "PSK" in creds.description
    assert_clean(creds, files)


def test_psk_key_is_utf8() -> None:
    assert load(username="id", password="clé-🔑").psk == ("id", "clé-🔑".encode())


@pytest.mark.parametrize("password", [None, ""])
def test_psk_needs_password(files: Files, password: str | None) -> None:
    message = config_error(files, PASSWORD, username="sensor-gw-1", password=password)
    assert "sensor-gw-1" in message


def test_psk_with_pem_certificate_and_truststore(files: Files) -> None:
    pki = files.pki
    creds = load(
        username="sensor-gw-1",
        password=PSK,
        public_key_file=pki.client_cert,
        private_key_file=pki.client_key,
        truststore_path=pki.ca,
    )
    assert creds.mode == "psk" and creds.psk == ("sensor-gw-1", PSK.encode())
    assert leaf_der(creds) == der_of_pem(pki.client_cert)
    assert trusted_ders(creds) == [der_of_pem(pki.ca)]
    assert_clean(creds, files)


def test_a_passed_over_keystore_is_named(files: Files) -> None:
    pki = files.pki
    psk = load(username="u", password=PSK, keystore_path=files.client_p12)
    pem = load(**_pem(files), truststore_path=pki.ca, keystore_path=files.client_p12)
    assert "keystore.path unused" in psk.description and "keystore.path unused" in pem.description


def test_psk_with_one_pem_file_only_is_an_error(files: Files) -> None:
    pki = files.pki
    config_error(files, PUBLIC_KEY_FILE, username="u", password=PSK, private_key_file=pki.client_key)
    config_error(files, PRIVATE_KEY_FILE, username="u", password=PSK, public_key_file=pki.client_cert)


# --- PEM files ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("truststore", ["pem", "p12", "jks"])
def test_pem_ec_client(files: Files, truststore: str) -> None:
    pki = files.pki
    if truststore == "jks" and pki.trust_jks is None:
        pytest.skip(pki.jks_skip_reason)
    path, password = {
        "pem": (pki.ca, "ignored"),
        "p12": (files.trust_p12, TRUSTSTORE_PASS),
        "jks": (pki.trust_jks, "rootPass"),
    }[truststore]
    creds = load(
        public_key_file=pki.client_cert,
        private_key_file=pki.client_key,
        truststore_path=path,
        truststore_pass=password,
    )
    assert creds.mode == "x509" and creds.psk is None
    assert creds.certificate_chain is not None
    assert isinstance(creds.certificate_chain[1], mbedtls.pk.ECC)
    assert leaf_der(creds) == der_of_pem(pki.client_cert)
    assert trusted_ders(creds) == [der_of_pem(pki.ca)]
    assert "CN=streamapp-client" in creds.description and "secp256r1" in creds.description
    assert "trusting 1 certificate" in creds.description
    assert_clean(creds, files)


def test_pem_rsa_client(files: Files) -> None:
    pki = files.pki
    creds = load(
        public_key_file=pki.client_rsa_cert, private_key_file=pki.client_rsa_key, truststore_path=pki.ca
    )
    assert creds.certificate_chain is not None
    assert isinstance(creds.certificate_chain[1], mbedtls.pk.RSA)
    assert "RSA 2048" in creds.description
    assert_clean(creds, files)


def test_traditional_pem_keys(files: Files) -> None:
    pki = files.pki
    ec = load(
        public_key_file=pki.client_cert, private_key_file=files.ec_traditional_key, truststore_path=pki.ca
    )
    rsa = load(
        public_key_file=pki.client_rsa_cert,
        private_key_file=files.rsa_traditional_key,
        truststore_path=pki.ca,
    )
    assert ec.certificate_chain is not None and rsa.certificate_chain is not None
    assert isinstance(ec.certificate_chain[1], mbedtls.pk.ECC)
    assert isinstance(rsa.certificate_chain[1], mbedtls.pk.RSA)


def test_pem_chain_keeps_its_order(files: Files) -> None:
    pki = files.pki
    creds = load(public_key_file=files.chain_pem, private_key_file=pki.client_key, truststore_path=pki.ca)
    assert creds.certificate_chain is not None
    assert [crt.to_DER() for crt in creds.certificate_chain[0]] == [
        der_of_pem(pki.client_cert),
        der_of_pem(pki.ca),
    ]


# --- keystores ----------------------------------------------------------------------------------------------


def test_pkcs12_keystore_and_truststore(files: Files) -> None:
    creds = load(
        keystore_path=files.client_p12,
        keystore_pass=KEYSTORE_PASS,
        truststore_path=files.trust_p12,
        truststore_pass=TRUSTSTORE_PASS,
    )
    assert creds.mode == "x509"
    assert creds.certificate_chain is not None
    assert [crt.to_DER() for crt in creds.certificate_chain[0]] == [
        der_of_pem(files.pki.client_cert),
        der_of_pem(files.pki.ca),
    ]
    assert trusted_ders(creds) == [der_of_pem(files.pki.ca)]
    assert "PKCS#12" in creds.description and "'client'" in creds.description
    assert_clean(creds, files)


def test_jks_keystore_and_truststore(files: Files) -> None:
    pki = files.pki
    if pki.client_jks is None or pki.trust_jks is None:
        pytest.skip(pki.jks_skip_reason)
    creds = load(keystore_path=pki.client_jks, truststore_path=pki.trust_jks, cert_chain_key="CLIENT")
    assert creds.mode == "x509"
    assert leaf_der(creds) == der_of_pem(pki.client_cert)
    assert trusted_ders(creds) == [der_of_pem(pki.ca)]
    assert "JKS" in creds.description
    assert_clean(creds, files)


def test_keystore_is_chosen_by_content_not_name(files: Files, tmp_path: Path) -> None:
    disguised = tmp_path / "keystore.jks"
    disguised.write_bytes(files.client_p12.read_bytes())
    creds = load(keystore_path=disguised, keystore_pass=KEYSTORE_PASS, truststore_path=files.pki.ca)
    assert "PKCS#12" in creds.description


# --- trusted aliases ----------------------------------------------------------------------------------------


def x509_with(files: Files, **overrides: Any) -> DtlsCredentials:
    pem = {"public_key_file": files.pki.client_cert, "private_key_file": files.pki.client_key}
    return load(**pem, **overrides)


def test_certs_selects_trusted_aliases(files: Files) -> None:
    pki = files.pki
    both = x509_with(files, truststore_path=files.two_cas_p12)
    assert sorted(trusted_ders(both)) == sorted([der_of_pem(pki.ca), der_of_pem(pki.other_ca)])
    other = x509_with(files, truststore_path=files.two_cas_p12, certs=("OTHER",))
    assert trusted_ders(other) == [der_of_pem(pki.other_ca)]
    if pki.trust_jks is not None:
        assert trusted_ders(x509_with(files, truststore_path=pki.trust_jks, certs=("ca",))) == [
            der_of_pem(pki.ca)
        ]


def test_unknown_trusted_alias_lists_present_ones(files: Files) -> None:
    message = config_error(
        files,
        CERTS,
        public_key_file=files.pki.client_cert,
        private_key_file=files.pki.client_key,
        truststore_path=files.two_cas_p12,
        certs=("ca", "nope"),
    )
    assert "'nope'" in message and "it holds: ca, other" in message
    config_error(files, CERTS, **_pem(files), certs=("ca",))  # no truststore to select from


def test_aliases_cannot_select_from_a_pem_bundle(files: Files) -> None:
    pki = files.pki
    config_error(
        files,
        CERTS,
        public_key_file=pki.client_cert,
        private_key_file=pki.client_key,
        truststore_path=pki.ca,
        certs=("ca",),
    )


# --- errors -------------------------------------------------------------------------------------------------


def test_nothing_configured(files: Files) -> None:
    message = config_error(files, USERNAME)
    assert "PSK" in message and "PEM" in message and "keystore" in message


def test_x509_needs_a_truststore(files: Files) -> None:
    pki = files.pki
    config_error(files, TRUSTSTORE_PATH, public_key_file=pki.client_cert, private_key_file=pki.client_key)
    config_error(files, TRUSTSTORE_PATH, keystore_path=files.client_p12, keystore_pass=KEYSTORE_PASS)


def test_key_alias_not_found_lists_present_ones(files: Files) -> None:
    message = config_error(
        files,
        CERT_CHAIN_KEY,
        keystore_path=files.client_p12,
        keystore_pass=KEYSTORE_PASS,
        truststore_path=files.pki.ca,
        cert_chain_key="server",
    )
    assert "'server'" in message and "it holds: client" in message
    if files.pki.client_jks is not None:
        message = config_error(
            files,
            CERT_CHAIN_KEY,
            keystore_path=files.pki.client_jks,
            truststore_path=files.pki.ca,
            cert_chain_key="server",
        )
        assert "it holds: client" in message


def test_key_alias_must_be_a_private_key_entry(files: Files) -> None:
    message = config_error(
        files,
        CERT_CHAIN_KEY,
        keystore_path=files.trust_p12,
        keystore_pass=TRUSTSTORE_PASS,
        truststore_path=files.pki.ca,
        cert_chain_key="ca",
    )
    assert "not a private-key entry" in message
    if files.pki.trust_jks is not None:
        message = config_error(
            files,
            CERT_CHAIN_KEY,
            keystore_path=files.pki.trust_jks,
            truststore_path=files.pki.ca,
            cert_chain_key="ca",
        )
        assert "not a private-key entry" in message


def test_wrong_passwords(files: Files) -> None:
    pki = files.pki
    stores = [(KEYSTORE_PATH, "keystore", files.client_p12), (TRUSTSTORE_PATH, "truststore", files.trust_p12)]
    if pki.client_jks is not None and pki.trust_jks is not None:
        stores += [
            (KEYSTORE_PATH, "keystore", pki.client_jks),
            (TRUSTSTORE_PATH, "truststore", pki.trust_jks),
        ]
    for key, kind, path in stores:
        arguments = (
            {"keystore_path": path, "keystore_pass": WRONG_PASS, "truststore_path": pki.ca}
            if kind == "keystore"
            else {**_pem(files), "truststore_path": path, "truststore_pass": WRONG_PASS}
        )
        message = config_error(files, key, **arguments)
        assert "wrong password or corrupt keystore" in message and str(path) in message


def _pem(files: Files) -> dict[str, Path]:
    return {"public_key_file": files.pki.client_cert, "private_key_file": files.pki.client_key}


def test_missing_files(files: Files) -> None:
    missing = "/nonexistent/streamapp/x.p12"
    message = config_error(files, KEYSTORE_PATH, keystore_path=missing)
    assert message == f"{KEYSTORE_PATH}: file '{missing}' does not exist"
    config_error(files, TRUSTSTORE_PATH, **_pem(files), truststore_path=missing)
    config_error(files, PRIVATE_KEY_FILE, public_key_file=files.pki.client_cert, private_key_file=missing)
    config_error(files, PUBLIC_KEY_FILE, public_key_file=missing, private_key_file=files.pki.client_key)
    config_error(files, KEYSTORE_PATH, keystore_path=files.pki.folder)  # a directory


@pytest.mark.parametrize("garbage", ["garbage", "der_garbage", "jks_garbage"])
def test_garbage_stores(files: Files, garbage: str) -> None:
    path = getattr(files, garbage)
    config_error(files, KEYSTORE_PATH, keystore_path=path, keystore_pass=KEYSTORE_PASS, truststore_path=path)
    config_error(files, TRUSTSTORE_PATH, **_pem(files), truststore_path=path, truststore_pass=TRUSTSTORE_PASS)


def test_garbage_pem_files(files: Files) -> None:
    pki = files.pki
    config_error(files, PRIVATE_KEY_FILE, public_key_file=pki.client_cert, private_key_file=files.garbage)
    # Swapped files: the certificate file is read first and holds no certificate...
    config_error(files, PUBLIC_KEY_FILE, public_key_file=pki.client_key, private_key_file=pki.client_cert)
    # ...and a certificate where the key belongs gets a hint.
    message = config_error(files, PRIVATE_KEY_FILE, public_key_file=pki.client_cert, private_key_file=pki.ca)
    assert "swapped" in message
    config_error(files, PUBLIC_KEY_FILE, public_key_file=files.garbage, private_key_file=pki.client_key)
    config_error(files, KEYSTORE_PATH, keystore_path=pki.client_cert)  # PEM is not a keystore


def test_pem_without_certificate(files: Files) -> None:
    message = config_error(
        files, PUBLIC_KEY_FILE, public_key_file=files.public_key_only, private_key_file=files.pki.client_key
    )
    assert "no PEM certificate" in message and "raw public key" in message
    message = config_error(
        files, PUBLIC_KEY_FILE, public_key_file=files.pki.client_key, private_key_file=files.pki.client_key
    )
    assert "no PEM certificate" in message


def test_mismatched_certificate_and_key(files: Files) -> None:
    pki = files.pki
    message = config_error(
        files,
        PUBLIC_KEY_FILE,
        public_key_file=pki.client_cert,
        private_key_file=pki.client_rsa_key,
        truststore_path=pki.ca,
    )
    assert "does not match the private key" in message


def test_unsupported_and_encrypted_keys(files: Files) -> None:
    pki = files.pki
    message = config_error(
        files, PRIVATE_KEY_FILE, public_key_file=pki.client_cert, private_key_file=files.ed25519_key
    )
    assert "unsupported key type" in message and "EC or RSA" in message
    message = config_error(
        files, PRIVATE_KEY_FILE, public_key_file=pki.client_cert, private_key_file=files.encrypted_key
    )
    assert "encrypted" in message


def test_expired_own_certificate(files: Files) -> None:
    pki = files.pki
    not_after = x509.load_pem_x509_certificate(pki.expired_server_cert.read_bytes()).not_valid_after_utc
    message = config_error(
        files,
        PUBLIC_KEY_FILE,
        public_key_file=pki.expired_server_cert,
        private_key_file=pki.expired_server_key,
        truststore_path=pki.ca,
    )
    assert "expired" in message and str(not_after) in message


# --- the result works with Mbed TLS ------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["ec", "rsa", "p12"])
def test_credentials_configure_an_mbedtls_dtls_client(files: Files, client: str) -> None:
    pki = files.pki
    creds = {
        "ec": lambda: load(**_pem(files), truststore_path=pki.ca),
        "rsa": lambda: load(
            public_key_file=pki.client_rsa_cert, private_key_file=pki.client_rsa_key, truststore_path=pki.ca
        ),
        "p12": lambda: load(
            keystore_path=files.client_p12,
            keystore_pass=KEYSTORE_PASS,
            truststore_path=files.trust_p12,
            truststore_pass=TRUSTSTORE_PASS,
        ),
    }[client]()
    assert creds.certificate_chain is not None and creds.trust_store is not None
    conf = mbedtls.tls.DTLSConfiguration(
        certificate_chain=creds.certificate_chain,
        trust_store=creds.trust_store,
        validate_certificates=True,
    )
    buffers = mbedtls.tls.ClientContext(conf).wrap_buffers("localhost")
    assert buffers.context.configuration.certificate_chain is creds.certificate_chain

    crts, key = creds.certificate_chain
    assert crts[0].subject_public_key.export_public_key("DER") == key.export_public_key("DER")
    (ca,) = creds.trust_store
    assert ca.verify(mbedtls.x509.CRT.from_file(pki.server_cert))
    assert ca.verify(crts[0])
    assert not ca.verify(mbedtls.x509.CRT.from_file(pki.untrusted_server_cert))


def test_psk_configures_an_mbedtls_dtls_client() -> None:
    creds = load(username="sensor-gw-1", password=PSK)
    conf = mbedtls.tls.DTLSConfiguration(pre_shared_key=creds.psk)
    mbedtls.tls.ClientContext(conf).wrap_buffers("localhost")
