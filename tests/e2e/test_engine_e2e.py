"""The delivery engine's contract end to end (docs/delivery-engine.md): the window
(``connect.coap.max.inflight``), the ordering rule (``connect.coap.ordering``), Message IDs that are never
reused within EXCHANGE_LIFETIME, and RETRY holding only the failed record's partition. Every test asserts on
what the aiocoap recording server saw, with the arrival and answer of each request (tests/recording_server.py
``exchanges``)."""

from __future__ import annotations

import itertools
import json
import resource
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

import pytest
from aiocoap.numbers.codes import Code

from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.worker import WorkerProcess
from tests.recording_server import Exchange, Recorded, RecordingCoapServer

pytestmark = pytest.mark.slow

#: Every statement selects the record's coordinates, so the server's log says which record each request is.
SELECT = "SELECT *, _.partition AS p, _.offset AS o"


def without_repeats(seq: Sequence[int]) -> list[int]:
    """A record resent at once (RETRY, or a response lost) shows up twice in a row; keep one."""
    return [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]


def coordinates(request: Recorded) -> tuple[int, int]:
    doc = json.loads(request.payload)
    return doc["p"], doc["o"]


def offsets_by_partition(requests: Iterable[Recorded]) -> dict[int, list[int]]:
    """Per partition, the offsets of its requests in arrival order."""
    seen: dict[int, list[int]] = defaultdict(list)
    for request in requests:
        partition, offset = coordinates(request)
        seen[partition].append(offset)
    return seen


def expected_offsets(produced: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """Per partition, the offsets the broker gave the produced records, in order."""
    offsets: dict[int, list[int]] = defaultdict(list)
    for partition, offset in produced:
        offsets[partition].append(offset)
    return offsets


def assert_in_order(seen: Sequence[int], expected: Sequence[int], what: str) -> None:
    if list(seen) != list(expected):
        at = next((i for i, (a, b) in enumerate(zip(seen, expected, strict=False)) if a != b), None)
        if at is None:
            at = min(len(seen), len(expected))
        raise AssertionError(
            f"{what}: {len(seen)} requests for {len(expected)} records, first difference at #{at}: "
            f"saw {list(seen[max(0, at - 3) : at + 3])}, expected {list(expected[max(0, at - 3) : at + 3])}"
        )


def overlapping(exchanges: Sequence[Exchange]) -> list[tuple[Exchange, Exchange]]:
    """Consecutive exchanges (in arrival order) where the later arrived before the earlier was answered."""
    return [(a, b) for a, b in itertools.pairwise(exchanges) if a.closed is None or b.opened < a.closed]


def mean_concurrency(exchanges: Sequence[Exchange]) -> float:
    """Requests outstanding at the server on average, from the first arrival to the last answer."""
    answered = [e for e in exchanges if e.answered is not None]
    if not answered:
        return 0.0
    span = max(e.answered for e in answered if e.answered is not None) - min(e.arrived for e in answered)
    busy = sum(e.answered - e.arrived for e in answered if e.answered is not None)
    return busy / span if span > 0 else 0.0


class Distinct:
    """The distinct (partition, offset) pairs at the server, read incrementally from its log (cheap to poll
    with tens of thousands of requests); ``last_new`` is the arrival index of the latest new pair."""

    def __init__(self, recorder: RecordingCoapServer) -> None:
        self._recorder = recorder
        self._cursor = 0
        self.seen: set[tuple[int, int]] = set()
        self.last_new = -1

    def update(self) -> int:
        new = self._recorder.requests_from(self._cursor)
        for i, request in enumerate(new, start=self._cursor):
            pair = coordinates(request)
            if pair not in self.seen:
                self.seen.add(pair)
                self.last_new = i
        self._cursor += len(new)
        return len(self.seen)


def wait_for_all(
    worker: WorkerProcess, recorder: RecordingCoapServer, n: int, *, timeout: float, what: str
) -> Distinct:
    """Wait until every one of ``n`` records reached the server (or fail with what did)."""
    distinct = Distinct(recorder)
    try:
        worker.wait_until(lambda: distinct.update() >= n, timeout=timeout, what=what)
    except (TimeoutError, AssertionError) as exc:  # timed out, or the worker exited
        distinct.update()
        exchanges = recorder.exchanges
        span = exchanges[-1].arrived - exchanges[0].arrived if exchanges else 0.0
        raise AssertionError(
            f"{len(distinct.seen)} of {n} records arrived, in {len(exchanges)} requests over {span:.1f} s; "
            f"{exc}"
        ) from None
    return distinct


def wait_all_answered(worker: WorkerProcess, recorder: RecordingCoapServer, timeout: float = 30) -> None:
    worker.wait_until(lambda: recorder.in_flight == 0, timeout=timeout, what="every request answered")


async def test_more_requests_than_message_ids_all_arrive_in_order(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    """70 000 requests from one worker with default settings: past 65 536 a reused Message ID would be
    answered from the server's de-duplication cache and never delivered, so records would go missing."""
    topic = f"{unique}-t"
    partitions, n, budget = 4, 70_000, 240.0
    await broker.create_topic(topic, partitions=partitions)
    started = time.monotonic()
    produced = await broker.produce(
        topic, [b'{"n":%d}' % i for i in range(n)], partitions=[i % partitions for i in range(n)], timeout=300
    )
    produced_in = time.monotonic() - started
    index_of = {pair: i for i, pair in enumerate(produced)}
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": f"INSERT INTO r {SELECT} FROM {topic}",
        }
    )
    worker.wait_until(lambda: recorder.count > 0, what="the first request")
    first = recorder.exchanges_from(0)[0].arrived
    distinct = wait_for_all(
        worker,
        recorder,
        n,
        timeout=first + budget - time.monotonic(),
        what=f"all {n} records within {budget:g} s of the first arrival",
    )
    last = recorder.exchanges_from(distinct.last_new)[0].arrived
    elapsed = last - first
    assert elapsed <= budget, elapsed

    requests = recorder.requests
    assert distinct.seen == set(produced)
    for request in requests:  # each request carries its own record's body, not another's
        assert json.loads(request.payload)["n"] == index_of[coordinates(request)], request
    seen = offsets_by_partition(requests)
    for partition, offsets in expected_offsets(produced).items():
        assert_in_order(without_repeats(seen[partition]), offsets, f"partition {partition}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"Message IDs: {n} records (produced in {produced_in:.1f} s) arrived {elapsed:.1f} s after the first "
        f"({n / elapsed:.0f}/s) in {len(requests)} requests ({len(requests) - n} repeated); test process "
        f"max RSS {rss_mb:.0f} MB"
    )
    assert worker.stop() == 0


