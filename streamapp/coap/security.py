"""From settings to the DTLS options of a ``coaps://`` sink (None for ``coap://``)."""

from __future__ import annotations

from streamapp.coap.credentials import load_credentials
from streamapp.coap.dtls import DtlsOptions
from streamapp.coap.suites import CERTIFICATE_SUITES, PSK_SUITES
from streamapp.errors import ConfigError
from streamapp.settings import Settings

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
    values = settings.values

    def secret(key: str) -> str | None:
        value = values[key]
        return None if value is None else value.reveal()

    credentials = load_credentials(
        username=values["connect.coap.username"],
        password=secret("connect.coap.password"),
        private_key_file=values["connect.coap.private.key.file"],
        public_key_file=values["connect.coap.public.key.file"],
        keystore_path=values["connect.coap.keystore.path"],
        keystore_pass=secret("connect.coap.keystore.pass") or "",
        truststore_path=values["connect.coap.truststore.path"],
        truststore_pass=secret("connect.coap.truststore.pass") or "",
        certs=values["connect.coap.certs"],
        cert_chain_key=values["connect.coap.cert.chain.key"],
    )
    suites = tuple(s.upper() for s in values["connect.coap.cipher.suites"])
    usable = PSK_SUITES if credentials.mode == "psk" else CERTIFICATE_SUITES
    if unusable := [s for s in suites if s not in usable]:
        raise ConfigError(
            "connect.coap.cipher.suites",
            f"{', '.join(unusable)} cannot be used with {credentials.mode.upper()} credentials; "
            f"choose from {', '.join(usable)}",
        )
    # stream-reactor's defaults (localhost:0) would tie the client to the loopback interface: bind only to
    # an address somebody asked for.
    explicit = any(settings.sources[k] != "default" for k in ("connect.coap.host", "connect.coap.port"))
    local_bind = (values["connect.coap.host"], values["connect.coap.port"]) if explicit else None
    return DtlsOptions(
        credentials,
        suites=suites,
        handshake_timeout_s=settings.seconds("connect.coap.handshake.timeout"),
        local_bind=local_bind,
    )


def unused_dtls_keys(settings: Settings) -> list[str]:
    """DTLS keys set with a ``coap://`` URI (reported by ``check``; stream-reactor ignored them too)."""
    if uses_dtls(settings):
        return []
    return [k for k in DTLS_KEYS if settings.sources[k] != "default"]
