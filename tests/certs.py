"""A throw-away PKI for the DTLS tests, generated with ``cryptography`` (JKS copies made with ``keytool``).

Every file is written to one folder: PEM certificates and PKCS#8 PEM keys (what libcoap's
``coap-server-openssl -c cert -j key -C ca`` and ``coap-server-gnutls`` take), PKCS#12 and JKS key/trust
stores with the password ``rootPass`` (stream-reactor's default). Register the session fixture ``pki`` by
importing ``pki_fixture`` into ``tests/conftest.py``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

STORE_PASSWORD = "rootPass"
KEY_ALIAS = "client"
CA_ALIAS = "ca"

_Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Pki:
    """Paths of the generated files, all inside ``folder``."""

    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_rsa_cert: Path
    client_rsa_key: Path
    other_ca: Path
    untrusted_server_cert: Path
    untrusted_server_key: Path
    expired_server_cert: Path
    expired_server_key: Path
    wrong_host_server_cert: Path
    wrong_host_server_key: Path
    client_p12: Path
    trust_p12: Path
    client_jks: Path | None
    trust_jks: Path | None
    jks_skip_reason: str | None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str, now: dt.datetime) -> tuple[x509.Certificate, _Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str,
    issuer: tuple[x509.Certificate, _Key],
    *,
    key: _Key,
    usage: x509.ObjectIdentifier,
    not_before: dt.datetime,
    not_after: dt.datetime,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    issuer_cert, issuer_key = issuer
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=not is_rsa,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs))
    return path


def _write_key(path: Path, key: _Key) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    return path


def _keytool(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["keytool", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _make_jks(folder: Path, client_p12: Path, ca: Path) -> tuple[Path, Path]:
    """Convert with the real ``keytool`` (pyjks is only the reader under test, not the writer)."""
    client_jks, trust_jks = folder / "client.jks", folder / "truststore.jks"
    for stale in (client_jks, trust_jks):
        stale.unlink(missing_ok=True)
    # The two JVMs start in parallel: each takes most of a second.
    running = [
        _keytool(
            *f"-importkeystore -noprompt -srcstoretype PKCS12 -srcstorepass {STORE_PASSWORD}".split(),
            *f"-srcalias {KEY_ALIAS} -destalias {KEY_ALIAS} -deststoretype JKS".split(),
            *f"-deststorepass {STORE_PASSWORD} -destkeypass {STORE_PASSWORD}".split(),
            *["-srckeystore", str(client_p12), "-destkeystore", str(client_jks)],
        ),
        _keytool(
            *f"-importcert -noprompt -alias {CA_ALIAS} -storetype JKS -storepass {STORE_PASSWORD}".split(),
            *["-file", str(ca), "-keystore", str(trust_jks)],
        ),
    ]
    for process in running:
        output, _ = process.communicate(timeout=60)
        if process.returncode != 0:
            raise RuntimeError(f"keytool {process.args[1]} failed ({process.returncode}):\n{output}")
    return client_jks, trust_jks


def make_pki(folder: Path) -> Pki:
    """Generate the whole PKI into ``folder`` (created if needed); about a second with ``keytool``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    valid = {"not_before": now - dt.timedelta(days=1), "not_after": now + dt.timedelta(days=365)}
    server_auth, client_auth = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    localhost = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]

    ca = _ca("streamapp test CA", now)
    other_ca = _ca("streamapp other CA", now)

    def ec_leaf(stem: str, cn: str, issuer: tuple[x509.Certificate, _Key], **kwargs) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(cn, issuer, key=key, **kwargs)
        return _write_cert(folder / f"{stem}.pem", cert), _write_key(folder / f"{stem}.key", key)

    server = ec_leaf("server", "localhost", ca, usage=server_auth, sans=localhost, **valid)
    untrusted = ec_leaf("untrusted-server", "localhost", other_ca, usage=server_auth, sans=localhost, **valid)
    expired = ec_leaf(
        "expired-server",
        "localhost",
        ca,
        usage=server_auth,
        sans=localhost,
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    wrong_host = ec_leaf(
        "wrong-host-server",
        "not-this-host.example",
        ca,
        usage=server_auth,
        sans=[x509.DNSName("not-this-host.example")],
        **valid,
    )

    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _leaf("streamapp-client", ca, key=client_key, usage=client_auth, **valid)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_cert = _leaf("streamapp-client-rsa", ca, key=rsa_key, usage=client_auth, **valid)

    encryption = serialization.BestAvailableEncryption(STORE_PASSWORD.encode())
    client_p12 = folder / "client.p12"
    client_p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            KEY_ALIAS.encode(), client_key, client_cert, [ca[0]], encryption
        )
    )
    trust_p12 = folder / "truststore.p12"
    # A Java truststore (trusted-cert bags), so that keytool and the JVM read it the same way we do.
    trust_p12.write_bytes(
        pkcs12.serialize_java_truststore([pkcs12.PKCS12Certificate(ca[0], CA_ALIAS.encode())], encryption)
    )
    ca_pem = _write_cert(folder / "ca.pem", ca[0])

    client_jks: Path | None = None
    trust_jks: Path | None = None
    jks_skip_reason: str | None = None
    if shutil.which("keytool") is None:
        jks_skip_reason = "keytool not found on PATH: install a JDK (openjdk-17-jre-headless) for JKS tests"
    else:
        client_jks, trust_jks = _make_jks(folder, client_p12, ca_pem)

    return Pki(
        folder=folder,
        ca=ca_pem,
        server_cert=server[0],
        server_key=server[1],
        client_cert=_write_cert(folder / "client.pem", client_cert),
        client_key=_write_key(folder / "client.key", client_key),
        client_rsa_cert=_write_cert(folder / "client-rsa.pem", rsa_cert),
        client_rsa_key=_write_key(folder / "client-rsa.key", rsa_key),
        other_ca=_write_cert(folder / "other-ca.pem", other_ca[0]),
        untrusted_server_cert=untrusted[0],
        untrusted_server_key=untrusted[1],
        expired_server_cert=expired[0],
        expired_server_key=expired[1],
        wrong_host_server_cert=wrong_host[0],
        wrong_host_server_key=wrong_host[1],
        client_p12=client_p12,
        trust_p12=trust_p12,
        client_jks=client_jks,
        trust_jks=trust_jks,
        jks_skip_reason=jks_skip_reason,
    )


@pytest.fixture(scope="session", name="pki")
def pki_fixture(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The test PKI, generated once per session (import this into conftest.py to register ``pki``)."""
    return make_pki(tmp_path_factory.mktemp("pki"))
