"""The key declarations themselves (``streamapp/config/keys.py``): each key declared once, in a group, as the
typed attribute ``Settings`` reads it through; no spelling shared by two keys; durations read through their
unit. What a configuration resolves to: test_settings.py; the stream-reactor spellings:
test_stream_reactor_keys.py."""

from __future__ import annotations

import dataclasses

import pytest

from streamapp.config.keys import GROUPS, INT, KEYS, Key, KeyAttributes, KeyGroup, Seconds, in_seconds
from streamapp.config.settings import Settings

BASE = {"connect.coap.uri": "coap://127.0.0.1:5683", "connect.coap.kcql": "INSERT INTO a SELECT * FROM t"}


def load(**overrides: str) -> Settings:
    return Settings.from_mapping({**BASE, **overrides})


def test_a_key_is_declared_in_a_group_and_once() -> None:
    def refusal(info: pytest.ExceptionInfo[Exception]) -> str:
        # Python 3.11 wraps an error of __set_name__ in a RuntimeError (3.12 raises it as it is)
        error = info.value.__cause__ if isinstance(info.value, RuntimeError) else info.value
        assert isinstance(error, TypeError)
        return str(error)

    with pytest.raises((RuntimeError, TypeError)) as info:

        class NotAGroup:
            stray = Key("stray.key", INT, 1, "A key outside any group.")

    assert "declared once, in a KeyGroup" in refusal(info)
    key = Key("twice.key", INT, 1, "Declared twice.")

    class First(KeyGroup):
        one = key

    assert First.one is key and key.attribute == "one"
    with pytest.raises((RuntimeError, TypeError)) as info:

        class Second(KeyGroup):
            two = key

    assert "declared once" in refusal(info)


def test_every_key_is_a_typed_attribute_declared_once() -> None:
    """``Settings`` reads each key through the attribute ``KEYS`` declares (streamapp/config/keys.py), and no
    hand-written member of ``Settings`` shadows one."""
    s = load(**{"connect.coap.max.retries": "7", "errors.deadletterqueue.topic.name": "dlq"})
    for key in KEYS:
        assert key.group in GROUPS and getattr(KeyAttributes, key.attribute) is key, key.name
        assert getattr(s, key.attribute) is s.values[key.name], key.name
    own = set(vars(Settings)) | {f.name for f in dataclasses.fields(Settings)}
    assert own.isdisjoint(key.attribute for key in KEYS)
    durations = {name: v for g in GROUPS for name, v in vars(g).items() if isinstance(v, Seconds)}
    assert {name: getattr(s, name) for name in durations} == {
        name: s.values[view.key.name] / 1000 for name, view in durations.items()
    }
    assert s.max_retries == 7 and s.dead_letter_topic == "dlq"


def test_no_spelling_belongs_to_two_keys() -> None:
    spellings = [name for k in KEYS for name in (k.name, *k.aliases, *k.deprecated)]
    assert len(spellings) == len(set(spellings))


def test_in_seconds_reads_a_duration_through_its_unit_and_refuses_other_keys() -> None:
    assert in_seconds("connect.coap.retry.interval", 1500) == 1.5
    assert in_seconds("connect.coap.request.timeout", None) is None
    with pytest.raises(TypeError, match=r"connect\.coap\.max\.retries is not a duration"):
        in_seconds("connect.coap.max.retries", 3)
