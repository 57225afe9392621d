"""From settings to the DTLS options of a ``coaps://`` sink (None for ``coap://``)."""

from __future__ import annotations

from streamapp.coap.credentials import load_credentials
from streamapp.coap.dtls import DtlsOptions
from streamapp.coap.tcp_tls import uses_tls
from streamapp.config.dtls_suites import CERTIFICATE_SUITES, PSK_SUITES
from streamapp.config.keys import revealed
from streamapp.config.settings import Settings
from streamapp.errors import ConfigError

#: Keys that only mean something with a coaps:// URI.
DTLS_KEYS = (
    "connect.coap.username",
    "connect.coap.password",
    "connect.coap.private.key.file",
    "connect.coap.public.key.file",
    "connect.coap.keystore.path",
    "connect.coap.truststore.path",
    "connect.coap.cipher.suites",
)


def uses_dtls(settings: Settings) -> bool:
    """``connect.coap.uri`` or a statement's own server is ``coaps://`` (the worker's DTLS credentials
    apply to every coaps server)."""
    servers = [settings.uri] + ["".join(str(p) for p in s.server) for s in settings.statements if s.server]
    return any(uri.lower().startswith("coaps:") for uri in servers)


def dtls_options(settings: Settings) -> DtlsOptions | None:
    """Load and check the credentials (files are read here); ConfigError names the key at fault."""
    if not uses_dtls(settings):
        return None
    keys = settings.dtls_keys
    credentials = load_credentials(
        username=keys.username,
        password=revealed(keys.password),
        private_key_file=keys.private_key_file,
        public_key_file=keys.public_key_file,
        keystore_path=keys.keystore_path,
        keystore_pass=revealed(keys.keystore_pass) or "",
        truststore_path=keys.truststore_path,
        truststore_pass=revealed(keys.truststore_pass) or "",
        certs=keys.certs,
        cert_chain_key=keys.cert_chain_key,
    )
    usable = PSK_SUITES if credentials.mode == "psk" else CERTIFICATE_SUITES
    if unusable := [s for s in keys.cipher_suites if s not in usable]:
        raise ConfigError(
            "connect.coap.cipher.suites",
            f"{', '.join(unusable)} cannot be used with {credentials.mode.upper()} credentials; "
            f"choose from {', '.join(usable)}",
        )
    return DtlsOptions(
        credentials,
        suites=keys.cipher_suites,
        handshake_timeout_s=keys.handshake_timeout_s,
        local_bind=keys.local_bind,
    )


#: The keys of those that coaps+tcp:// (TLS, ``tcp_tls.py``) uses too.
TLS_KEYS = (
    "connect.coap.private.key.file",
    "connect.coap.public.key.file",
    "connect.coap.keystore.path",
    "connect.coap.truststore.path",
)


def unused_dtls_keys(settings: Settings) -> list[str]:
    """DTLS keys set with no ``coaps://`` server (reported by ``check``; stream-reactor ignored them too),
    but for those a ``coaps+tcp://`` server uses."""
    if uses_dtls(settings):
        return []
    used = TLS_KEYS if uses_tls(settings) else ()
    return [k for k in DTLS_KEYS if settings.sources[k] != "default" and k not in used]
