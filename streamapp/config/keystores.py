"""Reading key and certificate stores: JKS and JCEKS (``pyjks``), PKCS#12 and PEM (``cryptography``).

Shared by the DTLS credentials (``streamapp/coap/credentials.py``) and the Kafka client's TLS
(``streamapp/kafka/tls.py``). Stores are recognised by content, not by name. Every failure is a
``ConfigError`` naming the configuration key of the file; no message carries a password or key material.
"""

from __future__ import annotations

from pathlib import Path

import jks
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from streamapp.errors import ConfigError

JAVA_MAGIC = {b"\xfe\xed\xfe\xed": "JKS", b"\xce\xce\xce\xce": "JCEKS"}
BAD_STORE = "wrong password or corrupt keystore"


def read_file(key: str, path: str) -> bytes:
    file = Path(path)
    if not file.exists():
        raise ConfigError(key, f"file '{path}' does not exist")
    if not file.is_file():
        raise ConfigError(key, f"'{path}' is not a file")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(key, f"cannot read file '{path}': {exc.strerror}") from None
    if not data.strip():
        raise ConfigError(key, f"file '{path}' is empty")
    return data


def store_kind(data: bytes) -> str:
    """``JKS``, ``JCEKS``, ``PEM`` or ``PKCS12`` (anything else is tried, and refused, as PKCS#12)."""
    if kind := JAVA_MAGIC.get(data[:4]):
        return kind
    return "PEM" if data.lstrip().startswith(b"-----BEGIN") else "PKCS12"


def java_store(key: str, path: str, data: bytes, password: str) -> jks.KeyStore:
    try:
        return jks.KeyStore.loads(data, password)
    except Exception:  # pyjks raises a zoo of exceptions (signature, format, struct) for the same cause
        raise ConfigError(key, f"cannot open '{path}': {BAD_STORE}") from None


def pkcs12_store(
    key: str, path: str, data: bytes, password: str, *, pem_allowed: bool = False
) -> pkcs12.PKCS12KeyAndCertificates:
    if not data.startswith(b"\x30"):  # PKCS#12 is a DER SEQUENCE; anything else is not a keystore at all
        pem = " nor a PEM certificate bundle" if pem_allowed else ""
        raise ConfigError(key, f"'{path}' is not a JKS, JCEKS or PKCS#12 store{pem}")
    try:
        return pkcs12.load_pkcs12(data, password.encode())
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(key, f"cannot open '{path}' as PKCS#12: {BAD_STORE}") from None


def order_chain(leaf: x509.Certificate, others: list[x509.Certificate]) -> list[x509.Certificate]:
    """Leaf first, then each issuer found among ``others`` (a PKCS#12 bag has no order)."""
    chain, pool = [leaf], list(others)
    while chain[-1].issuer != chain[-1].subject:
        issuer = next((c for c in pool if c.subject == chain[-1].issuer), None)
        if issuer is None:
            break
        chain.append(issuer)
        pool.remove(issuer)
    return chain


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def friendly_name(cert: pkcs12.PKCS12Certificate) -> str | None:
    return cert.friendly_name.decode(errors="replace") if cert.friendly_name else None
