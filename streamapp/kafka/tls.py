"""The Kafka client's TLS context from Kafka's ``ssl.*`` keys (``security.protocol`` SSL or SASL_SSL).

``ssl.truststore.*`` says whom the worker trusts (unset: the system's CAs); ``ssl.keystore.*`` and
``ssl.key.password`` give the worker's own certificate for brokers that verify clients (mutual TLS);
``ssl.endpoint.identification.algorithm=https`` (Kafka's default) checks the broker's host name. Stores may
be JKS, PKCS12 or PEM, as in Kafka; everything is read and checked at start, and every failure names its key.
"""

from __future__ import annotations

import re
import secrets
import ssl
import tempfile
from pathlib import Path

import jks
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from streamapp.config.keys import Secret, revealed
from streamapp.config.keystores import (
    java_store,
    order_chain,
    pkcs12_store,
    read_file,
    spki,
    store_kind,
)
from streamapp.config.settings import StoreLocation
from streamapp.errors import ConfigError

KEY_PASSWORD = "ssl.key.password"
_PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)


def client_ssl_context(
    truststore: StoreLocation | None,
    keystore: StoreLocation | None,
    key_password: Secret | None,
    *,
    check_hostname: bool,
) -> tuple[ssl.SSLContext, str]:
    """The context and a description without secrets (``trusting 1 certificate from PEM '...'``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    parts: list[str] = []
    if truststore is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        parts.append("trusting the system's CAs")
    else:
        certificates, kind = trusted_certificates(truststore)
        pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)
        try:
            context.load_verify_locations(cadata=pem)
        except ssl.SSLError as exc:
            raise ConfigError(truststore.key, f"'{truststore.path}': {exc.reason or exc}") from None
        parts.append(f"trusting {len(certificates)} certificate(s) from {kind} '{truststore.path}'")
    if keystore is not None:
        key, chain, kind = client_identity(keystore, key_password)
        _load_identity(context, keystore, key, chain)
        subject = chain[0].subject.rfc4514_string()
        parts.append(f"client certificate {subject!r} from {kind} '{keystore.path}'")
    parts.append("broker host name checked" if check_hostname else "broker host name NOT checked")
    return context, "; ".join(parts)


def trusted_certificates(store: StoreLocation) -> tuple[list[x509.Certificate], str]:
    data = read_file(store.key, store.path)
    kind = _kind(store, data)
    password = revealed(store.password) or ""
    if kind == "PEM":
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise ConfigError(store.key, f"no PEM certificate in '{store.path}'") from None
    elif kind in ("JKS", "JCEKS"):
        opened = java_store(store.key, store.path, data, password)
        certificates = [
            x509.load_der_x509_certificate(entry.cert)
            for entry in opened.entries.values()
            if isinstance(entry, jks.TrustedCertEntry)
        ]
    else:
        bundle = pkcs12_store(store.key, store.path, data, password, pem_allowed=True)
        certificates = [c.certificate for c in bundle.additional_certs]
        if bundle.cert is not None:
            certificates.append(bundle.cert.certificate)
    if not certificates:
        raise ConfigError(store.key, f"the {kind} truststore '{store.path}' holds no certificate")
    return certificates, kind


def client_identity(
    store: StoreLocation, key_password: Secret | None
) -> tuple[PrivateKeyTypes, list[x509.Certificate], str]:
    """The private key and its chain (leaf first) from a JKS, PKCS12 or PEM keystore."""
    data = read_file(store.key, store.path)
    kind = _kind(store, data)
    store_password = revealed(store.password) or ""
    # Kafka: the key's own password defaults to the store's.
    entry_password = key_password.reveal() if key_password is not None else store_password
    if kind == "PEM":
        key, chain = _pem_identity(store, data, entry_password)
    elif kind in ("JKS", "JCEKS"):
        key, chain = _java_identity(store, data, store_password, entry_password)
    else:
        bundle = pkcs12_store(store.key, store.path, data, store_password)
        if bundle.key is None or bundle.cert is None:
            raise ConfigError(store.key, f"the PKCS12 keystore '{store.path}' holds no private key entry")
        key = bundle.key
        chain = order_chain(bundle.cert.certificate, [c.certificate for c in bundle.additional_certs])
    if spki(chain[0].public_key()) != spki(key.public_key()):
        raise ConfigError(store.key, f"the certificate in '{store.path}' does not match its private key")
    return key, chain, kind


def _kind(store: StoreLocation, data: bytes) -> str:
    found = store_kind(data)
    if store.kind is not None and store.kind != ("JKS" if found == "JCEKS" else found):
        raise ConfigError(
            store.key.replace(".location", ".type"),
            f"is {store.kind}, but '{store.path}' is a {found} file",
        )
    return found


def _pem_identity(
    store: StoreLocation, data: bytes, password: str
) -> tuple[PrivateKeyTypes, list[x509.Certificate]]:
    block = _PEM_KEY.search(data)
    if block is None:
        raise ConfigError(store.key, f"the PEM keystore '{store.path}' holds no private key")
    encrypted = b"ENCRYPTED" in block.group(0)
    try:
        key = serialization.load_pem_private_key(block.group(0), password.encode() if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            KEY_PASSWORD, f"cannot read the private key in '{store.path}': wrong password or corrupt key"
        ) from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(store.key, f"the PEM keystore '{store.path}' holds no certificate") from None
    return key, order_chain(certificates[0], certificates[1:])


def _java_identity(
    store: StoreLocation, data: bytes, store_password: str, entry_password: str
) -> tuple[PrivateKeyTypes, list[x509.Certificate]]:
    opened = java_store(store.key, store.path, data, store_password)
    entries = [e for e in opened.entries.values() if isinstance(e, jks.PrivateKeyEntry)]
    if not entries:
        raise ConfigError(store.key, f"the keystore '{store.path}' holds no private key entry")
    entry = entries[0]
    if not entry.is_decrypted():
        try:
            entry.decrypt(entry_password)
        except Exception:  # pyjks: DecryptionFailureException and friends
            raise ConfigError(
                KEY_PASSWORD, f"cannot decrypt the key {entry.alias!r} in '{store.path}': wrong password"
            ) from None
    try:
        key = serialization.load_der_private_key(entry.pkey_pkcs8, password=None)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(store.key, f"the key {entry.alias!r} in '{store.path}' cannot be read") from None
    chain = [x509.load_der_x509_certificate(cert) for _, cert in entry.cert_chain]
    return key, chain


def _load_identity(
    context: ssl.SSLContext, store: StoreLocation, key: PrivateKeyTypes, chain: list[x509.Certificate]
) -> None:
    """Python's ssl loads a certificate chain from files only: write it, with the key encrypted under a
    one-time password, to a private temporary file, load it and remove it at once."""
    one_time = secrets.token_bytes(32)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(one_time),
    ) + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    with tempfile.TemporaryDirectory(prefix="streamapp-tls-") as directory:
        path = Path(directory) / "identity.pem"
        path.touch(mode=0o600)
        path.write_bytes(pem)
        try:
            context.load_cert_chain(path, password=one_time)
        except ssl.SSLError as exc:
            raise ConfigError(store.key, f"'{store.path}': {exc.reason or exc}") from None
