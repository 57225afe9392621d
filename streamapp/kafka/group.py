"""The worker's membership in its consumer group: leaving it on stop, and the ``none`` offset reset.

Leaving: Kafka's Java consumer sends LeaveGroup on close whenever it holds a member id, so the group
rebalances at once; aiokafka sends it only when the generation is above 0. A broker whose first generation
is 0 (Tansu) then keeps the departed member until its session expires, and a restarted worker waits for
it (docs/production.md, "Start and restart"). Once partitions are assigned, the consumer is made to leave
as Java does (``streamapp/patches/aiokafka.py``, ``leave_on_close``).

``consumer.override.auto.offset.reset=none``: a partition without a committed offset stops the worker,
naming every such partition, before any record of it is read.

Joining: aiokafka hands a group error it cannot go past (a member of another partition-assignment protocol
in the group, a refused session timeout, a group the worker may not use) to the next ``getmany`` and
waits until it is taken; Faust polls only once partitions are assigned, so the error was never taken and
the worker hung, neither joining nor exiting. :class:`GroupWatch` takes it every
:data:`GROUP_CHECK_INTERVAL_S`. A member of another protocol is a Kafka Connect sink still in the group
(one that crashed stays until its ``session.timeout.ms``, 45 s by default): the worker says so and joins
as soon as it has left. Any other such error stops the worker with a line naming the key to look at.

The aiokafka consumer, its thread and its group coordinator are Faust's and aiokafka's private objects,
reached only through ``streamapp/patches/`` (``aiokafka_consumer``, ``consumer_thread``,
``group_coordinator``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Iterable

import aiokafka
import faust
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    InconsistentGroupProtocolError,
    InvalidSessionTimeoutError,
    KafkaError,
)
from aiokafka.structs import TopicPartition
from faust.types import TP

from streamapp.background import every
from streamapp.errors import ConfigError
from streamapp.logs import get_logger
from streamapp.patches.aiokafka import group_coordinator, leave_on_close, quiet_protocol_conflict_lines
from streamapp.patches.faust import aiokafka_consumer, consumer_thread

log = get_logger(__name__)

RESET_KEY = "consumer.override.auto.offset.reset"


async def committed_offsets(
    app: faust.App, consumer: aiokafka.AIOKafkaConsumer, partitions: Iterable[TP]
) -> dict[tuple[str, int], int | None]:
    """The group's committed offset of each partition (None: none), asked in the consumer's thread."""
    wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]

    async def read() -> dict[tuple[str, int], int | None]:
        return {(tp.topic, tp.partition): await consumer.committed(tp) for tp in wanted}

    offsets: dict[tuple[str, int], int | None] = await consumer_thread(app).call_thread(read)
    return offsets


def on_assignment(app: faust.App, *, group: str, auto_offset_reset: str) -> None:
    """When partitions are assigned: make the consumer leave the group on stop as Kafka's Java client does,
    and with ``auto_offset_reset`` none stop at once if an assigned partition has no committed offset."""

    # mode types a handler as (sender, *args, signal=..., **kwargs); this one names the one argument sent.
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: faust.App, assigned: set[TP], **_: object) -> None:
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


#: How often an error of the group join is looked for (and, for another protocol's member, the join tried).
GROUP_CHECK_INTERVAL_S = 2.0
#: At most one ``kafka.group_protocol_conflict`` line this often while the conflict lasts.
CONFLICT_LINE_INTERVAL_S = 15.0


class GroupWatch:
    """Takes the errors aiokafka's group coordinator keeps for the consumer (see the module docstring)."""

    def __init__(self, app: faust.App, group: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._app = app
        self._group = group
        self._clock = clock
        #: Since when a member of another protocol keeps the worker out of the group (None: it does not).
        self.conflict_since: float | None = None
        self._last_line: float | None = None

    def reason(self) -> str | None:
        """Why the worker cannot join its group, for /readyz; None when nothing keeps it out."""
        if self.conflict_since is None:
            return None
        return (
            f"cannot join group {self._group!r} for {self._clock() - self.conflict_since:.0f} s: a member "
            "of another partition-assignment protocol is in it (a Kafka Connect sink still running, or one "
            "that crashed and stays until its session.timeout.ms)"
        )

    async def check(self) -> None:
        """Take the coordinator's pending error, in the consumer's thread, and act on it."""
        consumer = aiokafka_consumer(self._app)
        if consumer is None:
            return
        coordinator = group_coordinator(consumer)
        if coordinator is None:
            return

        def take() -> KafkaError | None:
            try:
                coordinator.check_errors()
            except KafkaError as exc:
                return exc
            return None

        # Straight onto the consumer thread's loop, not through its method queue: the calls queued there
        # wait behind the very join that failed.
        thread_loop = consumer_thread(self._app).thread_loop
        taken: concurrent.futures.Future[KafkaError | None] = concurrent.futures.Future()

        def run() -> None:
            try:
                taken.set_result(take())
            except BaseException as exc:  # not a KafkaError: whatever it is, the caller sees it
                taken.set_exception(exc)

        thread_loop.call_soon_threadsafe(run)
        error = await asyncio.wrap_future(taken)
        if error is None:
            if self.conflict_since is not None and coordinator.generation > 0:
                log.info(
                    "kafka.group_joined",
                    group=self._group,
                    after_s=round(self._clock() - self.conflict_since),
                )
                self.conflict_since = self._last_line = None
            return
        if isinstance(error, InconsistentGroupProtocolError):
            self._conflict()
            return  # taken: aiokafka's coordinator joins again
        fatal = self._fatal(error)
        log.error("kafka.group_join_failed", group=self._group, error=str(fatal))
        await self._app.crash(fatal)

    def _conflict(self) -> None:
        now = self._clock()
        if self.conflict_since is None:
            self.conflict_since = now
        if self._last_line is None or now - self._last_line >= CONFLICT_LINE_INTERVAL_S:
            self._last_line = now
            log.warning(
                "kafka.group_protocol_conflict",
                group=self._group,
                waiting_s=round(now - self.conflict_since),
                why=f"group {self._group!r} has a member of another partition-assignment protocol, so this "
                "worker cannot join it: a Kafka Connect sink of this name is still running (stop it) or "
                "crashed (it leaves when its session.timeout.ms ends, 45 s by default); joining again every "
                f"{GROUP_CHECK_INTERVAL_S:g} s",
            )

    def _fatal(self, error: KafkaError) -> Exception:
        if isinstance(error, InvalidSessionTimeoutError):
            return ConfigError(
                "session.timeout.ms",
                f"the broker refused it for group {self._group!r} ({error}): it must lie within the "
                "broker's group.min.session.timeout.ms and group.max.session.timeout.ms",
            )
        if isinstance(error, GroupAuthorizationFailedError):
            return ConfigError(
                "consumer.override.group.id",
                f"the broker does not let this worker use group {self._group!r} ({error}): grant it "
                "Read on the group, or name another group",
            )
        return error


def watch_group(app: faust.App, group: str) -> GroupWatch:
    """Take the group's join errors from the app's start (streamapp/background.py: Faust's own timers start
    only once partitions are assigned, which a failed join prevents)."""
    watch = GroupWatch(app, group)
    every(app, GROUP_CHECK_INTERVAL_S, watch.check)
    quiet_protocol_conflict_lines()  # kafka.group_protocol_conflict says it now and then
    return watch
