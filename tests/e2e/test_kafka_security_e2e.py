"""Secured Kafka end to end, on Apache Kafka's own listeners (``tests/conftest.py``'s session ``broker``):
TLS, mutual TLS, and SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 over SASL_SSL and SASL_PLAINTEXT deliver
records and commit them through the secured connection; a broker the worker cannot use (a wrong password,
an untrusted or wrongly named certificate, no client certificate, plain text to a TLS port) stops it at
start with one line that names the key to fix; and no password appears in anything the worker prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.worker import WorkerProcess
from tests.certs import STORE_PASSWORD, Pki
from tests.credentials import SASL_PASSWORD, SASL_USER
from tests.recording_server import RecordingCoapServer

pytestmark = pytest.mark.slow

#: A worker refused by the broker exits at once (the preflight), not after retries.
REFUSED_EXIT_S = 30.0

SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


def login(mechanism: str, password: str = SASL_PASSWORD) -> str:
    module = PLAIN if mechanism == "PLAIN" else SCRAM
    return f'{module} required username="{SASL_USER}" password="{password}";'


async def produce(broker: KafkaBroker, topic: str, n: int) -> None:
    await broker.create_topic(topic, partitions=2)
    await broker.produce(topic, [json.dumps({"n": i}).encode() for i in range(n)])


def sink(bootstrap: str, recorder: RecordingCoapServer, topic: str, **security: str) -> dict[str, str]:
    return {
        "name": topic,
        "bootstrap.servers": bootstrap,
        "connect.coap.uri": recorder.uri,
        "connect.coap.kcql": f"INSERT INTO r SELECT n FROM {topic}",
        **security,
    }


def delivered(recorder: RecordingCoapServer) -> set[int]:
    return {json.loads(r.payload)["n"] for r in recorder.requests}


def assert_refused(worker: WorkerProcess, *fragments: str) -> str:
    code = worker.wait_exit(REFUSED_EXIT_S)
    log = worker.log_text()
    line = next(
        (x for x in log.splitlines() if x.startswith("streamapp: no Kafka broker could be used")), None
    )
    assert code == 1 and line is not None, log[-3000:]
    for fragment in fragments:
        assert fragment in line, line
    assert "Traceback" not in log
    return line


async def assert_delivered_and_committed(
    worker: WorkerProcess, broker: KafkaBroker, recorder: RecordingCoapServer, topic: str, n: int
) -> None:
    worker.wait_until(lambda: delivered(recorder) == set(range(n)), what=f"{n} records")
    assert worker.stop() == 0
    committed = await broker.committed_offsets(f"connect-{topic}", topic, partitions=2)
    assert sum(committed.values()) == n


# --- TLS ------------------------------------------------------------------------------------------------


async def test_tls_delivers_and_commits_through_tls(
    broker: KafkaBroker, pki: Pki, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    await produce(broker, unique, 50)
    tls = {"security.protocol": "SSL", "ssl.truststore.location": str(pki.ca)}
    worker = start_worker(sink(broker.listener("SSL"), recorder, unique, **tls))
    worker.wait_until(lambda: delivered(recorder) == set(range(50)), what="50 records over TLS")
    stats = worker.stats()
    assert stats is not None and stats["worker"]["kafka_security"].startswith("SSL (trusting 1 certificate")
    await assert_delivered_and_committed(worker, broker, recorder, unique, 50)


async def test_mutual_tls_with_a_pkcs12_keystore_and_a_java_truststore(
    broker: KafkaBroker, pki: Pki, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    await produce(broker, unique, 20)
    truststore = pki.trust_jks or pki.trust_p12
    worker = start_worker(
        sink(
            broker.listener("MTLS"),
            recorder,
            unique,
            **{
                "consumer.override.security.protocol": "SSL",
                "ssl.truststore.location": str(truststore),
                "ssl.truststore.password": STORE_PASSWORD,
                "ssl.keystore.location": str(pki.client_p12),
                "ssl.keystore.type": "PKCS12",
                "ssl.keystore.password": STORE_PASSWORD,
            },
        )
    )
    await assert_delivered_and_committed(worker, broker, recorder, unique, 20)
    assert STORE_PASSWORD not in worker.log_text()


async def test_mutual_tls_with_a_pem_keystore(
    broker: KafkaBroker, pki: Pki, recorder: RecordingCoapServer, start_worker, unique: str, tmp_path: Path
) -> None:
    """Kafka's PEM keystore: the PKCS#8 key and the certificate in one file."""
    await produce(broker, unique, 10)
    keystore = tmp_path / "client-keystore.pem"
    keystore.write_text(pki.client_key.read_text() + pki.client_cert.read_text())
    worker = start_worker(
        sink(
            broker.listener("MTLS"),
            recorder,
            unique,
            **{
                "security.protocol": "SSL",
                "ssl.truststore.location": str(pki.ca),
                "ssl.keystore.location": str(keystore),
            },
        )
    )
    await assert_delivered_and_committed(worker, broker, recorder, unique, 10)


