"""The sink agent: one Faust agent per KCQL source topic, consuming raw bytes.

Acks are manual. Faust's stream iterator and ``take_events`` ack in ``finally`` blocks, so an exception in
an auto-acking agent would commit the offset of the very record that failed. Here an event is acked only
after every statement reading its topic had it delivered, or the error policy let it go
(:class:`streamapp.handler.RecordHandler`).

Topics whose statements all send one record at a time are consumed event by event. A topic with a
``BATCH`` statement, or one allowed several requests in flight (``max.inflight``), is consumed in chunks
(``noack_take``, which buffers events without acking them): up to ``CHUNK_FACTOR`` x the larger of the two,
or what arrived within ``LINGER_S``.

On SIGTERM the chunk being delivered is given ``STOP_GRACE_S`` to finish; what it delivered is acked, so
Faust's commit on the way out covers it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import faust
import mode
from faust.types import EventT

from streamapp.handler import RecordHandler
from streamapp.pipeline import RawRecord

#: How long a batching agent waits for its buffer to fill before sending what it has.
LINGER_S = 0.05
#: How long a stopping worker waits for the requests in flight (RETRY waits are not waited for).
STOP_GRACE_S = 10.0
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


async def _ack(stream: faust.StreamT, events: Sequence[EventT], acked: Sequence[bool]) -> None:
    for event, done in zip(events, acked, strict=True):
        if done:
            await stream.ack(event)


def register(app: faust.App, handlers: dict[str, RecordHandler]) -> list[faust.types.AgentT]:
    """Register one sink agent per source topic; ``handlers`` maps topic -> its pipeline and error policy."""
    return [_sink_agent(app, topic, handler) for topic, handler in handlers.items()]


async def _one_by_one(stream: faust.StreamT) -> AsyncIterator[Sequence[EventT]]:
    async for event in stream.noack().events():
        yield (event,)


def _sink_agent(app: faust.App, topic_name: str, handler: RecordHandler) -> faust.types.AgentT:
    pipeline = handler.pipeline
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    # Records are taken in chunks when a statement batches them or sends several at once; else one by one.
    chunk = max(pipeline.max_batch, pipeline.max_inflight) * CHUNK_FACTOR
    batching = chunk > CHUNK_FACTOR

    async def coap_sink(stream: faust.StreamT) -> None:
        chunks = stream.noack_take(chunk, within=LINGER_S) if batching else _one_by_one(stream)
        async for events in chunks:
            work = asyncio.ensure_future(handler.handle([raw_record(event) for event in events]))
            try:
                handled = await asyncio.shield(work)
            except asyncio.CancelledError:
                # The worker is stopping (SIGTERM): let the requests in flight finish or time out, ack what
                # they delivered (Faust commits acked offsets as it stops), then stop.
                with contextlib.suppress(Exception):
                    handled = await asyncio.wait_for(work, STOP_GRACE_S)
                    await _ack(stream, events, handled.acked)
                raise
            await _ack(stream, events, handled.acked)
            if handled.stop is not None:
                # Commit what was acked, then stop the worker (exit code 1); the rest is read again.
                await app.consumer.commit()
                await app.crash(handled.stop)
                return

    return app.agent(
        topic,
        name=f"coap-sink.{topic_name}",
        concurrency=1,
        supervisor_strategy=mode.CrashingSupervisor,
    )(coap_sink)
