"""Fixtures for the real peers: a Tansu broker per session, libcoap and recording CoAP servers, and workers
run as real ``faust -A streamapp.main worker`` subprocesses."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from streamapp.coap.sender import CoapSender, RequestOptions
from streamapp_harness.peers import LibcoapServer, TansuBroker
from streamapp_harness.worker import WorkerProcess
from tests.certs import pki_fixture  # noqa: F401  (the session fixture `pki`: a test PKI)
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
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with TansuBroker(log_path=log) as running:
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
def start_worker(workers: list[WorkerProcess], tmp_path: Path, broker: TansuBroker):
    def start(properties: dict[str, str]) -> WorkerProcess:
        label = f"worker{len(workers) + 1}"
        worker = WorkerProcess({"bootstrap.servers": broker.bootstrap, **properties}, tmp_path, label)
        workers.append(worker.start())
        return worker

    return start


@pytest.fixture
def run(broker: TansuBroker, recorder: RecordingCoapServer, start_worker, unique: str) -> Scenario:
    """Produce, start a worker, wait for N requests (tests/scenario.py)."""
    return Scenario(broker, recorder, start_worker, unique)
