"""``coaps+tcp://`` (RFC 8323 §9.1): the TLS client context, from the worker's X.509 keys.

Why Python's ``ssl`` (OpenSSL) and not Mbed TLS as for DTLS (``dtls.py``): asyncio carries TLS over a
stream natively (``loop.create_connection(ssl=...)``), with TLS 1.2 and 1.3, server-name checking of host
names and IP addresses alike (Mbed TLS 2.28 checks no IP address against a certificate), SNI and ALPN.
python-mbedtls was needed for DTLS only because Python's ``ssl`` has no DTLS.

What the context does:

- **Trust**: the truststore of ``connect.coap.truststore.path`` (JKS, PKCS#12 or a PEM bundle, with
  ``connect.coap.truststore.pass`` and the ``connect.coap.certs`` aliases), read by ``credentials.py`` exactly
  as for DTLS; nothing else (no system CAs: the worker trusts what it is told). It is required.
- **The server's name**: ``check_hostname`` against the URI's host (a host name or an IP address), and
  the host name as SNI (``server_hostname``; an IP literal is sent no SNI, as RFC 6066 says).
- **ALPN** ``coap`` (RFC 8323 §8.2, registered in §11.7): offered; a server that picks none is still talked
  to (not every TLS server of CoAP sets ALPN).
- **Client certificate**, when the keys give one: the PEM files ``connect.coap.public.key.file`` /
  ``private.key.file``, else the keystore ``connect.coap.keystore.path`` (``.pass``,
  ``connect.coap.cert.chain.key``), checked as for DTLS (key matches the leaf, not expired). Python's ``ssl``
  loads a chain from files only: it is written PEM to a private temporary directory, loaded and removed at
  once.
- A PSK (``connect.coap.username``/``password``) is DTLS-only: Python 3.11's ``ssl`` has no TLS-PSK client.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from streamapp.coap.credentials import (
    KEYSTORE_PATH,
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    TRUSTSTORE_PATH,
    checked_identity,
    keystore_parts,
    pem_parts,
    trusted_certificates,
)
from streamapp.config.keys import revealed
from streamapp.config.settings import Settings
from streamapp.errors import ConfigError

#: The URI schemes of CoAP over TCP and over TLS (RFC 8323 §8.1, §8.2).
TCP_SCHEMES = ("coap+tcp", "coaps+tcp")
#: The ALPN protocol ID of CoAP over TLS.
ALPN = "coap"


@dataclass(frozen=True)
class TlsOptions:
    """The TLS client context of every ``coaps+tcp://`` server, and what it is (never a secret)."""

    context: ssl.SSLContext
    description: str
    #: Where the trust comes from, for error messages: ``'path' (JKS)``.
    trust_source: str


def uses_tls(settings: Settings) -> bool:
    """``connect.coap.uri`` or a statement's own server is ``coaps+tcp://``."""
    servers = [settings.uri] + ["".join(str(p) for p in s.server) for s in settings.statements if s.server]
    return any(uri.lower().startswith("coaps+tcp:") for uri in servers)


def tls_options(settings: Settings) -> TlsOptions | None:
    """The TLS options when a ``coaps+tcp://`` server is configured (files are read here); ConfigError
    names the key at fault."""
    if not uses_tls(settings):
        return None
    keys = settings.dtls_keys
    return load_tls_options(
        private_key_file=keys.private_key_file,
        public_key_file=keys.public_key_file,
        keystore_path=keys.keystore_path,
        keystore_pass=revealed(keys.keystore_pass) or "",
        truststore_path=keys.truststore_path,
        truststore_pass=revealed(keys.truststore_pass) or "",
        certs=keys.certs,
        cert_chain_key=keys.cert_chain_key,
    )


def load_tls_options(
    *,
    private_key_file: str | None,
    public_key_file: str | None,
    keystore_path: str | None,
    keystore_pass: str,
    truststore_path: str | None,
    truststore_pass: str,
    certs: tuple[str, ...],
    cert_chain_key: str,
) -> TlsOptions:
    """Read and check the keys, and build the context."""
    if not truststore_path:
        raise ConfigError(
            TRUSTSTORE_PATH,
            "a coaps+tcp:// server needs a truststore with the CA certificates its TLS certificate must "
            "chain to (JKS, PKCS#12 or PEM)",
        )
    trusted, trust_summary = trusted_certificates(truststore_path, truststore_pass, certs)
    identity: tuple[list[x509.Certificate], PrivateKeyTypes] | None = None
    parts = []
    if private_key_file or public_key_file:
        chain, key, source = pem_parts(private_key_file, public_key_file)
        cert_key, key_key = PUBLIC_KEY_FILE, PRIVATE_KEY_FILE
    elif keystore_path:
        chain, key, source = keystore_parts(keystore_path, keystore_pass, cert_chain_key)
        cert_key = key_key = KEYSTORE_PATH
    else:
        chain = []
    if chain:
        key_type, subject, _ = checked_identity(chain, key, source, cert_key=cert_key, key_key=key_key)
        identity = (chain, key)
        parts.append(f"client certificate {subject!r} (chain of {len(chain)}), {key_type} key, {source}")
    else:
        parts.append("no client certificate")
    context = client_context(trusted, identity)
    parts.append(trust_summary)
    return TlsOptions(
        context,
        "TLS (ALPN coap, server name checked): " + "; ".join(parts),
        trust_source=f"'{truststore_path}'",
    )


def client_context(
    trusted_der: list[bytes], identity: tuple[list[x509.Certificate], PrivateKeyTypes] | None
) -> ssl.SSLContext:
    """A TLS client context trusting only ``trusted_der``, checking the server's name, offering ALPN
    ``coap``, presenting ``identity`` (chain, key) when given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verify_mode CERT_REQUIRED, check_hostname on
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=b"".join(trusted_der))
    context.set_alpn_protocols([ALPN])
    if identity is not None:
        chain, key = identity
        with tempfile.TemporaryDirectory(prefix="streamapp-tls-") as folder:
            os.chmod(folder, 0o700)
            cert_file, key_file = Path(folder) / "chain.pem", Path(folder) / "key.pem"
            cert_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                )
            context.load_cert_chain(cert_file, key_file)
    return context
