"""The readiness probe's reasons and the broker watch behind one of them (``streamapp/web/health.py``)."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka.errors import KafkaConnectionError

from streamapp.errors import WorkerStopped
from streamapp.web.health import BROKER_STALE_S, BrokerWatch, readiness_reasons


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


class FakeGroup:
    def __init__(self, reason=None) -> None:
        self._reason = reason

    def reason(self):
        return self._reason


def test_a_group_that_cannot_be_joined_replaces_no_partitions_assigned() -> None:
    conflict = "cannot join group 'connect-sink' for 12 s: another partition-assignment protocol"
    assert reasons(assigned=(), group=FakeGroup(conflict)) == [conflict]
    assert "no partitions assigned" in reasons(assigned=(), group=FakeGroup())[0]
