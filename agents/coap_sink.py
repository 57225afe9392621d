"""The sink agent: one Faust agent per KCQL source topic, consuming raw bytes.

Acks are manual (``stream.noack()``): Faust's stream iterator acks the current event in a ``finally``
block, so an exception in an auto-acking agent would commit the offset of the very record that failed.
Here an event is acked only after every statement reading its topic had it delivered.
"""

from __future__ import annotations

import faust
import mode
from faust.types import EventT

from streamapp.pipeline import RawRecord, RecordPipeline
from streamapp.policy import throw


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


def _sink_agent(app: faust.App, topic_name: str, pipeline: RecordPipeline) -> faust.types.AgentT:
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def coap_sink(stream: faust.StreamT) -> None:
        async for event in stream.noack().events():
            raw = raw_record(event)
            try:
                await pipeline.deliver(raw)
            except Exception as exc:
                stopped = throw(exc, raw.where)
                # Commit what was delivered before this record, then stop the worker (exit code 1).
                await app.consumer.commit()
                await app.crash(stopped)
                return
            await stream.ack(event)

    return app.agent(
        topic,
        name=f"coap-sink.{topic_name}",
        concurrency=1,
        supervisor_strategy=mode.CrashingSupervisor,
    )(coap_sink)
