"""The sink agent: one Faust agent per KCQL source topic, consuming raw bytes.

Acks are manual. Faust's stream iterator and ``take_events`` ack in ``finally`` blocks, so an exception in
an auto-acking agent would commit the offset of the very record that failed. Here an event is acked only
after every statement reading its topic had it delivered (``Outcome.delivered``).

Topics whose statements all send one record per request are consumed event by event. A topic with a
``BATCH`` statement is consumed in chunks (``noack_take``, which buffers events without acking them):
up to ``CHUNK_FACTOR`` x the largest batch, or what arrived within ``LINGER_S``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import faust
import mode
from faust.types import EventT

from streamapp.pipeline import RawRecord, RecordPipeline
from streamapp.policy import throw

#: How long a batching agent waits for its buffer to fill before sending what it has.
LINGER_S = 0.05
#: Chunk size as a multiple of the largest BATCH, so that interleaved partitions still fill their batches.
CHUNK_FACTOR = 4


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
        headers=tuple((str(k), bytes(v) if v is not None else b"") for k, v in headers),
        timestamp=message.timestamp,
    )


def register(app: faust.App, pipelines: dict[str, RecordPipeline]) -> list[faust.types.AgentT]:
    """Register one sink agent per source topic; ``pipelines`` maps topic -> its routes' pipeline."""
    return [_sink_agent(app, topic, pipeline) for topic, pipeline in pipelines.items()]


async def _one_by_one(stream: faust.StreamT) -> AsyncIterator[Sequence[EventT]]:
    async for event in stream.noack().events():
        yield (event,)


def _sink_agent(app: faust.App, topic_name: str, pipeline: RecordPipeline) -> faust.types.AgentT:
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    batching = pipeline.max_batch > 1

    async def coap_sink(stream: faust.StreamT) -> None:
        chunks = (
            stream.noack_take(pipeline.max_batch * CHUNK_FACTOR, within=LINGER_S)
            if batching
            else _one_by_one(stream)
        )
        async for events in chunks:
            raws = [raw_record(event) for event in events]
            outcome = await pipeline.deliver(raws)
            for event, delivered in zip(events, outcome.delivered, strict=True):
                if delivered:
                    await stream.ack(event)
            if outcome.error is not None:
                assert outcome.failed_at is not None
                stopped = throw(outcome.error, outcome.failed_at)
                # Commit what was delivered, then stop the worker (exit code 1); the rest is read again.
                await app.consumer.commit()
                await app.crash(stopped)
                return

    return app.agent(
        topic,
        name=f"coap-sink.{topic_name}",
        concurrency=1,
        supervisor_strategy=mode.CrashingSupervisor,
    )(coap_sink)
