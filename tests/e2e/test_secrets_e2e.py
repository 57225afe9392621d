"""No secret leaves the worker (issue 15): after a run through every failure path a record can take (an
undecodable value, a schema the registry does not have, a registry that fails, a server that refuses, a
dead letter for each), none of the configured secrets appears in the worker's log, ``check``'s output, the
stats page, stats.json, /metrics, the probes or the dead letters (their values, keys and headers).

The secrets: the registry's password in ``schema.registry.url``, and the DTLS PSK and store passwords
(configured, unused with a coap:// server, and listed by ``check`` as ignored). Where a peer uses them, the
other tests scan too: the Kafka TLS and SASL passwords in test_kafka_security_e2e.py, the PSK and store
passwords of every DTLS credential form (log and stats) in test_dtls_e2e.py.

This test found httpx logging every registry request with its whole URL, password included, at INFO.

Its registry is the in-process double (tests/registry_server.py), not the session's Apicurio: the run needs a
registry that answers HTTP 503 while the worker runs (the failing-registry path, whose error names the
registry's URL), and only the double fails on demand. The password in the URL is no reason either way:
neither registry checks it (Apicurio's ccompat API with no authentication configured answers requests that
carry the URL's userinfo as Basic credentials with 200), and the point here is that it never leaks, not that
it is accepted.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request

import fastavro
import pytest
from aiocoap.numbers.codes import Code

from streamapp.web.health import LIVENESS_PATH, READINESS_PATH
from streamapp_harness.worker import REPO_ROOT
from tests.registry_server import SchemaRegistryServer
from tests.scenario import Scenario, json_values

pytestmark = pytest.mark.slow

SECRETS = {
    "registry": "Reg-S3cret-1",
    "psk": "Psk-S3cret-2",
    "keystore": "Ks-S3cret-3",
    "truststore": "Ts-S3cret-4",
}
SCHEMA = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}


def avro(schema_id: int, n: int) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(SCHEMA), {"n": n})
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


def fetch(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:  # /readyz answers 503 with a JSON reason
        return error.read().decode()


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [name for name, secret in SECRETS.items() if secret.encode() in data]


async def test_no_secret_in_any_output_after_every_failure_path(run: Scenario) -> None:
    recorder = run.recorder
    with SchemaRegistryServer() as registry:
        schema_id = registry.register("t-value", SCHEMA)
        host = registry.url.removeprefix("http://")
        dlq = await run.topic(suffix="dlq")
        records = [avro(schema_id, 0), b"\x00\x00\x00", avro(999, 2), avro(schema_id, 3), avro(schema_id, 4)]
        topic = await run.topic(records, keys=json_values({"k": i} for i in range(len(records))))
        recorder.set_response("r", Code.INTERNAL_SERVER_ERROR, when=lambda p: json.loads(p)["n"] == 3)
        properties = {
            "value.converter": "avro",
            "schema.registry.url": f"http://streamapp:{SECRETS['registry']}@{host}",
            "connect.coap.error.policy": "NOOP",
            "errors.deadletterqueue.topic.name": dlq,
            "errors.deadletterqueue.context.headers.enable": "true",
            "errors.log.include.messages": "true",
            "connect.coap.username": "device-1",
            "connect.coap.password": SECRETS["psk"],
            "connect.coap.keystore.pass": SECRETS["keystore"],
            "connect.coap.truststore.pass": SECRETS["truststore"],
        }
        kcql = f"INSERT INTO r SELECT n FROM {topic}"
        worker = run.start(kcql, properties)
        run.wait_for(worker, 3, what="the three deliverable records (one of them refused)")
        # A schema id first seen while the registry fails: retriable, so NOOP dead-letters it too.
        registry.fail(503)
        late_id = registry.register("late-value", {**SCHEMA, "name": "Late"})
        await run.broker.produce(topic, [avro(late_id, 5)])
        dead = await run.broker.consume(dlq, 4, timeout=60)
        registry.fail(None)
        worker.wait_until(lambda: (worker.stats() or {}).get("records_dead_lettered") == 3, what="stats")

        outputs: dict[str, str | bytes] = {
            "stats.json": fetch(worker.web_port, "/coap/stats.json"),
            "stats page": fetch(worker.web_port, "/coap/"),
            "metrics": fetch(worker.web_port, "/metrics"),
            "healthz": fetch(worker.web_port, LIVENESS_PATH),
            "readyz": fetch(worker.web_port, READINESS_PATH),
        }
        for i, record in enumerate(dead):
            outputs[f"dead letter {i}"] = b"".join(
                [record.key or b"", record.value or b"", *(k.encode() + v for k, v in record.headers)]
            )
        checked = subprocess.run(  # on the very file the worker runs on
            [sys.executable, "-m", "streamapp", "check"],
            cwd=REPO_ROOT,
            env={**os.environ, "STREAMAPP_CONFIG": str(worker.config_path)},
            capture_output=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stderr
        outputs["check"] = checked.stdout + checked.stderr
        assert worker.stop() == 0
        outputs["worker log"] = worker.log_text()

    # The run went through every path it was meant to (else the scan proves nothing).
    log = outputs["worker log"]
    assert isinstance(log, str)
    assert log.count("record.dead_lettered") == 4
    for why in ("not Confluent Avro framing", "is not in the schema registry", "5.00", "answered HTTP 503"):
        assert why in log, why
    checked_text = str(outputs["check"])
    assert "http://streamapp:[hidden]@" in checked_text and "connect.coap.password" in checked_text
    found = {where: leaks(text) for where, text in outputs.items() if leaks(text)}
    assert found == {}, f"secrets in: {found}"
