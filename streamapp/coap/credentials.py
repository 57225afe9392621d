"""DTLS credentials for ``coaps://``: a PSK, or an X.509 certificate chain and key, plus the trusted CAs.

The sources and their order follow stream-reactor: ``connect.coap.username``/``password`` (PSK), else the
PEM files ``connect.coap.private.key.file``/``public.key.file``, else the keystore
``connect.coap.keystore.path``. Stores are recognised by content, not by name: JKS and JCEKS (``pyjks``),
PKCS#12 (``cryptography``) and, for truststores, a PEM bundle. Everything is parsed and checked with
``cryptography`` and handed to Mbed TLS as DER, so that a bad file fails at start-up with a ``ConfigError``
naming the key instead of in the middle of a handshake. No message, description or repr carries a password,
the PSK or key material.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import jks
import mbedtls.pk
import mbedtls.tls
import mbedtls.x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from streamapp.config.keystores import (
    JAVA_MAGIC,
    der,
    friendly_name,
    java_store,
    order_chain,
    pkcs12_store,
    read_file,
    spki,
)
from streamapp.errors import ConfigError

USERNAME = "connect.coap.username"
PASSWORD = "connect.coap.password"
PRIVATE_KEY_FILE = "connect.coap.private.key.file"
PUBLIC_KEY_FILE = "connect.coap.public.key.file"
KEYSTORE_PATH = "connect.coap.keystore.path"
TRUSTSTORE_PATH = "connect.coap.truststore.path"
CERTS = "connect.coap.certs"
CERT_CHAIN_KEY = "connect.coap.cert.chain.key"


CertificateChain = tuple[tuple[mbedtls.x509.CRT, ...], mbedtls.pk.ECC | mbedtls.pk.RSA]


@dataclass(frozen=True, repr=False)
class DtlsCredentials:
    """What the DTLS client presents (PSK and/or certificate chain) and what it trusts."""

    mode: Literal["psk", "x509"]
    psk: tuple[str, bytes] | None
    certificate_chain: CertificateChain | None
    trust_store: mbedtls.tls.TrustStore | None
    description: str

    def __repr__(self) -> str:
        # The default repr would print the PSK, and str() of an mbedtls key is its PEM.
        return f"DtlsCredentials({self.description})"


def load_credentials(
    *,
    username: str | None,
    password: str | None,
    private_key_file: str | None,
    public_key_file: str | None,
    keystore_path: str | None,
    keystore_pass: str,
    truststore_path: str | None,
    truststore_pass: str,
    certs: tuple[str, ...],
    cert_chain_key: str,
) -> DtlsCredentials:
    """Load and check the credentials; raise ``ConfigError`` naming the key at fault.

    Like stream-reactor, a PSK or PEM files take precedence over a keystore; a keystore so passed over is
    named in the description rather than silently dropped.
    """
    if certs and not truststore_path:
        raise ConfigError(CERTS, f"selects trusted aliases, but {TRUSTSTORE_PATH} is not set")
    unused = f" ({KEYSTORE_PATH} unused)" if keystore_path else ""
    if username:
        if not password:
            raise ConfigError(PASSWORD, f"the PSK identity {username!r} ({USERNAME}) needs a PSK secret")
        parts = [f"PSK identity {username!r}"]
        chain = None
        if private_key_file or public_key_file:
            chain, summary = _pem_identity(private_key_file, public_key_file)
            parts.append(summary)
        trust = None
        if truststore_path:
            trust, summary = _truststore(truststore_path, truststore_pass, certs)
            parts.append(summary)
        return DtlsCredentials("psk", (username, password.encode()), chain, trust, "; ".join(parts) + unused)
    if private_key_file or public_key_file:
        chain, summary = _pem_identity(private_key_file, public_key_file)
        summary += unused
    elif keystore_path:
        chain, summary = _keystore_identity(keystore_path, keystore_pass, cert_chain_key)
    else:
        raise ConfigError(
            USERNAME,
            f"coaps:// needs DTLS credentials: a PSK ({USERNAME} and {PASSWORD}), PEM files "
            f"({PRIVATE_KEY_FILE} and {PUBLIC_KEY_FILE}) or a keystore ({KEYSTORE_PATH})",
        )
    if not truststore_path:
        raise ConfigError(
            TRUSTSTORE_PATH,
            "X.509 DTLS needs a truststore with the CA certificates the server's certificate must chain to",
        )
    trust, trust_summary = _truststore(truststore_path, truststore_pass, certs)
    return DtlsCredentials("x509", None, chain, trust, f"X.509 {summary}; {trust_summary}")


# --- own identity -----------------------------------------------------------------------------------------


def _pem_identity(private_key_file: str | None, public_key_file: str | None) -> tuple[CertificateChain, str]:
    chain, key, source = pem_parts(private_key_file, public_key_file)
    return _identity(chain, key, source, cert_key=PUBLIC_KEY_FILE, key_key=PRIVATE_KEY_FILE)


def pem_parts(
    private_key_file: str | None, public_key_file: str | None
) -> tuple[list[x509.Certificate], PrivateKeyTypes, str]:
    """The certificate chain and key of the PEM files, parsed (and what they are, for descriptions)."""
    for file_key, value in ((PUBLIC_KEY_FILE, public_key_file), (PRIVATE_KEY_FILE, private_key_file)):
        if not value:
            raise ConfigError(file_key, f"both {PRIVATE_KEY_FILE} and {PUBLIC_KEY_FILE} are needed")
    assert private_key_file and public_key_file  # for the type checker
    certs_pem = read_file(PUBLIC_KEY_FILE, public_key_file)
    try:
        chain = x509.load_pem_x509_certificates(certs_pem)
    except ValueError:
        hint = " (a raw public key is not supported)" if b"PUBLIC KEY-----" in certs_pem else ""
        raise ConfigError(
            PUBLIC_KEY_FILE, f"no PEM certificate in '{public_key_file}'{hint}: give the certificate chain"
        ) from None
    key_pem = read_file(PRIVATE_KEY_FILE, private_key_file)
    if b"ENCRYPTED" in key_pem:
        raise ConfigError(PRIVATE_KEY_FILE, f"'{private_key_file}' is encrypted; give an unencrypted key")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except UnsupportedAlgorithm:
        raise ConfigError(PRIVATE_KEY_FILE, f"'{private_key_file}': unsupported key type") from None
    except (ValueError, TypeError):
        hint = " (it holds a certificate: are the files swapped?)" if b"CERTIFICATE-----" in key_pem else ""
        raise ConfigError(
            PRIVATE_KEY_FILE,
            f"no PEM private key in '{private_key_file}' (expected PKCS#8 'BEGIN PRIVATE KEY', "
            f"or 'BEGIN EC PRIVATE KEY' / 'BEGIN RSA PRIVATE KEY'){hint}",
        ) from None
    return chain, key, f"from PEM files '{public_key_file}' and '{private_key_file}'"


def _keystore_identity(path: str, password: str, alias: str) -> tuple[CertificateChain, str]:
    chain, key, source = keystore_parts(path, password, alias)
    return _identity(chain, key, source, cert_key=KEYSTORE_PATH, key_key=KEYSTORE_PATH)


def keystore_parts(
    path: str, password: str, alias: str
) -> tuple[list[x509.Certificate], PrivateKeyTypes, str]:
    """The certificate chain and key of the keystore's entry ``alias``, parsed."""
    data = read_file(KEYSTORE_PATH, path)
    kind = JAVA_MAGIC.get(data[:4])
    if kind:
        store = java_store(KEYSTORE_PATH, path, data, password)
        found = {name.lower(): entry for name, entry in store.entries.items()}
        entry = found.get(alias.lower())
        if entry is None:
            raise _alias_missing(alias, path, list(store.entries))
        if not isinstance(entry, jks.PrivateKeyEntry):
            raise ConfigError(CERT_CHAIN_KEY, f"entry {alias!r} in '{path}' is not a private-key entry")
        if not entry.is_decrypted():
            raise ConfigError(
                KEYSTORE_PATH, f"the key {alias!r} in '{path}' is not protected by the keystore password"
            )
        try:
            key = serialization.load_der_private_key(entry.pkey_pkcs8, password=None)
            chain = [x509.load_der_x509_certificate(cert_der) for _, cert_der in entry.cert_chain]
        except UnsupportedAlgorithm:
            raise ConfigError(KEYSTORE_PATH, f"the key {alias!r} in '{path}': unsupported type") from None
        except ValueError:
            raise ConfigError(KEYSTORE_PATH, f"the entry {alias!r} in '{path}' cannot be parsed") from None
    elif data.lstrip().startswith(b"-----BEGIN"):
        raise ConfigError(
            KEYSTORE_PATH,
            f"'{path}' is a PEM file, not a keystore: use {PRIVATE_KEY_FILE} and {PUBLIC_KEY_FILE} for PEM",
        )
    else:
        kind = "PKCS#12"
        bundle = pkcs12_store(KEYSTORE_PATH, path, data, password)
        named = [name for c in bundle.additional_certs if (name := friendly_name(c))]
        key_alias = (friendly_name(bundle.cert) if bundle.cert else None) or "(unnamed)"
        if bundle.key is None or bundle.cert is None or key_alias.lower() != alias.lower():
            if alias.lower() in (name.lower() for name in named):
                raise ConfigError(CERT_CHAIN_KEY, f"entry {alias!r} in '{path}' is not a private-key entry")
            raise _alias_missing(alias, path, ([key_alias] if bundle.key else []) + named)
        key = bundle.key
        chain = order_chain(bundle.cert.certificate, [c.certificate for c in bundle.additional_certs])
    return chain, key, f"from {kind} keystore '{path}' alias {alias!r}"


