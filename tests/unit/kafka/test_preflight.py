"""The preflight (``streamapp/kafka/preflight.py``): each way a broker can be unusable is explained naming the
key to change, and a closed port is named with its address."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from aiokafka.errors import IllegalSaslStateError, KafkaConnectionError, UnsupportedSaslMechanismError

from streamapp.kafka.preflight import BrokerUnusable, check_broker, explain
from streamapp_harness.process import free_port


def test_preflight_explanations_name_the_key() -> None:
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "unable to get local issuer certificate"
    assert "ssl.truststore.location" in explain(untrusted, "SSL")
    wrong_host = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wrong_host.verify_message = "Hostname mismatch, certificate is not valid for 'broker'."
    assert "ssl.endpoint.identification.algorithm" in explain(wrong_host, "SSL")
    refused = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required")
    refused.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert "ssl.keystore.location" in explain(refused, "SSL")
    assert "security.protocol=SSL" in explain(KafkaConnectionError("Connection at x closed"), "PLAINTEXT")
    assert "ssl.keystore.location" in explain(KafkaConnectionError("Connection at x closed"), "SSL")
    assert "sasl.mechanism=SCRAM-SHA-256" in explain(
        KafkaConnectionError("Connection at x closed"), "SASL_PLAINTEXT", "SCRAM-SHA-256"
    )
    assert "sasl.jaas.config" in explain(KeyError("v"), "SASL_SSL", "SCRAM-SHA-512")
    assert "sasl.mechanism=PLAIN" in explain(UnsupportedSaslMechanismError(), "SASL_PLAINTEXT")
    assert "bootstrap.servers" in explain(ConnectionRefusedError(111, "Connection refused"), "PLAINTEXT")
    no_sasl = explain(IllegalSaslStateError(), "SASL_PLAINTEXT", "SCRAM-SHA-256")
    assert "does not offer SASL" in no_sasl and "sasl.mechanism=SCRAM-SHA-256" in no_sasl
    reset = explain(ConnectionResetError(104, "Connection reset by peer"), "SSL")
    assert "TLS handshake" in reset and "security.protocol=SSL" in reset


async def test_preflight_against_a_closed_port() -> None:
    port = free_port()
    with pytest.raises(BrokerUnusable) as info:
        await asyncio.wait_for(check_broker([f"127.0.0.1:{port}"], None, "PLAINTEXT"), 15)
    assert f"127.0.0.1:{port}: cannot connect" in str(info.value)