async def test_max_inflight_8_puts_exactly_8_on_the_wire(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    """64 resources and a slow server (50 ms per answer): with max.inflight=8, eight requests are
    outstanding at once, never more."""
    topic = f"{unique}-t"
    n, resources, window = 2000, 64, 8
    await broker.create_topic(topic, partitions=1)
    produced = await broker.produce(
        topic, [json.dumps({"id": i % resources, "n": i}).encode() for i in range(n)]
    )
    recorder.set_delay(0.05)
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": f"INSERT INTO r/{{id}} {SELECT} FROM {topic}",
            "connect.coap.max.inflight": str(window),
        }
    )
    wait_for_all(worker, recorder, n, timeout=180, what=f"all {n} records")
    wait_all_answered(worker, recorder)
    exchanges = recorder.exchanges
    assert {coordinates(e.request) for e in exchanges} == set(produced)
    by_resource: dict[str, list[int]] = defaultdict(list)
    for e in exchanges:
        by_resource[e.request.path].append(json.loads(e.request.payload)["n"])
    assert len(by_resource) == resources
    for path, seen in by_resource.items():
        r = int(path.rsplit("/", 1)[1])
        assert_in_order(without_repeats(seen), range(r, n, resources), path)
    span = max(e.answered or 0.0 for e in exchanges) - exchanges[0].arrived
    print(
        f"max.inflight={window}, {resources} resources: at most {recorder.max_concurrent} outstanding at the "
        f"server, {mean_concurrency(exchanges):.2f} on average; {n} records in {span:.1f} s"
    )
    assert recorder.max_concurrent == window
    # Every record may go at any time (64 resources, one partition each): the window stays full, not only
    # now and then. Refilling a slot costs the worker ~1 ms against 50 ms per answer, so >= 7 of 8 on average
    # leaves room for a busy machine while head-of-line blocking (a slot waiting on another resource) fails.
    assert mean_concurrency(exchanges) >= 7.0, f"the window of {window} was not kept full"
    assert worker.stop() == 0


async def test_partitions_overlap_on_one_resource_and_each_stays_in_order(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    """One resource, four partitions, max.inflight=4, 30 ms per answer: the partitions' requests are on the
    wire together, while each partition has one request outstanding at a time, in offset order."""
    topic = f"{unique}-t"
    partitions, n, window = 4, 400, 4
    await broker.create_topic(topic, partitions=partitions)
    produced = await broker.produce(
        topic, [b'{"n":%d}' % i for i in range(n)], partitions=[i % partitions for i in range(n)]
    )
    recorder.set_delay(0.03)
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": f"INSERT INTO r {SELECT} FROM {topic}",
            "connect.coap.max.inflight": str(window),
        }
    )
    wait_for_all(worker, recorder, n, timeout=180, what=f"all {n} records")
    wait_all_answered(worker, recorder)
    exchanges = recorder.exchanges
    by_partition: dict[int, list[Exchange]] = defaultdict(list)
    for e in exchanges:
        by_partition[coordinates(e.request)[0]].append(e)
    for partition, offsets in expected_offsets(produced).items():
        mine = by_partition[partition]
        assert_in_order([coordinates(e.request)[1] for e in mine], offsets, f"partition {partition}")
        twice = overlapping(mine)
        assert not twice, (
            f"partition {partition} had two requests outstanding at once {len(twice)} times, first: "
            f"offset {coordinates(twice[0][1].request)[1]} arrived before offset "
            f"{coordinates(twice[0][0].request)[1]} was answered"
        )
    span = max(e.answered or 0.0 for e in exchanges) - exchanges[0].arrived
    print(
        f"{partitions} partitions -> one resource, max.inflight={window}: at most {recorder.max_concurrent} "
        f"outstanding, {mean_concurrency(exchanges):.2f} on average; {n} records in {span:.1f} s"
    )
    assert 1 < recorder.max_concurrent <= window, recorder.max_concurrent
    assert worker.stop() == 0