def _identity(
    chain: list[x509.Certificate], key: PrivateKeyTypes, source: str, *, cert_key: str, key_key: str
) -> tuple[CertificateChain, str]:
    """Check that the leaf matches the key and is still valid; convert both for Mbed TLS."""
    key_type, subject, mbedtls_key = checked_identity(chain, key, source, cert_key=cert_key, key_key=key_key)
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        crts = tuple(mbedtls.x509.CRT.from_DER(der(cert)) for cert in chain)
        loaded = mbedtls_key.from_DER(key_der)
    except Exception:  # mbedtls raises TLSError: e.g. on an EC curve Mbed TLS does not implement
        raise ConfigError(key_key, f"Mbed TLS cannot use the {key_type} key {source}") from None
    return (crts, loaded), f"certificate {subject!r} (chain of {len(chain)}), {key_type} key, {source}"


def checked_identity(
    chain: list[x509.Certificate], key: PrivateKeyTypes, source: str, *, cert_key: str, key_key: str
) -> tuple[str, str, type[mbedtls.pk.ECC] | type[mbedtls.pk.RSA]]:
    """The key's type, the leaf's subject and the Mbed TLS key class, once the leaf is found to match the key
    and to be still valid (else ConfigError naming ``cert_key`` or ``key_key``)."""
    if not chain:
        raise ConfigError(cert_key, f"no certificate {source}")
    mbedtls_key: type[mbedtls.pk.ECC] | type[mbedtls.pk.RSA]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key_type, mbedtls_key = f"EC {key.curve.name}", mbedtls.pk.ECC
    elif isinstance(key, rsa.RSAPrivateKey):
        key_type, mbedtls_key = f"RSA {key.key_size}", mbedtls.pk.RSA
    else:
        raise ConfigError(key_key, f"unsupported key type {type(key).__name__} {source}: EC or RSA only")
    leaf = chain[0]
    subject = leaf.subject.rfc4514_string()
    if spki(leaf.public_key()) != spki(key.public_key()):
        raise ConfigError(cert_key, f"the certificate {subject!r} does not match the private key {source}")
    if leaf.not_valid_after_utc < dt.datetime.now(dt.UTC):
        raise ConfigError(
            cert_key, f"the certificate {subject!r} {source} expired (notAfter {leaf.not_valid_after_utc})"
        )
    return key_type, subject, mbedtls_key


