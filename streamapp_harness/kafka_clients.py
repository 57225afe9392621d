"""The test and benchmark side of a Kafka broker: create topics, produce, consume, read and write a
group's commits, with aiokafka in the caller's event loop.

:class:`KafkaClients` is shared by every broker launcher (Apache Kafka in ``kafka_broker.py``, Tansu in
``tansu.py``) and can stand alone for one listener of a broker: ``KafkaClients(bootstrap, options)`` where
``options`` are aiokafka's security arguments (``security_protocol``, ``ssl_context``, ``sasl_*``).

Written for both brokers: ``end_offsets()`` is never trusted (Tansu 0.6 answers ``ListOffsets(latest)`` with
the base offset of the last batch + 1), records are counted instead; a group's commits are read with a
consumer's OffsetFetch (Tansu's answer to the admin client's is not decodable); a topic is ready once every
partition has a leader (Apache Kafka names one a moment after it creates the topic).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.structs import ConsumerRecord

from streamapp_harness.process import LOCALHOST, async_wait_until

__all__ = ["KafkaClients"]


class KafkaClients:
    """aiokafka clients of one broker address (``bootstrap``) with ``client_options`` for security."""

    def __init__(self, bootstrap: str, client_options: Mapping[str, Any] | None = None) -> None:
        self._bootstrap = bootstrap
        self.client_options: dict[str, Any] = dict(client_options or {})

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:P"`` for ``bootstrap.servers``."""
        return self._bootstrap

    @property
    def url(self) -> str:
        """``"kafka://127.0.0.1:P"`` for Faust's ``broker=`` setting."""
        return f"kafka://{self.bootstrap}"

    async def listening(self) -> bool:
        """Whether the bootstrap address accepts a TCP connection (no Kafka request is made)."""
        host, _, port = self.bootstrap.rpartition(":")
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host or LOCALHOST, int(port)), 1)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def cluster_id_answered(self) -> str | None:
        """The cluster id the broker's metadata names, or None while it does not answer."""
        # A plain TCP connect first: keeps aiokafka from logging "Unable connect" errors while it boots.
        if not await self.listening():
            return None
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=2000, **self.client_options
        )
        try:
            async with asyncio.timeout(3):
                await admin.start()
                info = await admin.describe_cluster()
            return info.get("cluster_id")
        except (KafkaError, OSError, TimeoutError):
            return None
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        *,
        configs: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> int:
        """Create ``name`` with ``partitions`` partitions (replication 1) and topic ``configs`` (such as
        ``max.message.bytes``), and wait until every partition has a leader.

        Idempotent: an existing topic is accepted as is. Returns the partition count the broker reports
        (which for a pre-existing topic may differ from ``partitions``).
        """
        admin = self._admin(timeout)
        try:
            await admin.start()
            try:
                response = await admin.create_topics(
                    [NewTopic(name, partitions, 1, topic_configs=dict(configs or {}))]
                )
            except TopicAlreadyExistsError:
                pass
            else:
                # aiokafka's protocol responses get their fields from their SCHEMA at run time.
                for topic_error in response.topic_errors:  # type: ignore[attr-defined]
                    topic, code = topic_error[0], topic_error[1]
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise for_code(code)(f"creating topic {topic!r}: {topic_error[2:]}")
        finally:
            await admin.close()
        return len(await self.partitions(name, timeout=timeout))

    async def partitions(self, topic: str, *, timeout: float = 30.0) -> set[int]:
        """The partitions of ``topic``, once the metadata shows it with a leader for each."""
        admin = self._admin(timeout)
        found: set[int] = set()

        async def led() -> bool:
            nonlocal found
            for desc in await admin.describe_topics([topic]):
                parts = desc["partitions"]
                ok = desc["topic"] == topic and desc["error_code"] == 0 and bool(parts)
                if ok and all(part.get("leader", -1) >= 0 for part in parts):
                    found = {part["partition"] for part in parts}
                    return True
            return False

        try:
            await admin.start()
            await async_wait_until(led, timeout, interval=0.1, what=f"topic {topic!r} with leaders")
        finally:
            await admin.close()
        return found

    def _admin(self, timeout: float) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=int(timeout * 1000), **self.client_options
        )

    async def commit_offsets(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Commit ``{partition: next offset}`` for ``group`` as a plain consumer would (no membership)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False, **self.client_options
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in offsets])
            await consumer.commit({TopicPartition(topic, p): o for p, o in offsets.items()})
        finally:
            await consumer.stop()

    async def committed_offsets(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        """``{partition: committed offset}`` of ``group`` on ``topic`` (partitions without one left out).

        Read with a consumer's OffsetFetch: Tansu 0.6.0's answer to the admin client's is not decodable."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False, **self.client_options
        )
        await consumer.start()
        try:
            found = {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
        finally:
            await consumer.stop()
        return {p: offset for p, offset in found.items() if offset is not None and offset >= 0}

    async def produce(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        partitions: Sequence[int | None] | None = None,
        headers: Sequence[Sequence[tuple[str, bytes]] | None] | None = None,
        *,
        timeout: float = 30.0,
        max_request_size: int = 1024 * 1024,
    ) -> list[tuple[int, int]]:
        """Produce one record per value, in order, with one producer; return ``(partition, offset)`` of each.

        ``keys``, ``partitions`` and ``headers`` are per-record lists of the same length as ``values``
        (``None`` entries mean: no key / default partitioner / no headers). A ``None`` value is a tombstone.
        """
        n = len(values)
        for label, seq in (("keys", keys), ("partitions", partitions), ("headers", headers)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{label} has {len(seq)} entries, values has {n}")
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            request_timeout_ms=int(timeout * 1000),
            max_request_size=max_request_size,
            **self.client_options,
        )
        try:
            async with asyncio.timeout(timeout):
                await producer.start()
                futures = []
                for i, value in enumerate(values):
                    futures.append(
                        await producer.send(
                            topic,
                            value,
                            key=keys[i] if keys is not None else None,
                            partition=partitions[i] if partitions is not None else None,
                            headers=list(headers[i] or []) if headers is not None else None,
                        )
                    )
                metadata = await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return [(md.partition, md.offset) for md in metadata]

    async def consume(
        self, topic: str, count: int, *, timeout: float = 30.0
    ) -> list[ConsumerRecord[Any, Any]]:
        """Read ``count`` records of ``topic`` from the beginning of every partition (no consumer group).

        Returns exactly ``count`` records sorted by (partition, offset); raises ``TimeoutError`` if fewer
        arrive within ``timeout``. Does not rely on ``end_offsets()`` (unreliable on Tansu, see module doc).
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self.client_options,
        )
        try:
            await consumer.start()
            parts = await self.partitions(topic, timeout=timeout)
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            got: list[ConsumerRecord[Any, Any]] = []

            async def enough() -> bool:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    got.extend(records)
                return len(got) >= count

            await async_wait_until(enough, timeout, interval=0, what=f"{count} records on {topic!r}")
        finally:
            await consumer.stop()
        got.sort(key=lambda r: (r.partition, r.offset))
        return got[:count]
