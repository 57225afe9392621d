"""Liveness and readiness for an orchestrator: ``GET /healthz`` and ``GET /readyz`` (docs/production.md).

Liveness answers 200 while the worker's event loop runs (the answer itself is the proof). Readiness answers
200 only while the sink can deliver: partitions are assigned, the error policy has not stopped the engine,
no request is held by RETRY, the worker is not stopping, and the Kafka broker answered a metadata request
within ``BROKER_STALE_S``; otherwise 503 with the reasons as JSON.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import faust
from faust.transport.drivers.aiokafka import Producer as AiokafkaProducer
from faust.web import Request, Response, View

from streamapp.background import every
from streamapp.engine import DeliveryEngine
from streamapp.kafka.group import GroupWatch
from streamapp.logs import get_logger

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
#: Seconds between the broker probes, and the age of the last answer that makes the worker unready.
BROKER_PROBE_INTERVAL_S = 5.0
BROKER_STALE_S = 15.0

log = get_logger(__name__)


class BrokerWatch:
    """Asks the Kafka broker for metadata every ``BROKER_PROBE_INTERVAL_S`` through the producer's client
    (the consumer's runs in Faust's consumer thread); remembers when it last answered. Silence for
    ``BROKER_STALE_S`` makes the worker unready, whether the broker stopped answering or never did."""

    def __init__(self, app: faust.App, clock: Callable[[], float] = time.monotonic) -> None:
        self._app = app
        self._clock = clock
        #: When the broker last answered; the watch's start counts as an answer (the preflight had one).
        self.last_answer = clock()
        self.last_error: str | None = None

    def started(self) -> None:
        self.last_answer = self._clock()

    async def probe(self) -> None:
        try:
            # app.producer is typed as Faust's ProducerT; its aiokafka implementation has a client.
            producer = cast(AiokafkaProducer, self._app.producer)
            client = producer._ensure_producer().client  # aiokafka's AIOKafkaClient
            await asyncio.wait_for(client.fetch_all_metadata(), BROKER_PROBE_INTERVAL_S)
        except Exception as exc:  # any failure means: not answered; the reason is shown by /readyz
            self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            self.last_answer = self._clock()
            self.last_error = None

    def reason(self) -> str | None:
        silent = self._clock() - self.last_answer
        if silent <= BROKER_STALE_S:
            return None
        return f"Kafka broker has not answered for {silent:.0f} s ({self.last_error or 'no answer'})"


def readiness_reasons(
    app: faust.App,
    engine: DeliveryEngine,
    broker: BrokerWatch,
    assignment: Callable[[], list[Any]],
    group: GroupWatch | None = None,
) -> list[str]:
    """Why the worker is not ready; empty when it is."""
    reasons = []
    if engine.stop_reason is not None:
        reasons.append(f"stopped by the error policy: {engine.stop_reason}")
    elif app.should_stop or engine.stopping:
        reasons.append("the worker is stopping")
    if group is not None and (group_reason := group.reason()) is not None:
        reasons.append(group_reason)
    elif not assignment():
        reasons.append("no partitions assigned (joining the consumer group, or more workers than partitions)")
    for where, attempts in engine.retrying():
        reasons.append(f"connect.coap.error.policy=RETRY holds {where} (resent {attempts} time(s) so far)")
    if (broker_reason := broker.reason()) is not None:
        reasons.append(broker_reason)
    return reasons


def register_probes(
    app: faust.App,
    engine: DeliveryEngine,
    assignment: Callable[[], list[Any]],
    group: GroupWatch | None = None,
) -> BrokerWatch:
    broker = BrokerWatch(app)
    # From the app's start, not once partitions are assigned: a worker that cannot join must not be told
    # the broker is silent (streamapp/background.py).
    every(app, BROKER_PROBE_INTERVAL_S, broker.probe)

    @app.page(LIVENESS_PATH)
    async def healthz(web: View, request: Request) -> Response:
        return web.json({"status": "alive"})

    @app.page(READINESS_PATH)
    async def readyz(web: View, request: Request) -> Response:
        reasons = readiness_reasons(app, engine, broker, assignment, group)
        if reasons:
            return web.json({"status": "not ready", "reasons": reasons}, status=503)
        return web.json({"status": "ready"})

    return broker