# --- truststore -------------------------------------------------------------------------------------------


def _truststore(path: str, password: str, aliases: tuple[str, ...]) -> tuple[mbedtls.tls.TrustStore, str]:
    entries, summary = trusted_certificates(path, password, aliases)
    trust = mbedtls.tls.TrustStore()
    try:
        for cert_der in entries:
            trust.add(mbedtls.x509.CRT.from_DER(cert_der))
    except Exception:  # mbedtls raises TLSError on a certificate it cannot parse
        raise ConfigError(TRUSTSTORE_PATH, f"Mbed TLS cannot parse a certificate in '{path}'") from None
    return trust, summary


def trusted_certificates(path: str, password: str, aliases: tuple[str, ...]) -> tuple[list[bytes], str]:
    """The trusted certificates of the truststore (DER), those of ``aliases`` only when given, and what they
    are (for descriptions); ConfigError names the key at fault."""
    data = read_file(TRUSTSTORE_PATH, path)
    kind = JAVA_MAGIC.get(data[:4])
    entries: list[tuple[str | None, bytes]]
    if kind:
        store = java_store(TRUSTSTORE_PATH, path, data, password)
        entries = [(a, e.cert) for a, e in store.entries.items() if isinstance(e, jks.TrustedCertEntry)]
    elif data.lstrip().startswith(b"-----BEGIN"):
        kind = "PEM"
        if aliases:
            raise ConfigError(CERTS, f"'{path}' is a PEM bundle, which has no aliases to select from")
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise ConfigError(TRUSTSTORE_PATH, f"no PEM certificate in '{path}'") from None
        entries = [(None, der(c)) for c in certs]
    else:
        kind = "PKCS#12"
        bundle = pkcs12_store(TRUSTSTORE_PATH, path, data, password, pem_allowed=True)
        entries = [(friendly_name(c), der(c.certificate)) for c in bundle.additional_certs]
    if not entries:
        raise ConfigError(TRUSTSTORE_PATH, f"the {kind} truststore '{path}' holds no trusted certificate")
    if aliases:
        present = {a.lower(): a for a, _ in entries if a}
        missing = [a for a in aliases if a.lower() not in present]
        if missing:
            raise ConfigError(
                CERTS,
                f"alias(es) {', '.join(map(repr, missing))} not in the truststore '{path}'; "
                f"it holds: {', '.join(sorted(present.values())) or 'no named entries'}",
            )
        wanted = {a.lower() for a in aliases}
        entries = [(a, cert_der) for a, cert_der in entries if a and a.lower() in wanted]
    names = ", ".join(a for a, _ in entries if a)
    return [cert_der for _, cert_der in entries], (
        f"trusting {len(entries)} certificate(s) from {kind} truststore '{path}'"
        + (f" (aliases {names})" if names else "")
    )


def _alias_missing(alias: str, path: str, present: list[str]) -> ConfigError:
    return ConfigError(
        CERT_CHAIN_KEY,
        f"no entry {alias!r} in the keystore '{path}'; it holds: {', '.join(present) or 'no entries'}",
    )
