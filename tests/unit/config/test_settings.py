"""Settings: sources and precedence, validation, unknown keys, secrets, not-yet-supported keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamapp.coap.request_options import RequestOptions
from streamapp.config.keys import KEYS, Secret
from streamapp.config.settings import Settings
from streamapp.errors import ConfigError

KCQL = (
    "INSERT INTO sensors/room1 SELECT temp AS t, id FROM readings; INSERT INTO alerts SELECT * FROM readings"
)
BASE = {"connect.coap.uri": "coap://127.0.0.1:5683", "connect.coap.kcql": KCQL}


def load(**overrides: str) -> Settings:
    return Settings.from_mapping({**BASE, **overrides})


def error_for(raw: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping(raw)
    return info.value


def test_defaults_match_stream_reactor() -> None:
    s = load()
    assert s.values["name"] == "coap-sink"
    assert s.values["connect.coap.error.policy"] == "THROW"
    assert s.values["connect.coap.max.retries"] == 20
    assert s.values["connect.coap.retry.interval"] == 60000
    assert s.values["connect.coap.host"] == "localhost"
    assert s.values["connect.coap.port"] == 0
    assert s.values["connect.coap.cert.chain.key"] == "client"
    assert s.values["connect.coap.keystore.pass"] == Secret("rootPass")
    assert s.values["connect.progress.enabled"] is False
    o = RequestOptions.from_values(s.values)
    assert o.method == "PUT" and o.confirmable and o.content_format == 50
    assert s.broker_urls == ["kafka://localhost:9092"]


def test_every_key_has_a_doc_and_a_default_source() -> None:
    s = load()
    for key in KEYS:
        assert key.doc, key.name
        assert key.name in s.values
    assert {k for k, _, src in s.describe() if src == "given"} == set(BASE)


def test_routes_and_sources() -> None:
    s = load()
    assert s.source_topics == ("readings",)
    assert [st.resource for st in s.statements] == ["sensors/room1", "alerts"]


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        ({"connect.coap.kcql": KCQL}, "connect.coap.uri", "is required"),
        ({"connect.coap.uri": "coap://h"}, "connect.coap.kcql", "is required"),
        ({**BASE, "connect.coap.uri": "http://h/x"}, "connect.coap.uri", "coaps+tcp://"),
        ({**BASE, "connect.coap.uri": "coap://h:99999"}, "connect.coap.uri", "bad port"),
        ({**BASE, "connect.coap.port": "abc"}, "connect.coap.port", "expected an integer, got 'abc'"),
        ({**BASE, "connect.coap.max.retries": "-1"}, "connect.coap.max.retries", ">= 0"),
        ({**BASE, "connect.coap.method": "GET"}, "connect.coap.method", "PUT, POST"),
        ({**BASE, "connect.coap.request.timeout": "0"}, "connect.coap.request.timeout", "positive"),
        ({**BASE, "connect.coap.ack.timeout": "0"}, "connect.coap.ack.timeout", "positive"),
        ({**BASE, "connect.coap.max.retransmit": "11"}, "connect.coap.max.retransmit", "0..10 retransm"),
        ({**BASE, "connect.coap.max.retransmit": "-1"}, "connect.coap.max.retransmit", "got -1"),
        ({**BASE, "connect.progress.enabled": "yes"}, "connect.progress.enabled", "true or false"),
        ({**BASE, "bootstrap.servers": "nohost"}, "bootstrap.servers", "host:port"),
        ({**BASE, "value.converter": "com.example.X"}, "value.converter", "got 'com.example.X'"),
        ({**BASE, "topics": "other"}, "topics", "KCQL reads readings which topics does not list"),
        ({**BASE, "connect.coap.kcql": " ; "}, "connect.coap.kcql", "no statement"),
        ({**BASE, "connect.coap.kcql": "INSERT INTO x SELECT a FORM t"}, "connect.coap.kcql", "column 24"),
    ],
)
def test_bad_values_name_the_key(raw: dict[str, str], key: str, fragment: str) -> None:
    err = error_for(raw)
    assert err.key == key
    assert str(err).startswith(f"{key}: ")
    assert fragment in str(err)
    assert "\n" not in str(err)


def test_unknown_coap_key_suggests_the_closest() -> None:
    err = error_for({**BASE, "connect.coap.pasword": "x"})
    assert err.key == "connect.coap.pasword"
    assert "did you mean connect.coap.password?" in str(err)


def test_supported_values_of_partly_built_keys_pass() -> None:
    s = load(
        **{
            "connect.coap.error.policy": "throw",
            "connect.coap.max.inflight": "1",
            "connect.coap.message.type": "NON",
            "connect.coap.method": "post",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "connect.coap.keystore.pass": "rootPass",
        }
    )
    assert s.values["connect.coap.error.policy"] == "THROW"
    assert s.value_converter == "string"
    o = RequestOptions.from_values(s.values)
    assert not o.confirmable and o.method == "POST"


def test_secrets_are_hidden_everywhere() -> None:
    s = load(**{"connect.coap.truststore.pass": "s3cr3t-trust"})
    assert "s3cr3t-trust" not in repr(s)
    assert "s3cr3t-trust" not in str(s.describe())
    assert s.values["connect.coap.truststore.pass"].reveal() == "s3cr3t-trust"
    assert dict((k, v) for k, v, _ in s.describe())["connect.coap.truststore.pass"] == "[hidden]"


def test_properties_file_then_environment(tmp_path: Path) -> None:
    props = tmp_path / "coap-sink.properties"
    props.write_text(
        "# stream-reactor style file\n"
        "name=from-file\n"
        "connector.class=com.datamountaineer.streamreactor.connect.coap.sink.CoapSinkConnector\n"
        "tasks.max=1\n"
        "topics=readings\n"
        "connect.coap.uri=coap://127.0.0.1:5683\n"
        "connect.coap.kcql=INSERT INTO sensors/room1 SELECT temp AS t, id FROM readings; \\\n"
        "    INSERT INTO alerts SELECT * FROM readings\n"
        "connect.coap.method=POST\n",
        encoding="utf-8",
    )
    env = {"STREAMAPP_CONFIG": str(props), "CONNECT_COAP_METHOD": "PUT", "PORT": "8123", "HOME": "/root"}
    s = Settings.load(env)
    assert s.app_name == "from-file"
    assert RequestOptions.from_values(s.values).method == "PUT"
    assert s.sources["connect.coap.method"] == "environment"
    assert s.sources["name"] == f"file {props}"
    assert len(s.statements) == 2
    assert s.web_port == 8123


def test_explicit_web_port_beats_platform_port() -> None:
    s = Settings.load(
        {**{k.upper().replace(".", "_"): v for k, v in BASE.items()}, "PORT": "1", "WEB_PORT": "2"}
    )
    assert s.web_port == 2


def test_unknown_environment_coap_key() -> None:
    env = {"CONNECT_COAP_URI": "coap://h", "CONNECT_COAP_KCQL": KCQL, "CONNECT_COAP_MAX_RETRIS": "3"}
    with pytest.raises(ConfigError, match="did you mean CONNECT_COAP_MAX_RETRIES"):
        Settings.load(env)


def test_missing_properties_file() -> None:
    with pytest.raises(
        ConfigError, match=r"STREAMAPP_CONFIG: properties file '/nonexistent\.properties' does not"
    ):
        Settings.load({"STREAMAPP_CONFIG": "/nonexistent.properties"})


def test_payload_keys() -> None:
    s = Settings.from_mapping(
        {
            **BASE,
            "value.converter": "io.confluent.connect.avro.AvroConverter",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter.schema.registry.url": "http://user:pa55@127.0.0.1:8081",
            "connect.coap.tombstone": "DELETE",
            "connect.coap.max.payload": "2048",
            "connect.coap.decimal.format": "string",
            "value.converter.schemas.enable": "true",
        }
    )
    assert (s.value_converter, s.key_converter) == ("avro", "string")
    assert s.registry_url == "http://user:pa55@127.0.0.1:8081"
    assert (RequestOptions.from_values(s.values).tombstone, s.max_payload, s.decimal_format) == (
        "delete",
        2048,
        "string",
    )
    assert (s.value_envelope, s.key_envelope) == (True, None)
    shown = dict((k, v) for k, v, _ in s.describe())
    assert shown["schema.registry.url"] == "http://user:[hidden]@127.0.0.1:8081"
    assert "pa55" not in repr(s.describe())


def test_avro_needs_a_registry_url() -> None:
    error = error_for({**BASE, "key.converter": "avro"})
    assert str(error).startswith("schema.registry.url: is required when key.converter is Avro (from given)")


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("schema.registry.url", "127.0.0.1:8081", "expected an http:// or https:// URL"),
        ("schema.registry.url", "ftp://u:secret@h/", "'ftp://u:[hidden]@h/'"),
        ("connect.coap.max.payload", "0", "expected a positive integer"),
        ("connect.coap.decimal.format", "base64", "expected one of number, string"),
        ("value.converter.schemas.enable", "yes", "expected true or false"),
    ],
)
def test_payload_keys_are_validated(key: str, value: str, fragment: str) -> None:
    error = error_for({**BASE, key: value})
    assert str(error).startswith(f"{key}: ")
    assert fragment in str(error)
    assert "secret" not in str(error)


def test_dtls_keys() -> None:
    s = Settings.from_mapping(
        {
            **BASE,
            "connect.coap.uri": "coaps://gw.example:5684",
            "connect.coap.username": "device-7",
            "connect.coap.password": "Sup3r-S3cret",
            "connect.coap.cipher.suites": "tls_psk_with_aes_128_ccm_8, TLS_PSK_WITH_AES_128_CBC_SHA256",
            "connect.coap.handshake.timeout": "5000",
        }
    )
    assert s.values["connect.coap.cipher.suites"] == (
        "tls_psk_with_aes_128_ccm_8",
        "TLS_PSK_WITH_AES_128_CBC_SHA256",
    )
    assert "Sup3r-S3cret" not in repr(s.describe())


def test_unknown_cipher_suite_lists_the_known_ones() -> None:
    error = error_for({**BASE, "connect.coap.cipher.suites": "TLS_RSA_WITH_NULL_MD5"})
    assert str(error).startswith("connect.coap.cipher.suites: unknown cipher suite 'TLS_RSA_WITH_NULL_MD5'")
    assert "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8" in str(error)


def test_transmission_parameters_default_to_rfc_7252_and_the_timeout_to_max_transmit_wait() -> None:
    s = load()
    o = RequestOptions.from_values(s.values)
    assert (o.timeout_s, o.ack_timeout_s, o.max_retransmit) == (None, 2.0, 4)
    s = load(**{"connect.coap.request.timeout": "1500", "connect.coap.ack.timeout": "250"})
    o = RequestOptions.from_values(s.values)
    assert (o.timeout_s, o.ack_timeout_s) == (1.5, 0.25)


def test_statement_properties_share_the_transmission_rules() -> None:
    kcql = "INSERT INTO r SELECT * FROM t PROPERTIES(ack.timeout=500, max.retransmit=12)"
    err = error_for({**BASE, "connect.coap.kcql": kcql})
    assert err.key == "connect.coap.kcql"
    assert "max.retransmit" in str(err) and "0..10" in str(err)


def test_the_option_objects_defaults_are_those_of_keys() -> None:
    """Each option object built from the configuration has, when given nothing, what an empty
    configuration resolves to: a default restated by hand and changed in one place only fails here."""
    from streamapp.coap.credentials import DtlsCredentials
    from streamapp.coap.dtls import DtlsOptions
    from streamapp.coap.security import dtls_options
    from streamapp.engine.pipeline import MAX_PAYLOAD
    from streamapp.engine.policy import ErrorPolicy

    s = load()
    assert ErrorPolicy() == ErrorPolicy.from_settings(s)
    assert RequestOptions() == RequestOptions.from_values(s.values)
    assert s.max_payload == MAX_PAYLOAD
    psk = load(
        **{
            "connect.coap.uri": "coaps://127.0.0.1:5684",
            "connect.coap.username": "id",
            "connect.coap.password": "secret",
        }
    )
    configured = dtls_options(psk)
    assert configured is not None
    blank = DtlsOptions(DtlsCredentials("psk", None, None, None, ""))
    assert blank.handshake_timeout_s == configured.handshake_timeout_s
    assert blank.suites == configured.suites and blank.local_bind == configured.local_bind


def test_durations_are_read_in_seconds_through_their_unit() -> None:
    s = load(**{"connect.coap.retry.interval": "1500"})
    assert s.retry_interval_s == 1.5 and s.seconds("connect.coap.handshake.timeout") == 8.0


def test_resolved_settings_cannot_be_changed_afterwards() -> None:
    s = load()
    with pytest.raises(TypeError):
        s.values["connect.coap.max.retries"] = 3  # type: ignore[index]
    with pytest.raises(TypeError):
        s.with_server("coap://[::1]:5683", "discovered").values["connect.coap.uri"] = "x"  # type: ignore[index]


def test_dtls_keys_are_typed_and_bind_only_where_asked() -> None:
    s = load(**{"connect.coap.cipher.suites": "tls_psk_with_aes_128_ccm_8"})
    keys = s.dtls_keys
    assert keys.cipher_suites == ("TLS_PSK_WITH_AES_128_CCM_8",) and keys.handshake_timeout_s == 8.0
    assert keys.local_bind is None and keys.keystore_pass == Secret("rootPass")
    assert load(**{"connect.coap.port": "6000"}).dtls_keys.local_bind == ("localhost", 6000)


def test_the_attribute_names_callers_use_are_kept() -> None:
    s = load()
    kept = {
        "app_name": "coap-sink",
        "uri": "coap://127.0.0.1:5683",
        "bootstrap_servers": ("localhost:9092",),
        "value_converter": "auto",
        "key_converter": "auto",
        "max_inflight": 1,
        "stop_grace_s": 5.0,
        "commit_interval_s": 1.0,
        "error_policy": "THROW",
        "log_failures": True,
        "log_failed_messages": False,
        "max_retries": 20,
        "retry_interval_s": 60.0,
        "dead_letter_topic": None,
        "dead_letter_context": False,
        "progress_enabled": False,
        "progress_interval_s": 60.0,
        "registry_url": None,
        "value_envelope": None,
        "key_envelope": None,
        "max_payload": 1024 * 1024,
        "decimal_format": "number",
        "web_port": 6066,
        "web_bind": "127.0.0.1",
        "log_format": "console",
        "datadir": None,
        "group_id": "connect-coap-sink",
        "auto_offset_reset": "earliest",
        "session_timeout_s": 6.0,
        "heartbeat_interval_s": 2.0,
        "security_protocol": "PLAINTEXT",
        "truststore": None,
        "keystore": None,
        "key_password": None,
        "check_hostname": True,
        "sasl_mechanism": "PLAIN",
        "sasl_jaas_config": None,
    }
    assert {name: getattr(s, name) for name in kept} == kept


def test_an_empty_dead_letter_topic_is_none() -> None:
    assert load(**{"errors.deadletterqueue.topic.name": " "}).dead_letter_topic is None
