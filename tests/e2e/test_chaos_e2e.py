"""Chaos (issue 15): one stream of 20 000 records on 8 partitions, two statements (a plain CoAP server and a
DTLS one), and every fault this sink must ride out, in a seeded random order, while it flows: three
SIGKILLs of the worker, a restart of each CoAP server, the broker (Apache Kafka) frozen for 10 s, the broker
killed and started again on its own log directory, and a second worker that joins for a while and leaves.

What must hold at the end, read from what the servers received:

* every record reached both resources at least once;
* on each resource, each partition's records arrived in offset order with no gap between restarts: the
  sequence is a chain of runs of consecutive offsets, and a run may start over only at or before where
  the previous one had got to (the last commit), never after it;
* the duplicates (requests beyond one per record) are printed, with the commit cadence they came from.

``CHAOS_SEED`` picks another fault order (printed with the result); ``STREAMAPP_TEST_COMMIT_MS`` another
``offset.flush.interval.ms``.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streamapp.web.health import LIVENESS_PATH, READINESS_PATH
from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.libcoap import LibcoapServer
from streamapp_harness.process import free_port
from streamapp_harness.worker import WorkerProcess
from tests.recording_server import RecordingCoapServer

pytestmark = pytest.mark.slow

RECORDS = 20_000
PARTITIONS = 8
PSK = "chaos-Sup3r-PSK"
IDENTITY = "chaos-device"
FREEZE_S = 10.0  # the broker freeze of the issue: its length is the fault itself
FAULTS = (
    "kill",
    "kill",
    "kill",
    "restart coap server",
    "restart coaps server",
    "freeze broker",
    "restart broker",
    "second worker joins",
    "second worker leaves",
)


def fault_order(seed: int) -> list[str]:
    """The faults shuffled by ``seed``; the second worker always joins before it leaves."""
    order = list(FAULTS)
    random.Random(seed).shuffle(order)
    join, leave = order.index("second worker joins"), order.index("second worker leaves")
    if leave < join:
        order[join], order[leave] = order[leave], order[join]
    return order


def lane_violations(offsets: list[int], step: int) -> tuple[list[str], int]:
    """Check one partition's values ``n`` as one resource received them (``n`` grows by ``step`` per offset).

    Returns the problems found and how many times the sequence started over. A request repeated at once (its
    answer was lost, or the policy retried it) is one delivery. A start-over only ever goes back, so a run
    that begins after the point the previous one reached shows up as a gap."""
    problems: list[str] = []
    restarts = 0
    previous: int | None = None
    for n in offsets:
        if previous is None:
            if n >= step:
                problems.append(f"first value {n}, not the partition's first record")
        elif n < previous:
            restarts += 1  # back to the last commit: the runs before it are checked already
        elif n > previous + step:
            problems.append(f"gap: {previous} then {n}")
        previous = n
    return problems, restarts


def lanes(requests: Iterable[tuple[str, bytes]]) -> dict[int, list[int]]:
    """Partition -> the values ``n`` of the requests to ``/t/<partition>`` or ``/d/<partition>``, in arrival
    order (anything else, such as the readiness probes of LibcoapServer.start(), is no record)."""
    found: dict[int, list[int]] = {}
    for path, payload in requests:
        resource, _, partition = path.rpartition("/")
        if resource in ("/t", "/d"):
            found.setdefault(int(partition), []).append(json.loads(payload)["n"])
    return found


@dataclass
class Chaos:
    """The peers and workers of one chaos run, and a log of what was done when."""

    broker: KafkaBroker
    plain: RecordingCoapServer
    secure: LibcoapServer
    workdir: Path
    properties: dict[str, str]
    main: WorkerProcess | None = None
    second: WorkerProcess | None = None
    started: list[WorkerProcess] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)
    plain_read: int = 0
    plain_seen: set[bytes] = field(default_factory=set)

    def start_worker(self, role: str) -> WorkerProcess:
        worker = WorkerProcess(
            {"bootstrap.servers": self.broker.bootstrap, **self.properties},
            self.workdir,
            f"{role}{len(self.started) + 1}",
        ).start()
        self.started.append(worker)
        return worker

    def note(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.began:6.1f} s  {self.delivered():>6}  {what}")

    def delivered(self) -> int:
        """Distinct records the plain server has seen, reading only the requests that are new since the
        last call (this is polled all through the run)."""
        new = self.plain.requests_from(self.plain_read)
        self.plain_read += len(new)
        self.plain_seen.update(r.payload for r in new)
        return len(self.plain_seen)

    def plain_lanes(self) -> dict[int, list[int]]:
        return lanes((r.path, r.payload) for r in self.plain.requests)

    def secure_lanes(self) -> dict[int, list[int]]:
        return lanes(("/" + r.path, r.payload) for r in self.secure.received())

    def inject(self, fault: str) -> None:
        self.note(fault)
        if fault == "kill":
            assert self.main is not None
            self.main.kill()
            self.main = self.start_worker("main")
        elif fault == "restart coap server":
            self.plain.stop()
            self.plain.start()
        elif fault == "restart coaps server":
            self.secure.restart(crash=True)
        elif fault == "freeze broker":
            self.broker.pause()
            time.sleep(FREEZE_S)
            self.broker.resume()
        elif fault == "restart broker":
            self.broker.restart(crash=True)
        elif fault == "second worker joins":
            self.second = self.start_worker("second")
        elif fault == "second worker leaves":
            second = self.second
            assert second is not None
            # A worker SIGTERMed while it still starts (before Faust's signal handlers) dies by the signal.
            self.wait(lambda: second.probe(LIVENESS_PATH) is not None, "the second worker running")
            assert second.stop() == 0
            self.second = None
        else:
            raise AssertionError(fault)
        self.note(f"{fault}: done")

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
        assert self.main is not None
        self.main.wait_until(predicate, timeout=timeout, what=what)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of its own: the faults below (a freeze, a SIGKILL) must not reach the other tests'."""
    with KafkaBroker(tmp_path / "kafka") as broker:
        yield broker


