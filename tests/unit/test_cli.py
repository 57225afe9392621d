"""``python -m streamapp check`` (``streamapp/cli.py``) in this process: a broken configuration is one line on
stderr naming the key (or the statement and column), nothing on stdout, exit status 1. The same command as a
real subprocess, and the worker's start-up refusal: tests/integration/test_cli.py."""

from __future__ import annotations

import os

import pytest

from streamapp.cli import main
from streamapp.config.keys import KEYS, env_name

KCQL = (
    "INSERT INTO sensors/room1 SELECT temp AS t, id FROM readings; INSERT INTO alerts SELECT * FROM readings"
)


def only(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The configuration is ``env`` alone: every variable the settings would read from this process' own
    environment (a key's name, spelling or alias, ``STREAMAPP_*``) is removed first."""
    read = {env_name(n) for k in KEYS for n in (k.name, *k.aliases, *k.deprecated)}
    read |= {alias for k in KEYS for alias in k.env_aliases}
    for name in list(os.environ):
        if name in read or name.startswith(("CONNECT_", "STREAMAPP_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"CONNECT_COAP_KCQL": KCQL}, "connect.coap.uri: is required"),
        ({"CONNECT_COAP_URI": "coap://h"}, "connect.coap.kcql: is required"),
        (
            {"CONNECT_COAP_URI": "https://h", "CONNECT_COAP_KCQL": KCQL},
            "connect.coap.uri: expected a coap://",
        ),
        (
            {"CONNECT_COAP_URI": "coap://h", "CONNECT_COAP_KCQL": KCQL, "CONNECT_COAP_PORT": "x"},
            "connect.coap.port: expected an integer, got 'x'",
        ),
        (
            {"CONNECT_COAP_URI": "coap://h", "CONNECT_COAP_KCQL": KCQL, "CONNECT_COAP_TIMEOUT": "5"},
            "CONNECT_COAP_TIMEOUT: unknown key (from environment); did you mean",
        ),
        (
            {"CONNECT_COAP_URI": "coap://h", "CONNECT_COAP_KCQL": KCQL, "TOPICS": "readings,other"},
            "topics: topics lists other which no KCQL statement reads",
        ),
        (
            {"CONNECT_COAP_URI": "coap://h", "CONNECT_COAP_KCQL": "INSERT INTO a SELECT x FORM t"},
            "connect.coap.kcql: KCQL statement 1, line 1, column 24: unexpected 'FORM'",
        ),
        (
            {"CONNECT_COAP_URI": "coaps://h", "CONNECT_COAP_KCQL": KCQL},
            "connect.coap.username: coaps:// needs",
        ),
        (
            {
                "CONNECT_COAP_URI": "coaps://h",
                "CONNECT_COAP_KCQL": KCQL,
                "CONNECT_COAP_KEYSTORE_PATH": "/nonexistent/client.p12",
                "CONNECT_COAP_TRUSTSTORE_PATH": "/nonexistent/trust.p12",
            },
            "connect.coap.keystore.path: file '/nonexistent/client.p12' does not exist",
        ),
    ],
)
def test_check_explains_a_broken_config_in_one_line(
    env: dict[str, str], line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    only(env, monkeypatch)
    assert main(["check"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("streamapp: configuration error: ")
    assert line in lines[0]


def test_check_prints_the_routes_of_a_good_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    only({"CONNECT_COAP_URI": "coap://127.0.0.1:5683/base", "CONNECT_COAP_KCQL": KCQL}, monkeypatch)
    assert main(["check"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "[1] readings -> coap://127.0.0.1:5683/base/sensors/room1  SELECT temp AS t, id" in out
    assert "[2] readings -> coap://127.0.0.1:5683/base/alerts  SELECT *" in out
