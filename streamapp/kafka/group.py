"""The worker's membership in its consumer group: leaving it on stop, and the ``none`` offset reset.

Leaving: Kafka's Java consumer sends LeaveGroup on close whenever it holds a member id, so the group
rebalances at once; aiokafka sends it only when the generation is above 0. A broker whose first generation
is 0 (Tansu) then keeps the departed member until its session expires, and a restarted worker waits for
it (docs/production.md, "Start and restart"). :func:`leave_on_close` makes aiokafka leave as Java does.

``consumer.override.auto.offset.reset=none``: a partition without a committed offset stops the worker,
naming every such partition, before any record of it is read.
"""

from __future__ import annotations

from collections.abc import Iterable

import aiokafka
import faust
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import JoinGroupRequest, LeaveGroupRequest
from aiokafka.structs import TopicPartition
from faust.tables.manager import TableManager
from faust.types import TP

from streamapp.errors import ConfigError
from streamapp.logs import get_logger

log = get_logger("streamapp.kafka")

RESET_KEY = "consumer.override.auto.offset.reset"


def leave_on_close(consumer: aiokafka.AIOKafkaConsumer) -> None:
    """Make ``consumer`` send LeaveGroup when it closes in generation 0 too (see the module docstring)."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or getattr(coordinator, "_streamapp_leaves", False):
        return
    aiokafka_leave = coordinator._maybe_leave_group

    async def maybe_leave_group() -> None:
        if (
            coordinator.generation == 0
            and coordinator._group_instance_id is None
            and coordinator.member_id != JoinGroupRequest.UNKNOWN_MEMBER_ID
        ):
            try:
                await coordinator._send_req(LeaveGroupRequest(coordinator.group_id, coordinator.member_id))
            except KafkaError as exc:  # best effort, as aiokafka's own: the session expiry still frees it
                log.warning("kafka.leave_group_failed", group=coordinator.group_id, error=str(exc))
            else:
                log.info("kafka.left_group", group=coordinator.group_id)
            coordinator.reset_generation()
            return
        await aiokafka_leave()

    coordinator._maybe_leave_group = maybe_leave_group
    coordinator._streamapp_leaves = True


def aiokafka_consumer(app: faust.App) -> aiokafka.AIOKafkaConsumer | None:
    """The aiokafka consumer that Faust runs in its consumer thread (None before it exists)."""
    thread = getattr(app.consumer, "_thread", None)
    return getattr(thread, "_consumer", None)


async def committed_offsets(
    app: faust.App, consumer: aiokafka.AIOKafkaConsumer, partitions: Iterable[TP]
) -> dict[tuple[str, int], int | None]:
    """The group's committed offset of each partition (None: none), asked in the consumer's thread."""
    wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]

    async def read() -> dict[tuple[str, int], int | None]:
        return {(tp.topic, tp.partition): await consumer.committed(tp) for tp in wanted}

    return await app.consumer._thread.call_thread(read)


def on_assignment(app: faust.App, *, group: str, auto_offset_reset: str) -> None:
    """When partitions are assigned: make the consumer leave the group on stop as Kafka's Java client does,
    and with ``auto_offset_reset`` none stop at once if an assigned partition has no committed offset."""

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: faust.App, assigned: set, **_: object) -> None:
        consumer = aiokafka_consumer(app)
        if consumer is None:
            return
        leave_on_close(consumer)
        if auto_offset_reset == "none" and assigned:
            committed = await committed_offsets(app, consumer, assigned)
            if missing := without_committed_offset(committed):
                error = no_offset_error(missing, group)
                log.error("kafka.no_committed_offset", error=str(error))
                await app.crash(error)


def without_committed_offset(committed: dict[tuple[str, int], int | None]) -> list[tuple[str, int]]:
    return sorted(tp for tp, offset in committed.items() if offset is None or offset < 0)


def no_offset_error(partitions: Iterable[tuple[str, int]], group: str) -> ConfigError:
    named = ", ".join(f"{topic}/{partition}" for topic, partition in partitions)
    return ConfigError(
        RESET_KEY,
        f"is none and group {group!r} has no committed offset for {named}: commit offsets for them "
        "(e.g. from the Kafka Connect sink), or set it to earliest or latest",
    )


class PromptTableManager(TableManager):
    """Faust's table manager without its one-second wait at start.

    Faust waits a second so that agents registered late still make the first subscription; this app
    registers its agents before the worker starts and keeps no table, so the wait only delays the join.
    """

    async def on_start(self) -> None:
        await self._update_channels()
        await self.recovery.start()
