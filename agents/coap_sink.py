"""The sink agent: one Faust agent per KCQL source topic, consuming raw bytes and handing each record to the
delivery engine (``streamapp/dispatch.py``, docs/delivery-engine.md).

Acks are manual. Faust's stream iterator acks in a ``finally`` block, so an exception in an auto-acking
agent would commit the offset of the very record that failed. Here the agent only reads: the engine tells
when a record may be acked (every statement reading its topic had it delivered, or the error policy let it
go, and so every earlier offset of its partition), and the agent's ``Acks`` task acks it, in offset order.

The agent does not wait for a record's delivery before reading the next: it hands each to the intake
(``streamapp/intake.py``: prepare, then the dispatcher), which waits only while the engine is full; the
engine keeps up to its window of requests in flight.

On SIGTERM the engine gets the stop grace (``task.shutdown.graceful.timeout.ms``) for the requests in
flight, abandons the rest, and what was delivered is acked before Faust's commit on the way out.
"""

from __future__ import annotations

import asyncio

import faust
import mode
from faust.types import EventT

from streamapp.dispatch import Dispatcher
from streamapp.intake import Intake
from streamapp.offsets import Acks
from streamapp.pipeline import TopicPipeline
from streamapp.records import RawRecord
from streamapp.stats import Stats


def raw_record(event: EventT) -> RawRecord:
    message = event.message
    headers = message.headers or ()
    if isinstance(headers, dict):
        headers = headers.items()
    return RawRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple((str(k), bytes(v) if v is not None else b"") for k, v in headers) if headers else (),
        timestamp=message.timestamp,
    )


def register(
    app: faust.App,
    intake: Intake,
    dispatcher: Dispatcher,
    pipelines: dict[str, TopicPipeline],
    stats: Stats,
    *,
    stop_grace_s: float,
) -> tuple[list[faust.types.AgentT], list[Acks]]:
    """Register one sink agent per source topic; returns the agents and their ack queues (flushed by
    whoever stops the worker)."""
    registered = [
        _sink_agent(app, topic, pipeline, intake, dispatcher, stats, stop_grace_s)
        for topic, pipeline in pipelines.items()
    ]
    return [agent for agent, _ in registered], [acks for _, acks in registered]


def _sink_agent(
    app: faust.App,
    topic_name: str,
    pipeline: TopicPipeline,
    intake: Intake,
    dispatcher: Dispatcher,
    stats: Stats,
    stop_grace_s: float,
) -> tuple[faust.types.AgentT, Acks]:
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    def acked(raw: RawRecord) -> None:
        stats.acked(raw.topic, raw.partition, raw.offset)

    acks = Acks(acked)

    async def coap_sink(stream: faust.StreamT) -> None:
        acks.bind(stream.ack)
        acker = asyncio.ensure_future(acks.run())
        try:
            async for event in stream.noack().events():
                await intake.take(pipeline, raw_record(event), event, acks)
                if dispatcher.stopped is not None:
                    return  # the error policy stops the worker (app.py commits what was acked, then crashes)
        except asyncio.CancelledError:
            # The worker is stopping (SIGTERM): the requests in flight get the grace, then what they
            # delivered is acked, so Faust's commit on the way out covers it.
            await dispatcher.drain(stop_grace_s)
            await acks.flush()
            raise
        finally:
            acker.cancel()

    agent = app.agent(
        topic,
        name=f"coap-sink.{topic_name}",
        concurrency=1,
        supervisor_strategy=mode.CrashingSupervisor,
    )(coap_sink)
    return agent, acks
