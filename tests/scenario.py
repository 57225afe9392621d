"""The e2e tests' common scenario in three steps: make a topic and produce records, start a worker whose
KCQL reads it and sends to the recording CoAP server, wait until N requests arrived.

A test then reads as its scenario (``topic = await run.topic(...)``, ``worker = run.start(kcql)``,
``run.wait_for(worker, n)``) and keeps its own assertions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.worker import JOIN_TIMEOUT_S, WorkerProcess
from tests.recording_server import Recorded, RecordingCoapServer


def json_values(documents: Iterable[Any]) -> list[bytes]:
    """Each document as a JSON record value."""
    return [json.dumps(document).encode() for document in documents]


@dataclass
class Scenario:
    broker: KafkaBroker
    recorder: RecordingCoapServer
    start_worker: Callable[[dict[str, str]], WorkerProcess]
    #: Unique to the test: the prefix of its topics, and the worker's ``name`` (so its consumer group).
    unique: str

    async def topic(
        self,
        records: Sequence[bytes | None] = (),
        *,
        suffix: str = "t",
        partitions: int = 1,
        round_robin: bool = True,
        configs: Mapping[str, str] | None = None,
        **produce: Any,
    ) -> str:
        """A new topic ``<unique>-<suffix>`` holding ``records`` (spread over the partitions in turn unless
        ``round_robin`` is false or ``partitions=`` is given in ``produce``), with topic ``configs``."""
        name = f"{self.unique}-{suffix}"
        await self.broker.create_topic(name, partitions=partitions, configs=configs)
        if records:
            if round_robin and partitions > 1:
                produce.setdefault("partitions", [i % partitions for i in range(len(records))])
            await self.broker.produce(name, records, **produce)
        return name

    def start(self, kcql: str, properties: Mapping[str, str] | None = None) -> WorkerProcess:
        """A worker named after the test, sending to the recording server, with more ``properties``."""
        return self.start_worker(
            {
                "name": self.unique,
                "connect.coap.uri": self.recorder.uri,
                "connect.coap.kcql": kcql,
                **(properties or {}),
            }
        )

    def wait_for(
        self, worker: WorkerProcess, n: int, *, timeout: float = JOIN_TIMEOUT_S, what: str | None = None
    ) -> list[Recorded]:
        """The requests once at least ``n`` have arrived (failing at once if the worker dies)."""
        worker.wait_until(
            lambda: self.recorder.count >= n, timeout=timeout, what=what or f"{n} requests at the server"
        )
        return self.recorder.requests
