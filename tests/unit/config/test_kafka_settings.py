"""Kafka client keys as ``Settings`` reads them: consumer group, offset reset, session, security, and the
checks across them. The ``sasl.jaas.config`` text itself: tests/unit/kafka/test_jaas.py."""

from __future__ import annotations

import pytest

from streamapp.config.keys import Secret
from streamapp.config.settings import Settings
from streamapp.errors import ConfigError

BASE = {"connect.coap.uri": "coap://127.0.0.1:5683", "connect.coap.kcql": "INSERT INTO r SELECT * FROM t"}
PLAIN_LOGIN = (
    'org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="s3cr3t";'
)
SCRAM_LOGIN = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="bob" password="pw";'


def load(**given: str) -> Settings:
    return Settings.from_mapping({**BASE, **given})


def error(**given: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(**given)
    return info.value


def test_the_group_is_kafka_connects_name_for_the_sink() -> None:
    assert load().group_id == "connect-coap-sink"
    assert load(name="orders-sink").group_id == "connect-orders-sink"
    assert load(**{"consumer.override.group.id": "legacy"}).group_id == "legacy"


@pytest.mark.parametrize("reset", ["earliest", "latest", "none"])
def test_auto_offset_reset_choices(reset: str) -> None:
    assert load(**{"consumer.override.auto.offset.reset": reset.upper()}).auto_offset_reset == reset


def test_auto_offset_reset_defaults_to_earliest_and_refuses_others() -> None:
    assert load().auto_offset_reset == "earliest"
    assert (
        error(**{"consumer.override.auto.offset.reset": "smallest"}).key
        == "consumer.override.auto.offset.reset"
    )


def test_session_and_heartbeat_defaults_and_prefixed_aliases() -> None:
    s = load()
    assert (s.session_timeout_s, s.heartbeat_interval_s) == (6.0, 2.0)
    s = load(
        **{"consumer.override.session.timeout.ms": "10000", "consumer.override.heartbeat.interval.ms": "3000"}
    )
    assert (s.session_timeout_s, s.heartbeat_interval_s) == (10.0, 3.0)
    e = error(**{"session.timeout.ms": "3000", "heartbeat.interval.ms": "3000"})
    assert e.key == "heartbeat.interval.ms" and "session.timeout.ms" in str(e)


def test_security_keys_are_accepted_with_the_consumer_override_prefix() -> None:
    s = load(
        **{
            "consumer.override.security.protocol": "sasl_ssl",
            "consumer.override.sasl.mechanism": "SCRAM-SHA-256",
            "consumer.override.sasl.jaas.config": SCRAM_LOGIN,
            "consumer.override.ssl.truststore.location": "/etc/ca.pem",
        }
    )
    assert s.security_protocol == "SASL_SSL"
    assert s.sasl_mechanism == "SCRAM-SHA-256"
    assert s.truststore is not None and s.truststore.path == "/etc/ca.pem"
    assert s.check_hostname


def test_secrets_are_hidden_in_describe() -> None:
    s = load(
        **{
            "security.protocol": "SASL_SSL",
            "sasl.jaas.config": PLAIN_LOGIN,
            "ssl.truststore.location": "/etc/ts.jks",
            "ssl.truststore.password": "trustpw",
            "ssl.keystore.location": "/etc/ks.p12",
            "ssl.keystore.password": "keypw",
            "ssl.key.password": "keypw2",
        }
    )
    shown = "\n".join(f"{k}={v}" for k, v, _ in s.describe())
    for secret in ("s3cr3t", "trustpw", "keypw", "keypw2", "alice"):
        assert secret not in shown
    assert isinstance(s.sasl_jaas_config, Secret)


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
@pytest.mark.parametrize("key", ["ssl.truststore.location", "ssl.keystore.location", "ssl.key.password"])
def test_tls_keys_without_tls_are_an_error_naming_the_key(protocol: str, key: str) -> None:
    extra = {"sasl.jaas.config": PLAIN_LOGIN} if protocol.startswith("SASL") else {}
    e = error(**{"security.protocol": protocol, key: "x", **extra})
    assert e.key == key and f"security.protocol={protocol}" in str(e)


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_sasl_keys_without_sasl_are_an_error(protocol: str) -> None:
    e = error(**{"security.protocol": protocol, "sasl.jaas.config": PLAIN_LOGIN})
    assert e.key == "sasl.jaas.config" and "SASL" in str(e)
    assert "s3cr3t" not in str(e)


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_a_login_is_an_error_showing_the_form(protocol: str) -> None:
    e = error(**{"security.protocol": protocol, "sasl.mechanism": "SCRAM-SHA-512"})
    assert e.key == "sasl.jaas.config"
    assert "ScramLoginModule required username=" in str(e)


def test_the_login_module_must_fit_the_mechanism() -> None:
    e = error(
        **{
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.jaas.config": PLAIN_LOGIN,
        }
    )
    assert e.key == "sasl.jaas.config" and "ScramLoginModule" in str(e)
    assert "s3cr3t" not in str(e)


def test_a_store_password_without_its_store_is_an_error() -> None:
    e = error(**{"security.protocol": "SSL", "ssl.keystore.password": "x"})
    assert e.key == "ssl.keystore.password" and "ssl.keystore.location" in str(e)


def test_endpoint_identification_may_be_switched_off() -> None:
    s = load(**{"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": ""})
    assert not s.check_hostname
