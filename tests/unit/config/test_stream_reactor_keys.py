"""Every key spelling a stream-reactor CoAP Sink release accepted (docs/configuration.md)."""

from __future__ import annotations

import pytest

from streamapp.config.settings import Settings
from streamapp.errors import ConfigError

BASE = {"connect.coap.uri": "coap://127.0.0.1:5683", "connect.coap.kcql": "INSERT INTO a SELECT * FROM t"}
SINK_CLASS = "com.datamountaineer.streamreactor.connect.coap.sink.CoapSinkConnector"


@pytest.mark.parametrize(
    ("old", "key", "text", "value"),
    [
        ("connect.coap.max.retires", "connect.coap.max.retries", "7", 7),
        ("connect.coap.bind.host", "connect.coap.host", "127.0.0.2", "127.0.0.2"),
        ("connect.coap.sink.bind.host", "connect.coap.host", "127.0.0.3", "127.0.0.3"),
        ("connect.coap.bind.port", "connect.coap.port", "40001", 40001),
        ("connect.coap.sink.bind.port", "connect.coap.port", "40002", 40002),
    ],
)
def test_an_old_spelling_means_its_key_and_says_what_to_write(
    old: str, key: str, text: str, value: object
) -> None:
    s = Settings.from_mapping({**BASE, old: text})
    assert s.values[key] == value
    assert s.sources[key] == "given"
    (notice,) = s.notices
    assert notice.key == old and notice.deprecated_for == key
    assert f"spelling of {key}" in notice.text
    assert s.ignored == ()


def test_an_old_spelling_is_validated_as_its_key() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping({**BASE, "connect.coap.max.retires": "-1"})
    assert info.value.key == "connect.coap.max.retries"


def test_an_old_spelling_and_its_key_that_disagree_name_both() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping({**BASE, "connect.coap.max.retries": "3", "connect.coap.max.retires": "20"})
    assert "connect.coap.max.retries" in info.value.key and "connect.coap.max.retires" in info.value.key
    assert "different values" in str(info.value)


def test_an_old_spelling_and_its_key_that_agree_are_one_setting() -> None:
    s = Settings.from_mapping({**BASE, "connect.coap.max.retries": "3", "connect.coap.max.retires": " 3"})
    assert s.values["connect.coap.max.retries"] == 3


def test_the_environment_knows_the_old_spellings_and_their_conflicts() -> None:
    env = {"CONNECT_COAP_URI": BASE["connect.coap.uri"], "CONNECT_COAP_KCQL": BASE["connect.coap.kcql"]}
    s = Settings.load({**env, "CONNECT_COAP_MAX_RETIRES": "4"})
    assert s.values["connect.coap.max.retries"] == 4
    with pytest.raises(ConfigError) as info:
        Settings.load({**env, "CONNECT_COAP_MAX_RETIRES": "4", "CONNECT_COAP_MAX_RETRIES": "5"})
    assert "connect.coap.max.retires" in info.value.key


def test_a_later_layer_still_overrides_an_old_spelling_in_the_file(tmp_path) -> None:
    path = tmp_path / "sink.properties"
    path.write_text(
        f"connect.coap.uri={BASE['connect.coap.uri']}\nconnect.coap.kcql={BASE['connect.coap.kcql']}\n"
        "connect.coap.max.retires=20\n"
    )
    s = Settings.load({"STREAMAPP_CONFIG": str(path), "CONNECT_COAP_MAX_RETRIES": "2"})
    assert s.values["connect.coap.max.retries"] == 2
    assert s.sources["connect.coap.max.retries"] == "environment"


@pytest.mark.parametrize("key", ["connect.coap.batch.size", "connect.source.linger.ms", "tasks.max", "tasks"])
def test_keys_without_effect_are_accepted_and_explained(key: str) -> None:
    s = Settings.from_mapping({**BASE, key: "100"})
    (notice,) = s.notices
    assert notice.key == key and notice.text.startswith("no effect here: ")
    assert notice.deprecated_for is None


@pytest.mark.parametrize("cls", [SINK_CLASS, "io.lenses.streamreactor.connect.coap.sink.CoapSinkConnector"])
def test_the_coap_sink_connector_class_is_accepted(cls: str) -> None:
    s = Settings.from_mapping({**BASE, "connector.class": cls})
    assert [n.key for n in s.notices] == ["connector.class"]


def test_another_connectors_file_is_refused_naming_connector_class() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping(
            {
                **BASE,
                "connector.class": "com.datamountaineer.streamreactor.connect.mqtt.sink.MqttSinkConnector",
            }
        )
    assert info.value.key == "connector.class"
    assert "MqttSinkConnector" in str(info.value) and "not a CoAP sink" in str(info.value)


def test_a_consumer_override_is_a_form_of_the_key_not_a_notice() -> None:
    s = Settings.from_mapping({**BASE, "consumer.override.session.timeout.ms": "9000"})
    assert s.values["session.timeout.ms"] == 9000 and s.notices == ()


def test_a_registry_alias_is_reported_as_an_alias() -> None:
    s = Settings.from_mapping({**BASE, "value.converter.schema.registry.url": "http://127.0.0.1:8081"})
    assert [(n.key, n.text) for n in s.notices] == [
        ("value.converter.schema.registry.url", "alias of schema.registry.url")
    ]
