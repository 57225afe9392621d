"""The sink agent: one Faust agent per KCQL source topic, consuming raw bytes and handing each record to the
delivery engine (``streamapp/engine/``, docs/delivery-engine.md). It only reads.

Acks are manual. Faust's stream iterator acks in a ``finally`` block, so an exception in an auto-acking
agent would commit the offset of the very record that failed. Here the engine tells when a record may be
acked (every statement reading its topic had it delivered, or the error policy let it go, and so every
earlier offset of its partition) and acks it with the stream's ``ack``, in offset order.

The agent does not wait for a record's delivery before reading the next: ``engine.take`` returns once the
engine has the record, waiting only while the engine is full. Stopping, revocations and the error policy's
stop are the engine's (``DeliveryEngine.stop`` / ``revoke`` / ``stopped``), called by the app.
"""

from __future__ import annotations

import faust
import mode
from faust.types import EventT

from streamapp.engine import DeliveryEngine
from streamapp.records import RawRecord


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


def register(app: faust.App, engine: DeliveryEngine) -> list[faust.types.AgentT]:
    """Register one sink agent per source topic of the engine's pipelines."""
    return [_sink_agent(app, topic, engine) for topic in engine.pipelines]


def _sink_agent(app: faust.App, topic_name: str, engine: DeliveryEngine) -> faust.types.AgentT:
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def coap_sink(stream: faust.StreamT) -> None:
        ack = stream.ack
        async for event in stream.noack().events():
            await engine.take(raw_record(event), event, ack)

    return app.agent(
        topic,
        name=f"coap-sink.{topic_name}",
        concurrency=1,
        supervisor_strategy=mode.CrashingSupervisor,
    )(coap_sink)