async def test_retry_holds_only_the_failing_partition(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    """Partition 0 gets 5.03 until the test lets it recover; under RETRY the other three partitions are all
    delivered meanwhile (while partition 0 is retried every second), then partition 0 follows in order."""
    topic = f"{unique}-t"
    partitions, per_partition, window = 4, 300, 4
    n = partitions * per_partition
    await broker.create_topic(topic, partitions=partitions)
    produced = await broker.produce(
        topic, [b'{"n":%d}' % i for i in range(n)], partitions=[i % partitions for i in range(n)]
    )
    expected = expected_offsets(produced)
    # 10 ms per answer: each healthy partition needs >= 3 s, several retry intervals of partition 0.
    recorder.set_delay(0.01)
    recorder.set_response("r", Code.SERVICE_UNAVAILABLE, when=lambda payload: json.loads(payload)["p"] == 0)
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": f"INSERT INTO r {SELECT} FROM {topic}",
            "connect.coap.max.inflight": str(window),
            "connect.coap.error.policy": "RETRY",
            "connect.coap.retry.interval": "1000",
            "connect.coap.max.retries": "30",
        }
    )
    others = {(p, o) for p, o in produced if p != 0}
    distinct = Distinct(recorder)

    def others_delivered_and_partition_0_retried() -> bool:
        distinct.update()
        attempts = sum(1 for r in recorder.requests if coordinates(r)[0] == 0)
        return others <= distinct.seen and attempts >= 2

    try:
        worker.wait_until(
            others_delivered_and_partition_0_retried,
            what="partitions 1-3 delivered and partition 0 tried twice, while partition 0 fails",
        )
    except (TimeoutError, AssertionError) as exc:  # timed out, or the worker gave up and exited
        got = offsets_by_partition(recorder.requests)
        counts = {p: len(set(got.get(p, []))) for p in range(partitions)}
        raise AssertionError(
            f"distinct records per partition at the server {counts} of {per_partition} each "
            f"(partition 0 tried {len(got.get(0, []))} times); {exc}"
        ) from None
    held = recorder.requests
    recorder.clear_response("r")
    recovered_at = len(held)

    # While held, partition 0 never went past its first record; the others kept flowing around its retries.
    failing = offsets_by_partition(held).get(0, [])
    assert set(failing) == {expected[0][0]}, (
        f"partition 0 moved on while failing: {sorted(set(failing))[:10]}"
    )
    last_other = max(i for i, r in enumerate(held) if coordinates(r)[0] != 0)
    retried_before = sum(1 for r in held[: last_other + 1] if coordinates(r)[0] == 0)
    assert retried_before >= 2, (
        f"partition 0 was tried only {retried_before} times before the other partitions finished: they did "
        "not keep flowing while it waited to be retried"
    )
    assert worker.returncode is None

    wait_for_all(worker, recorder, n, timeout=120, what="partition 0 after the server recovered")
    seen = offsets_by_partition(recorder.requests)
    for partition in range(1, partitions):  # never failed: each record exactly once, in order
        assert_in_order(seen[partition], expected[partition], f"partition {partition}")
    assert_in_order(without_repeats(seen[0]), expected[0], "partition 0")
    after = offsets_by_partition(recorder.requests_from(recovered_at)).get(0, [])
    assert_in_order(without_repeats(after), expected[0], "partition 0 after the recovery")
    stats = worker.stats()
    retried = stats["statements"][0].get("retried") if stats else None
    print(
        f"RETRY one partition: partition 0 failed {len(failing)} times ({retried_before} before the other "
        f"{len(others)} records were all delivered); the worker's retried count {retried}"
    )
    assert worker.returncode is None
    assert worker.stop() == 0


async def test_ordering_none_overlaps_one_partitions_requests_to_one_resource(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    topic = f"{unique}-t"
    n, window = 400, 4
    await broker.create_topic(topic, partitions=1)
    produced = await broker.produce(topic, [b'{"n":%d}' % i for i in range(n)])
    recorder.set_delay(0.03)
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": f"INSERT INTO r {SELECT} FROM {topic}",
            "connect.coap.max.inflight": str(window),
            "connect.coap.ordering": "none",
        }
    )
    distinct = wait_for_all(worker, recorder, n, timeout=180, what=f"all {n} records")
    assert distinct.seen == set(produced)
    exchanges = recorder.exchanges
    print(
        f"ordering=none, one partition -> one resource, max.inflight={window}: at most "
        f"{recorder.max_concurrent} outstanding, {mean_concurrency(exchanges):.2f} on average"
    )
    assert 1 < recorder.max_concurrent <= window, recorder.max_concurrent
    assert worker.stop() == 0
