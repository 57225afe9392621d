"""Before the worker starts: can it talk to a Kafka broker with its security settings?

Faust's first connection failure ends the worker with aiokafka's "Unable to bootstrap from [...]", which
hides the cause (an untrusted certificate, a refused SASL login, TLS spoken to a plain port) in an earlier
log line. This check makes the same connection as aiokafka (``aiokafka.conn.create_conn`` with the same
credentials), asks for the broker's API versions, and turns a failure into one line that names the key to
look at. Secrets never appear in it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import CredentialsT

from streamapp.config.settings import Settings
from streamapp.errors import StreamappError

#: Seconds one bootstrap server may take to connect, handshake and answer.
PREFLIGHT_TIMEOUT_S = 10.0
#: Set to 1 to start without the check (Faust then reports a broker it cannot use as it always has).
SKIP_PREFLIGHT_ENV = "STREAMAPP_SKIP_PREFLIGHT"


class BrokerUnusable(StreamappError):
    """No bootstrap server could be used; the message says why and which key to look at."""


def preflight(settings: Settings, credentials: CredentialsT | None) -> str:
    """:func:`check_broker` in a private event loop, before Faust's (which must stay the current one)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(
            check_broker(
                settings.bootstrap_servers, credentials, settings.security_protocol, settings.sasl_mechanism
            )
        )
    finally:
        loop.close()


async def check_broker(
    servers: Sequence[str], credentials: CredentialsT | None, protocol: str, mechanism: str = "PLAIN"
) -> str:
    """The first server that answers; raise :class:`BrokerUnusable` with the reasons when none does."""
    auth = credentials_to_aiokafka_auth(credentials)
    reasons = []
    for server in servers:
        host, _, port = server.split("://", 1)[-1].rpartition(":")
        try:
            async with asyncio.timeout(PREFLIGHT_TIMEOUT_S):
                conn = await create_conn(
                    host, int(port), request_timeout_ms=int(PREFLIGHT_TIMEOUT_S * 1000), **auth
                )
                try:
                    await conn.send(MetadataRequest([]))
                finally:
                    conn.close()
            return server
        except Exception as exc:  # classified below; anything unexpected is reported as it is
            reasons.append(f"{server}: {explain(exc, protocol, mechanism)}")
    raise BrokerUnusable("no Kafka broker could be used: " + "; ".join(reasons))


def explain(error: BaseException, protocol: str, mechanism: str = "PLAIN") -> str:
    """One reader's line for a failed connection, naming the configuration key to check."""
    text = str(error) or type(error).__name__
    if isinstance(error, ssl.SSLCertVerificationError):
        said = f"{text} {error.verify_message}".lower()
        if "hostname" in said or "ip address mismatch" in said:
            return (
                f"the broker's certificate does not name this host ({error.verify_message}); fix the "
                "certificate, or set ssl.endpoint.identification.algorithm= (empty) to skip the check"
            )
        return (
            f"the broker's certificate is not trusted ({error.verify_message}): "
            "ssl.truststore.location must hold the CA that signed it"
        )
    if isinstance(error, ssl.SSLError):
        reason = f"{error.reason} {text}".lower().replace("_", " ")
        if "certificate required" in reason or "handshake failure" in reason or "unknown ca" in reason:
            return (
                f"the broker refused the TLS handshake ({error.reason or text}): it verifies clients; "
                "ssl.keystore.location must hold a certificate it trusts"
            )
        if "wrong version number" in reason or "record layer failure" in reason:
            return (
                f"TLS failed ({error.reason or text}): the port does not speak TLS; "
                "check bootstrap.servers and security.protocol"
            )
        return f"TLS failed: {error.reason or text} (security.protocol={protocol})"
    if isinstance(error, TimeoutError):
        return (
            f"no answer within {PREFLIGHT_TIMEOUT_S:.0f} s "
            f"(security.protocol={protocol}: does the port expect it?)"
        )
    if isinstance(error, ConnectionResetError) and protocol in ("SSL", "SASL_SSL"):
        # Apache Kafka reads a TLS ClientHello on a plain listener as an oversized request and resets.
        return (
            f"the broker reset the connection during the TLS handshake ({text}): the port may not speak "
            f"TLS; check bootstrap.servers and security.protocol={protocol}"
        )
    if isinstance(error, OSError):
        return f"cannot connect ({text}): is bootstrap.servers right and the broker up?"
    sasl = protocol.startswith("SASL")
    if isinstance(error, UnsupportedSaslMechanismError):
        return f"the broker does not offer sasl.mechanism={mechanism} ({text})"
    if isinstance(error, IllegalSaslStateError):
        # Apache Kafka's answer to a SASL handshake on a listener that has no SASL (PLAINTEXT or SSL).
        return (
            f"the listener does not offer SASL, so not sasl.mechanism={mechanism} ({text}): check "
            f"bootstrap.servers and security.protocol={protocol}"
        )
    if isinstance(error, SaslAuthenticationFailed):
        return f"the broker refused the SASL login ({text}): check sasl.jaas.config and sasl.mechanism"
    if sasl and isinstance(error, KeyError):
        # aiokafka's SCRAM client reads the server's signature (v=) from the final message; a broker that
        # refuses the user or the password sends e=... instead, and aiokafka fails on the missing key.
        return (
            f"the broker refused the {mechanism} login (its final SCRAM message carried no server "
            "signature, as for an unknown user or a wrong password): check sasl.jaas.config"
        )
    if isinstance(error, KafkaConnectionError) and "closed" in text:
        if protocol == "PLAINTEXT":
            return (
                f"the broker closed the connection ({text}): does it expect TLS or SASL "
                "(security.protocol=SSL, SASL_PLAINTEXT or SASL_SSL)?"
            )
        if protocol == "SASL_PLAINTEXT":
            return (
                f"the broker closed the connection during the SASL handshake ({text}): it may not offer "
                f"sasl.mechanism={mechanism}, or it expects TLS (security.protocol=SASL_SSL)"
            )
        # TLS 1.3: a broker that verifies clients sends its refusal after the client's handshake is done.
        return (
            f"the broker closed the connection after the TLS handshake ({text}): a broker that verifies "
            "clients does so when ssl.keystore.location is unset or holds a certificate it does not trust"
            + (f"; or it does not offer sasl.mechanism={mechanism}" if sasl else "")
        )
    return f"{type(error).__name__}: {text}"