async def test_mutual_tls_without_a_client_certificate_stops_at_start(
    broker: KafkaBroker, pki: Pki, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    tls = {"security.protocol": "SSL", "ssl.truststore.location": str(pki.ca)}
    worker = start_worker(sink(broker.listener("MTLS"), recorder, unique, **tls))
    assert_refused(worker, broker.listener("MTLS"), "ssl.keystore.location")


@pytest.mark.parametrize(
    ("listener", "security", "fragment"),
    [
        (
            "SSL",
            {"security.protocol": "SSL", "ssl.truststore.location": "other_ca"},
            "ssl.truststore.location",
        ),
        ("SSL", {}, "security.protocol"),
        ("PLAINTEXT", {"security.protocol": "SSL", "ssl.truststore.location": "ca"}, "security.protocol"),
    ],
    ids=["untrusted-certificate", "plaintext-to-tls", "tls-to-plaintext"],
)
async def test_a_tls_broker_the_worker_cannot_use_stops_it_with_one_line(
    broker: KafkaBroker,
    pki: Pki,
    recorder: RecordingCoapServer,
    start_worker,
    unique: str,
    listener: str,
    security: dict[str, str],
    fragment: str,
) -> None:
    security = {k: str(getattr(pki, v)) if v in ("ca", "other_ca") else v for k, v in security.items()}
    worker = start_worker(sink(broker.listener(listener), recorder, unique, **security))
    assert_refused(worker, fragment)


async def test_host_name_identification_is_on_by_default_and_can_be_switched_off(
    broker: KafkaBroker, pki: Pki, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    """The WRONGHOST listener's certificate names another host (it is trusted: the same CA)."""
    await produce(broker, unique, 5)
    tls = {"security.protocol": "SSL", "ssl.truststore.location": str(pki.ca)}
    wrong_host = broker.listener("WRONGHOST")
    checked = start_worker(sink(wrong_host, recorder, unique, **tls))
    assert_refused(checked, "ssl.endpoint.identification.algorithm")
    unchecked = start_worker(
        sink(wrong_host, recorder, unique, **tls, **{"ssl.endpoint.identification.algorithm": ""})
    )
    await assert_delivered_and_committed(unchecked, broker, recorder, unique, 5)


# --- SASL -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_ssl_delivers_with_each_mechanism(
    broker: KafkaBroker, pki: Pki, recorder: RecordingCoapServer, start_worker, unique: str, mechanism: str
) -> None:
    await produce(broker, unique, 30)
    worker = start_worker(
        sink(
            broker.listener("SASL_SSL"),
            recorder,
            unique,
            **{
                "security.protocol": "SASL_SSL",
                "ssl.truststore.location": str(pki.ca),
                "sasl.mechanism": mechanism,
                "sasl.jaas.config": login(mechanism),
            },
        )
    )
    worker.wait_until(lambda: delivered(recorder) == set(range(30)), what=f"30 records over {mechanism}")
    stats = worker.stats()
    assert stats is not None and mechanism in stats["worker"]["kafka_security"]
    assert SASL_PASSWORD not in json.dumps(stats)
    assert not [labels for _, labels in worker.metrics() if SASL_PASSWORD in repr(labels)]
    await assert_delivered_and_committed(worker, broker, recorder, unique, 30)
    assert SASL_PASSWORD not in worker.log_text()


async def test_sasl_plaintext_delivers(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    await produce(broker, unique, 10)
    worker = start_worker(
        sink(
            broker.listener("SASL_PLAINTEXT"),
            recorder,
            unique,
            **{
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.jaas.config": login("SCRAM-SHA-512"),
            },
        )
    )
    await assert_delivered_and_committed(worker, broker, recorder, unique, 10)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_a_wrong_password_stops_the_worker_with_one_line_and_no_secret(
    broker: KafkaBroker, pki: Pki, recorder: RecordingCoapServer, start_worker, unique: str, mechanism: str
) -> None:
    wrong = "not-the-pw-4e1"
    worker = start_worker(
        sink(
            broker.listener("SASL_SSL"),
            recorder,
            unique,
            **{
                "security.protocol": "SASL_SSL",
                "ssl.truststore.location": str(pki.ca),
                "sasl.mechanism": mechanism,
                "sasl.jaas.config": login(mechanism, wrong),
            },
        )
    )
    line = assert_refused(worker, "sasl.jaas.config")
    assert wrong not in worker.log_text() and wrong not in line


async def test_sasl_to_a_listener_without_sasl_is_named(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    worker = start_worker(
        sink(
            broker.bootstrap,
            recorder,
            unique,
            **{
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-256",
                "sasl.jaas.config": login("SCRAM-SHA-256"),
            },
        )
    )
    assert_refused(worker, "sasl.mechanism=SCRAM-SHA-256")


async def test_a_worker_without_credentials_is_told_the_broker_wants_tls_or_sasl(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    worker = start_worker(sink(broker.listener("SASL_PLAINTEXT"), recorder, unique))
    assert_refused(worker, "does it expect TLS or SASL")