async def test_chaos_every_record_arrives_in_order_through_every_fault(
    own_broker: KafkaBroker, tmp_path: Path, unique: str
) -> None:
    seed = int(os.environ.get("CHAOS_SEED", "15"))
    commit_ms = os.environ.get("STREAMAPP_TEST_COMMIT_MS", "1000")
    order = fault_order(seed)
    broker = own_broker
    topic = f"{unique}-t"
    await broker.create_topic(topic, partitions=PARTITIONS)
    await broker.produce(
        topic,
        [json.dumps({"n": i}).encode() for i in range(RECORDS)],
        partitions=[i % PARTITIONS for i in range(RECORDS)],
    )
    plain = RecordingCoapServer(port=free_port("udp"))
    secure = LibcoapServer(
        flavour="openssl",
        psk=PSK.encode(),
        log_requests=True,
        log_path=tmp_path / "coaps-server.log",
        max_dynamic_resources=100,
    )
    with plain, secure:
        chaos = Chaos(
            broker,
            plain,
            secure,
            tmp_path,
            {
                "name": unique,
                "connect.coap.uri": plain.uri,
                "connect.coap.kcql": (
                    f"INSERT INTO t/{{_.partition}} SELECT n FROM {topic}; "
                    f"INSERT INTO d/{{_.partition}} SELECT n FROM {topic} "
                    f"PROPERTIES(uri='{secure.coaps_uri}')"
                ),
                "connect.coap.username": IDENTITY,
                "connect.coap.password": PSK,
                "connect.coap.error.policy": "RETRY",
                "connect.coap.retry.interval": "500",
                "connect.coap.max.retries": "1000",
                "connect.coap.request.timeout": "3000",
                "connect.coap.max.inflight": "16",
                "offset.flush.interval.ms": commit_ms,
            },
        )
        try:
            chaos.main = chaos.start_worker("main")
            for i, fault in enumerate(order, start=1):
                threshold = i * RECORDS // (len(order) + 2)
                before = f"{threshold} records before '{fault}'"
                chaos.wait(lambda t=threshold: chaos.delivered() >= t, before)
                chaos.inject(fault)
            chaos.wait(lambda: chaos.delivered() >= RECORDS, f"all {RECORDS} at the plain server", 240)
            chaos.note("all at the plain server")
            chaos.wait(
                lambda: sum(len(set(v)) for v in chaos.secure_lanes().values()) >= RECORDS,
                f"all {RECORDS} at the DTLS server",
                120,
            )
            chaos.note("all at the DTLS server")
            report(chaos, seed, commit_ms, order)
            # A worker restarted by the last fault may still be starting: stop it once it runs.
            main = chaos.main
            chaos.wait(lambda: main.probe(READINESS_PATH) == (200, {"status": "ready"}), "the worker ready")
            assert main.stop() == 0
        finally:
            print("\n".join(chaos.events))
            for worker in chaos.started:
                worker.kill()


def report(chaos: Chaos, seed: int, commit_ms: str, order: list[str]) -> None:
    """Assert the delivery properties on both servers and print the figures."""
    lines = [f"chaos seed {seed}, offset.flush.interval.ms={commit_ms}, faults: {', '.join(order)}"]
    problems: list[str] = []
    for server, values in (("coap", chaos.plain_lanes()), ("coaps", chaos.secure_lanes())):
        counts = Counter(n for seen in values.values() for n in seen)
        missing = set(range(RECORDS)) - set(counts)
        if missing:
            problems.append(f"{server}: {len(missing)} records never arrived, e.g. {sorted(missing)[:5]}")
        restarts = 0
        for partition in range(PARTITIONS):
            found, lane_restarts = lane_violations(values.get(partition, []), PARTITIONS)
            problems += [f"{server} partition {partition}: {p}" for p in found[:5]]
            restarts += lane_restarts
        duplicates = sum(c - 1 for c in counts.values())
        lines.append(
            f"{server}: {sum(counts.values())} requests for {len(counts)} records, {duplicates} duplicates "
            f"({100 * duplicates / RECORDS:.1f} %), {restarts} partition restarts"
        )
    print("\n".join(lines))
    assert not problems, "\n".join(problems)
