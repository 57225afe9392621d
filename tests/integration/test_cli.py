"""`python -m streamapp check` and the worker's start-up refusal, run as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAUST = Path(sys.executable).with_name("faust")
KCQL = (
    "INSERT INTO sensors/room1 SELECT temp AS t, id FROM readings; INSERT INTO alerts SELECT * FROM readings"
)


def run(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECT_", "STREAMAPP_"))}
    return subprocess.run(
        argv, env={**base, **env}, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "streamapp", "check"], env)


def test_check_prints_config_with_secrets_hidden_and_routes(tmp_path: Path) -> None:
    props = tmp_path / "coap-sink.properties"
    props.write_text(
        "connector.class=com.datamountaineer.streamreactor.connect.coap.sink.CoapSinkConnector\n"
        "connect.coap.uri=coap://127.0.0.1:5683/base\n"
        f"connect.coap.kcql={KCQL}\n"
        "connect.coap.keystore.pass=TopSecret-42\n",
        encoding="utf-8",
    )
    result = check({"STREAMAPP_CONFIG": str(props), "CONNECT_COAP_METHOD": "POST"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "TopSecret-42" not in out + result.stderr
    assert "connect.coap.keystore.pass" in out and "[hidden]" in out
    assert "connect.coap.method" in out and "POST    [environment]" in out
    assert "connector.class: Kafka Connect's plugin class: streamapp is that connector" in out
    assert "[1] readings -> coap://127.0.0.1:5683/base/sensors/room1  SELECT temp AS t, id" in out
    assert "[2] readings -> coap://127.0.0.1:5683/base/alerts  SELECT *" in out


def test_check_explains_a_broken_config_in_one_line() -> None:
    """One case as a real process (its exit status, its two streams); each case in this process:
    tests/unit/test_cli.py."""
    result = check({"CONNECT_COAP_URI": "coap://h", "CONNECT_COAP_KCQL": "INSERT INTO a SELECT x FORM t"})
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "streamapp: configuration error: connect.coap.kcql: KCQL statement 1, line 1, column 24: "
        "unexpected 'FORM'"
    )


def test_worker_refuses_unusable_dtls_credentials_with_the_same_line() -> None:
    result = run(
        [str(FAUST), "-A", "streamapp.main", "worker", "-l", "info"],
        {
            "CONNECT_COAP_URI": "coaps://h",
            "CONNECT_COAP_KCQL": KCQL,
            "CONNECT_COAP_KEYSTORE_PATH": "/nonexistent/client.p12",
            "CONNECT_COAP_TRUSTSTORE_PATH": "/nonexistent/trust.p12",
        },
    )
    assert result.returncode != 0
    assert (
        "streamapp: configuration error: connect.coap.keystore.path: file '/nonexistent/client.p12' "
        "does not exist" in result.stderr
    )


def test_worker_refuses_a_broken_config_with_the_same_line() -> None:
    result = run(
        [str(FAUST), "-A", "streamapp.main", "worker", "-l", "info"],
        {"CONNECT_COAP_URI": "coap://h", "CONNECT_COAP_KCQL": KCQL, "CONNECT_COAP_ERROR_POLICY": "RETRI"},
    )
    assert result.returncode != 0
    assert (
        "streamapp: configuration error: connect.coap.error.policy: expected one of NOOP, THROW, RETRY, "
        "got 'RETRI' (from environment)" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_check_describes_kafka_security_without_secrets(tmp_path: Path) -> None:
    from tests.certs import make_pki

    pki = make_pki(tmp_path / "pki")
    props = tmp_path / "coap-sink.properties"
    props.write_text(
        "connect.coap.uri=coap://127.0.0.1:5683\n"
        "connect.coap.kcql=INSERT INTO r SELECT * FROM t\n"
        "consumer.override.security.protocol=SASL_SSL\n"
        "consumer.override.sasl.mechanism=SCRAM-SHA-512\n"
        "consumer.override.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
        'required username="sink" password="Kafka-Pw-77";\n'
        f"ssl.truststore.location={pki.trust_p12}\n"
        "ssl.truststore.password=rootPass\n",
        encoding="utf-8",
    )
    result = check({"STREAMAPP_CONFIG": str(props)})
    assert result.returncode == 0, result.stderr
    assert "Kafka-Pw-77" not in result.stdout + result.stderr and "rootPass" not in result.stdout
    assert (
        "Kafka: group 'connect-coap-sink', SASL_SSL SCRAM-SHA-512 as 'sink' (trusting 1 certificate(s) from "
        f"PKCS12 '{pki.trust_p12}'; broker host name checked), auto.offset.reset=earliest"
    ) in result.stdout


def test_the_worker_refuses_an_unusable_kafka_security_setting_naming_the_key(tmp_path: Path) -> None:
    props = tmp_path / "coap-sink.properties"
    props.write_text(
        "connect.coap.uri=coap://127.0.0.1:5683\n"
        "connect.coap.kcql=INSERT INTO r SELECT * FROM t\n"
        "security.protocol=SSL\n"
        f"ssl.truststore.location={tmp_path / 'missing.jks'}\n",
        encoding="utf-8",
    )
    result = run(
        [str(FAUST), "-A", "streamapp.main", "worker", "-l", "info"], {"STREAMAPP_CONFIG": str(props)}
    )
    assert result.returncode == 1
    assert "streamapp: configuration error: ssl.truststore.location: file" in result.stderr
    assert "does not exist" in result.stderr


def test_check_names_the_oscore_context_and_never_its_secret(tmp_path: Path) -> None:
    from tests.oscore_server import make_contexts

    pair = make_contexts(tmp_path)
    env = {
        "CONNECT_COAP_URI": "coap://127.0.0.1:5683",
        "CONNECT_COAP_KCQL": (
            "INSERT INTO a SELECT * FROM t; INSERT INTO b SELECT * FROM t PROPERTIES(uri='coap://127.0.0.1:5684')"
        ),
        "CONNECT_COAP_OSCORE_CONTEXT": str(pair.client),
    }
    result = check(env)
    assert result.returncode == 0, result.stderr
    assert f"[1] t -> coap://127.0.0.1:5683/a  SELECT *  OSCORE {pair.client}" in result.stdout
    assert "/b  SELECT *\n" in result.stdout  # its own server: not the worker's context
    assert pair.secret_hex not in result.stdout + result.stderr
    assert not (pair.client / "lock").exists()  # check reads the context, it does not take it
    (pair.client / "secret.json").write_text("{")
    result = check(env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "streamapp: configuration error: connect.coap.oscore.context: "
        f"{pair.client / 'secret.json'}: not valid JSON (line 1, column 2) (from environment)"
    )
