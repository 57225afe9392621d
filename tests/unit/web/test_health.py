"""Readiness reasons, the broker watch, LeaveGroup in generation 0, the ``none`` reset message, the
preflight's explanations and the data directory."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from types import SimpleNamespace

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    InvalidSessionTimeoutError,
    KafkaConnectionError,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.group import LeaveGroupRequest

from streamapp.config.workdir import data_directory
from streamapp.errors import ConfigError, WorkerStopped
from streamapp.kafka.group import GroupWatch, leave_on_close, no_offset_error, without_committed_offset
from streamapp.kafka.preflight import BrokerUnusable, check_broker, explain
from streamapp.web.health import BROKER_STALE_S, BrokerWatch, readiness_reasons
from streamapp_harness.process import free_port


class FakeEngine:
    def __init__(self, stopped=None, retrying=(), closing=False) -> None:
        self.stop_reason, self._retrying, self.stopping = stopped, list(retrying), closing

    def retrying(self):
        return self._retrying


class FakeBroker:
    def __init__(self, reason=None) -> None:
        self._reason = reason

    def reason(self):
        return self._reason


def reasons(engine=None, assigned=(("t", 0),), broker=None, should_stop=False, group=None) -> list[str]:
    app = SimpleNamespace(should_stop=should_stop)
    return readiness_reasons(
        app, engine or FakeEngine(), broker or FakeBroker(), lambda: list(assigned), group
    )


def test_ready_when_assigned_delivering_and_the_broker_answers() -> None:
    assert reasons() == []


def test_each_reason_is_named() -> None:
    assert "no partitions assigned" in reasons(assigned=())[0]
    assert reasons(FakeEngine(stopped=WorkerStopped("t/0@4: 5.00")))[0].startswith(
        "stopped by the error policy: t/0@4"
    )
    assert reasons(FakeEngine(closing=True)) == ["the worker is stopping"]
    assert reasons(should_stop=True) == ["the worker is stopping"]
    held = reasons(FakeEngine(retrying=[("t/1@7", 3)]))
    assert held == ["connect.coap.error.policy=RETRY holds t/1@7 (resent 3 time(s) so far)"]
    assert reasons(broker=FakeBroker("Kafka broker has not answered for 20 s")) == [
        "Kafka broker has not answered for 20 s"
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeClient:
    def __init__(self) -> None:
        self.fail: Exception | None = None

    async def fetch_all_metadata(self) -> None:
        if self.fail is not None:
            raise self.fail


async def test_broker_watch_turns_unready_only_after_the_stale_time() -> None:
    clock, client = Clock(), FakeClient()
    producer = SimpleNamespace(_ensure_producer=lambda: SimpleNamespace(client=client))
    watch = BrokerWatch(SimpleNamespace(producer=producer), clock=clock)
    watch.started()
    await watch.probe()
    assert watch.reason() is None
    client.fail = KafkaConnectionError("Connection at 127.0.0.1:9092 closed")
    clock.now += BROKER_STALE_S - 1
    await watch.probe()
    assert watch.reason() is None  # one failed probe is not yet an outage
    clock.now += 2
    assert "has not answered for 16 s" in watch.reason() and "closed" in watch.reason()
    client.fail = None
    await watch.probe()
    assert watch.reason() is None


async def test_a_broker_silent_since_the_start_is_reported_after_the_stale_time() -> None:
    clock, client = Clock(), FakeClient()
    client.fail = TimeoutError()
    producer = SimpleNamespace(_ensure_producer=lambda: SimpleNamespace(client=client))
    watch = BrokerWatch(SimpleNamespace(producer=producer), clock=clock)
    watch.started()
    await watch.probe()
    assert watch.reason() is None
    clock.now += BROKER_STALE_S + 1
    await watch.probe()
    assert watch.reason() == "Kafka broker has not answered for 16 s (TimeoutError)"


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


def test_preflight_explanations_name_the_key() -> None:
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "unable to get local issuer certificate"
    assert "ssl.truststore.location" in explain(untrusted, "SSL")
    wrong_host = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wrong_host.verify_message = "Hostname mismatch, certificate is not valid for 'broker'."
    assert "ssl.endpoint.identification.algorithm" in explain(wrong_host, "SSL")
    refused = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required")
    refused.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert "ssl.keystore.location" in explain(refused, "SSL")
    assert "security.protocol=SSL" in explain(KafkaConnectionError("Connection at x closed"), "PLAINTEXT")
    assert "ssl.keystore.location" in explain(KafkaConnectionError("Connection at x closed"), "SSL")
    assert "sasl.mechanism=SCRAM-SHA-256" in explain(
        KafkaConnectionError("Connection at x closed"), "SASL_PLAINTEXT", "SCRAM-SHA-256"
    )
    assert "sasl.jaas.config" in explain(KeyError("v"), "SASL_SSL", "SCRAM-SHA-512")
    assert "sasl.mechanism=PLAIN" in explain(UnsupportedSaslMechanismError(), "SASL_PLAINTEXT")
    assert "bootstrap.servers" in explain(ConnectionRefusedError(111, "Connection refused"), "PLAINTEXT")
    no_sasl = explain(IllegalSaslStateError(), "SASL_PLAINTEXT", "SCRAM-SHA-256")
    assert "does not offer SASL" in no_sasl and "sasl.mechanism=SCRAM-SHA-256" in no_sasl
    reset = explain(ConnectionResetError(104, "Connection reset by peer"), "SSL")
    assert "TLS handshake" in reset and "security.protocol=SSL" in reset


async def test_preflight_against_a_closed_port() -> None:
    port = free_port()
    with pytest.raises(BrokerUnusable) as info:
        await asyncio.wait_for(check_broker([f"127.0.0.1:{port}"], None, "PLAINTEXT"), 15)
    assert f"127.0.0.1:{port}: cannot connect" in str(info.value)


def test_the_default_data_directory_is_private_and_removed_at_exit(tmp_path) -> None:
    assert data_directory(str(tmp_path)) == str(tmp_path)
    code = "from streamapp.config.workdir import data_directory; print(data_directory(None))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path, timeout=60
    )
    path = out.stdout.strip()
    assert path.startswith("/") and "streamapp-" in path
    assert not __import__("os").path.exists(path)  # removed when that process exited
    assert list(tmp_path.iterdir()) == []  # nothing written into the working directory


def test_a_group_member_of_another_protocol_is_named_for_readiness_and_logged_now_and_then() -> None:
    clock = Clock()
    watch = GroupWatch(SimpleNamespace(), "connect-sink", clock=clock)  # type: ignore[arg-type]
    assert watch.reason() is None
    watch._conflict()
    clock.now += 12
    watch._conflict()
    reason = watch.reason()
    assert reason is not None and "cannot join group 'connect-sink' for 12 s" in reason
    assert "another partition-assignment protocol" in reason
    assert reasons(group=watch) == [reason]  # replaces "no partitions assigned"


def test_other_join_errors_stop_the_worker_naming_the_key() -> None:
    watch = GroupWatch(SimpleNamespace(), "connect-sink")  # type: ignore[arg-type]
    refused = watch._fatal(InvalidSessionTimeoutError())
    assert isinstance(refused, ConfigError) and refused.key == "session.timeout.ms"
    denied = watch._fatal(GroupAuthorizationFailedError())
    assert isinstance(denied, ConfigError) and denied.key == "consumer.override.group.id"
