"""aiokafka 0.14.0 (faust-streaming 0.15.3's): one patch, one accessor, one reliance on its log lines.

- :func:`group_coordinator`: ``AIOKafkaConsumer._coordinator``, the consumer's group coordinator. aiokafka
  keeps an error of the group join it cannot go past (a member of another partition-assignment protocol,
  a refused session timeout, a group the worker may not use) for the next ``getmany``, and Faust polls only
  once partitions are assigned, so the worker hung; ``kafka/group.py``'s ``GroupWatch`` takes the error
  with the coordinator's ``check_errors`` instead. Neither the consumer nor Faust exposes the coordinator.
- :func:`leave_on_close` replaces the coordinator's ``_maybe_leave_group`` on one consumer. Kafka's Java
  consumer sends LeaveGroup on close whenever it holds a member id, so the group rebalances at once;
  aiokafka only when the generation is above 0. A broker whose first generation is 0 (Tansu) then keeps
  the departed member until its session expires, and a restarted worker waits for it (docs/production.md,
  "Start and restart"). There is no setting for it.
- :func:`quiet_protocol_conflict_lines`: aiokafka logs every refused join at ERROR, every two seconds while
  a member of another protocol is in the group; ``kafka.group_protocol_conflict`` says it now and then
  instead. The filter knows aiokafka's lines by its coordinator's logger and by the error's name in them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiokafka
from aiokafka.consumer import group_coordinator as aiokafka_group
from aiokafka.errors import InconsistentGroupProtocolError, KafkaError
from aiokafka.protocol.group import JoinGroupRequest, LeaveGroupRequest

from streamapp.logs import get_logger
from streamapp.patches.checks import Internal

log = get_logger(__name__)

DISTRIBUTION, VERSION = "aiokafka", "0.14.0"

#: aiokafka's group coordinator logs under this name (``aiokafka.consumer.group_coordinator.log``).
COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
#: ... and a refused join as "Attempt to join group failed due to fatal error: <the error>".
PROTOCOL_CONFLICT = InconsistentGroupProtocolError.__name__


def _internal(name: str, find: Any, used_by: str, **check: Any) -> Internal:
    return Internal(name, find, DISTRIBUTION, VERSION, __name__, used_by, **check)


CONSUMER_COORDINATOR = _internal(
    "aiokafka.AIOKafkaConsumer._coordinator (set by start)",
    lambda: aiokafka.AIOKafkaConsumer.start,
    "group_coordinator",
    digest="2f1ba70443327538",
)
CHECK_ERRORS = _internal(
    "aiokafka.consumer.group_coordinator.GroupCoordinator.check_errors",
    lambda: aiokafka_group.GroupCoordinator.check_errors,
    "group_coordinator",
    digest="ba6ca51ad34838d9",
)
MAYBE_LEAVE_GROUP = _internal(
    "aiokafka.consumer.group_coordinator.GroupCoordinator._maybe_leave_group",
    lambda: aiokafka_group.GroupCoordinator._maybe_leave_group,
    "leave_on_close",
    digest="016cd88a16e6c4b5",
)
COORDINATOR_LOG = _internal(
    "aiokafka.consumer.group_coordinator.log",
    lambda: aiokafka_group.log,
    "quiet_protocol_conflict_lines",
    expect=lambda logger: isinstance(logger, logging.Logger) and logger.name == COORDINATOR_LOGGER,
    expected=f"the logger {COORDINATOR_LOGGER!r}",
)
PROTOCOL_CONFLICT_TEXT = _internal(
    "str(aiokafka.errors.InconsistentGroupProtocolError())",
    lambda: str(InconsistentGroupProtocolError()),
    "quiet_protocol_conflict_lines",
    expect=lambda text: PROTOCOL_CONFLICT in text,
    expected=f"a text naming {PROTOCOL_CONFLICT}",
)

#: Every internal of aiokafka this module relies on.
INTERNALS = (CONSUMER_COORDINATOR, CHECK_ERRORS, MAYBE_LEAVE_GROUP, COORDINATOR_LOG, PROTOCOL_CONFLICT_TEXT)


def group_coordinator(consumer: aiokafka.AIOKafkaConsumer) -> aiokafka_group.GroupCoordinator | None:
    """The consumer's group coordinator (None before ``start``): ``check_errors()`` raises the join error
    it keeps, ``generation`` is above 0 once the worker is in the group. Call it on the consumer's loop."""
    return consumer._coordinator


def leave_on_close(consumer: aiokafka.AIOKafkaConsumer) -> None:
    """Make ``consumer`` send LeaveGroup when it closes in generation 0 too (module doc); once per consumer.
    Any other case is aiokafka's own ``_maybe_leave_group``."""
    coordinator = group_coordinator(consumer)
    if coordinator is None or getattr(coordinator, "_streamapp_leaves", False):
        return
    aiokafka_leave: Callable[[], Awaitable[None]] = coordinator._maybe_leave_group

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

    # The patch itself: a method replaced on this one object, and a marker that it was.
    coordinator._maybe_leave_group = maybe_leave_group  # type: ignore[method-assign]
    coordinator._streamapp_leaves = True  # type: ignore[attr-defined]


class _ProtocolConflictLines(logging.Filter):
    """Drops aiokafka's ERROR line for each join refused because of a member of another protocol."""

    def filter(self, record: logging.LogRecord) -> bool:
        return PROTOCOL_CONFLICT not in record.getMessage()


def quiet_protocol_conflict_lines() -> None:
    """Drop aiokafka's line for each refused join (module doc); idempotent."""
    coordinator_log = logging.getLogger(COORDINATOR_LOGGER)
    if not any(isinstance(f, _ProtocolConflictLines) for f in coordinator_log.filters):
        coordinator_log.addFilter(_ProtocolConflictLines())
