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

from collections.abc import Mapping
from typing import cast

import faust
import mode
from faust.types import AgentT, EventT, StreamT
from faust.types.core import Headers

from streamapp.engine import DeliveryEngine
from streamapp.records import RawRecord


def raw_record(event: EventT[bytes]) -> RawRecord:
    message = event.message
    return RawRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=_header_pairs(message.headers),
        timestamp=message.timestamp,
    )


def _header_pairs(headers: Headers | None) -> tuple[tuple[str, bytes], ...]:
    """aiokafka hands headers over as (key, value) pairs, which Faust's types also allow as a mapping; a
    value may be None (Kafka allows a null header value): it becomes empty bytes."""
    if not headers:
        return ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(k), bytes(v) if v is not None else b"") for k, v in pairs)


def register(app: faust.App, engine: DeliveryEngine) -> list[AgentT[bytes]]:
    """Register one sink agent per source topic of the engine's pipelines."""
    return [_sink_agent(app, topic, engine) for topic in engine.pipelines]


def _sink_agent(app: faust.App, topic_name: str, engine: DeliveryEngine) -> AgentT[bytes]:
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def coap_sink(stream: StreamT[bytes]) -> None:
        ack = stream.ack
        # Faust declares noack() on its Stream class only, not on the StreamT interface agents are typed with.
        async for event in cast(faust.Stream[bytes], stream).noack().events():
            await engine.take(raw_record(event), event, ack)

    return app.agent(
        topic,
        name=f"coap-sink.{topic_name}",
        concurrency=1,
        supervisor_strategy=mode.CrashingSupervisor,
    )(coap_sink)
