"""Kafka client security: ``security.protocol`` with TLS (``streamapp/kafka/tls.py``) and SASL
(``streamapp/config/jaas.py``), handed to Faust as its ``broker_credentials`` (Faust passes them to every
aiokafka client it makes: consumer, producer, admin).

The description names the mode, the user and the files, never a password.
"""

from __future__ import annotations

import faust
from faust.types.auth import CredentialsT

from streamapp.config.jaas import parse_jaas
from streamapp.config.settings import Settings
from streamapp.kafka.tls import client_ssl_context


def broker_credentials(settings: Settings) -> tuple[CredentialsT | None, str]:
    """Faust's credentials for ``settings`` (None for PLAINTEXT) and a description without secrets."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None, "PLAINTEXT"
    context, tls = None, ""
    if protocol in ("SSL", "SASL_SSL"):
        context, description = client_ssl_context(
            settings.truststore,
            settings.keystore,
            settings.key_password,
            check_hostname=settings.check_hostname,
        )
        tls = f" ({description})"
    if protocol == "SSL":
        return faust.SSLCredentials(context), f"SSL{tls}"
    jaas = settings.sasl_jaas_config
    assert jaas is not None  # Settings refuses SASL without a login
    login = parse_jaas(jaas.reveal(), settings.sasl_mechanism)
    credentials = faust.SASLCredentials(
        username=login.username,
        password=login.password,
        ssl_context=context,
        mechanism=settings.sasl_mechanism,
    )
    return credentials, f"{protocol} {settings.sasl_mechanism} as {login.username!r}{tls}"
