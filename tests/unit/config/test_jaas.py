"""``sasl.jaas.config`` read as Kafka reads it (``streamapp/kafka/jaas.py``): quoted and bare values, escapes,
other flags and options; every error names the key and never shows the password."""

from __future__ import annotations

import pytest

from streamapp.config.jaas import parse_jaas
from streamapp.errors import ConfigError

PLAIN_LOGIN = (
    'org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="s3cr3t";'
)
SCRAM_LOGIN = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="bob" password="pw";'


def test_jaas_quoted_and_bare_values_and_escapes() -> None:
    login = parse_jaas(
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username=alice password="a \\"b\\" c";',
        "PLAIN",
    )
    assert (login.username, login.password) == ("alice", 'a "b" c')
    assert 'a "b" c' not in repr(login) and "[hidden]" in repr(login)


def test_jaas_accepts_extra_options_and_other_flags() -> None:
    text = SCRAM_LOGIN.replace("required", "requisite").replace(";", ' tokenauth="false";')
    assert parse_jaas(text, "SCRAM-SHA-512").username == "bob"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "expected '<LoginModule> required"),
        (PLAIN_LOGIN.rstrip(";"), "must end with ';'"),
        (PLAIN_LOGIN.replace("required", "mandatory"), "control flag"),
        (PLAIN_LOGIN.replace(' password="s3cr3t"', ""), "no password"),
        (PLAIN_LOGIN.replace('username="alice" ', ""), "no username"),
        (PLAIN_LOGIN.replace('"s3cr3t"', '"s3cr3t'), "unclosed quote"),
        (PLAIN_LOGIN + PLAIN_LOGIN, "more than one login entry"),
        (PLAIN_LOGIN.replace("username=", "username "), "name=value"),
    ],
)
def test_jaas_errors_name_the_key_and_never_the_password(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_jaas(text, "PLAIN")
    assert info.value.key == "sasl.jaas.config"
    assert fragment in str(info.value)
    assert "s3cr3t" not in str(info.value)
