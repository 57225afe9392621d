"""The consumer group (``streamapp/kafka/group.py``): LeaveGroup in generation 0 as the Java client sends it,
the ``none`` reset's message naming the partitions without a commit, and the join errors: another protocol's
member named for readiness, the others stopping the worker naming the key."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka.errors import GroupAuthorizationFailedError, InvalidSessionTimeoutError
from aiokafka.protocol.group import LeaveGroupRequest

from streamapp.errors import ConfigError
from streamapp.kafka.group import GroupWatch, no_offset_error, without_committed_offset
from streamapp.patches.aiokafka import leave_on_close


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeCoordinator:
    def __init__(self, generation: int, member_id: str = "m-1", instance: str | None = None) -> None:
        self.generation, self.member_id, self.group_id = generation, member_id, "connect-coap-sink"
        self._group_instance_id = instance
        self.sent: list = []
        self.aiokafka_left = False

    async def _send_req(self, request):
        self.sent.append(request)

    async def _maybe_leave_group(self) -> None:
        self.aiokafka_left = True

    def reset_generation(self) -> None:
        self.generation, self.member_id = -1, ""


async def test_leave_group_in_generation_zero_as_the_java_client_does() -> None:
    coordinator = FakeCoordinator(generation=0)
    leave_on_close(SimpleNamespace(_coordinator=coordinator))
    await coordinator._maybe_leave_group()
    (request,) = coordinator.sent
    assert isinstance(request, LeaveGroupRequest)
    assert not coordinator.aiokafka_left and coordinator.member_id == ""


@pytest.mark.parametrize(("generation", "instance"), [(3, None), (0, "static-1")])
async def test_other_members_leave_as_aiokafka_decides(generation: int, instance: str | None) -> None:
    coordinator = FakeCoordinator(generation=generation, instance=instance)
    consumer = SimpleNamespace(_coordinator=coordinator)
    leave_on_close(consumer)
    leave_on_close(consumer)  # installed once
    await coordinator._maybe_leave_group()
    assert coordinator.sent == [] and coordinator.aiokafka_left


def test_partitions_without_a_commit_are_named() -> None:
    committed = {("t", 1): None, ("t", 0): 5, ("u", 0): -1}
    missing = without_committed_offset(committed)
    assert missing == [("t", 1), ("u", 0)]
    error = no_offset_error(missing, "connect-coap-sink")
    assert isinstance(error, ConfigError) and error.key == "consumer.override.auto.offset.reset"
    assert "t/1, u/0" in str(error) and "'connect-coap-sink'" in str(error)


def test_a_group_member_of_another_protocol_is_named_after_it_lasted() -> None:
    clock = Clock()
    watch = GroupWatch(SimpleNamespace(), "connect-sink", clock=clock)  # type: ignore[arg-type]
    assert watch.reason() is None
    watch._conflict()
    clock.now += 12
    watch._conflict()
    reason = watch.reason()
    assert reason is not None and "cannot join group 'connect-sink' for 12 s" in reason
    assert "another partition-assignment protocol" in reason


def test_other_join_errors_stop_the_worker_naming_the_key() -> None:
    watch = GroupWatch(SimpleNamespace(), "connect-sink")  # type: ignore[arg-type]
    refused = watch._fatal(InvalidSessionTimeoutError())
    assert isinstance(refused, ConfigError) and refused.key == "session.timeout.ms"
    denied = watch._fatal(GroupAuthorizationFailedError())
    assert isinstance(denied, ConfigError) and denied.key == "consumer.override.group.id"
