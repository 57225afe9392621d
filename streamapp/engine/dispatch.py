"""Dispatch, inside the delivery engine (``engine.py`` owns it): which request goes on the wire when, and
what happens to its records after.

docs/delivery-engine.md tells the whole design; in short:

- **Lanes.** Every request belongs to a lane: (statement, resource, partition). With ``ordering=partition``
  (the default) a lane has at most one request in flight and sends in offset order, so one partition's
  records reach one resource in order and a later PUT never overtakes an earlier one. With
  ``ordering=none`` a lane's requests go concurrently.
- **One window per server.** At most ``window`` (``connect.coap.max.inflight``) requests are in flight in
  the worker, whatever their statements, resources and partitions; a statement's ``max.inflight``
  property caps its own share. Ready lanes take turns (first ready, first sent), so a slow lane does not
  stop the others from using the window, and nothing waits for a chunk of records to finish.
- **Batches.** A ``BATCH = n`` lane sends up to n of its queued records as one JSON array. An idle lane
  whose first record arrives waits ``LINGER_S`` for more (as Kafka's producer lingers) unless n are queued.
- **Offsets.** Each record counts its outstanding requests; it is finished when all are delivered or let
  go by the policy, and acked in offset order per partition (``offsets.py``).
- **Replies.** A statement with a reply topic gets one reply record per response (``replies.py``),
  produced before the request is settled (so before its offsets can be committed); a reply that cannot be
  produced fails the request like a delivery would.
- **Failures** go to the error policy (``failures.py``). RETRY holds only the failed request's
  lane: it waits ``retry.interval`` and sends the same records again, while other lanes go on. NOOP and
  dead-lettering let the records go. THROW (or RETRY exhausted) stops dispatch: nothing new is sent, and
  ``on_stop`` tells the engine, which stops the worker.
- **Intake.** Records come prepared (by the engine, ``engine.py``), in partition order, through ``take``.
- **In flight.** One :class:`InFlight` tally counts the requests on the wire, in all, per server, per
  statement and per partition: every request is counted in and out in one place each.
- **Back-pressure.** At most ``max_pending`` records are inside the engine; the intake waits in ``room``.
- **Bounded replay.** A partition whose acked records have waited for a commit longer than a commit takes
  (``commit_overdue_s``: the commit interval and half of it again) sends nothing more until a commit lands
  (``committed``): while the broker takes no commits, what the engine delivers is what a restart would send
  again, so the pause bounds the replay after an outage to about one commit interval plus the window.
- **Stopping.** ``drain(grace)`` sends nothing new, gives the requests in flight the grace to finish, then
  abandons them (their records stay unacked: they are read again). ``land(partitions, grace)`` does the
  same for revoked partitions only, and ``forget`` drops what is left of them after the engine committed.

Nothing here calls out of the engine: the sender is a :class:`~streamapp.engine.interfaces.Sender`, the
acks go to the engine's :class:`~streamapp.engine.offsets.Acks`, and a stop is reported through the
``on_stop`` callback the engine passes in.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from typing import Any, TypeVar

from streamapp.coap.request_options import RequestOptions
from streamapp.engine.failures import Failures
from streamapp.engine.interfaces import Ack, Sender
from streamapp.engine.offsets import Acks, PartitionLog, Tracked
from streamapp.engine.pipeline import MAX_PAYLOAD, Prepared, Request, Route
from streamapp.engine.policy import Decision
from streamapp.engine.replies import Replies, ReplyError
from streamapp.engine.stats import RequestFigures, Stats
from streamapp.errors import DeliveryError, WorkerStopped
from streamapp.logs import get_logger
from streamapp.records import Answer, RawRecord, RecordCoordinates

log = get_logger(__name__)

#: How long an idle batching lane waits for its batch to fill before sending what it has.
LINGER_S = 0.05
#: Records the engine holds (queued or in flight) per request of the window, before the intake waits.
PENDING_PER_SLOT = 256
#: ... and at least this many, so that a small window still has records of many lanes ready.
MIN_PENDING = 2048
#: A commit normally lands within its interval plus this share of it (and at least COMMIT_SLACK_MIN_S more).
COMMIT_SLACK = 0.5
COMMIT_SLACK_MIN_S = 0.5
#: Records handed over to be acked reach the consumer this soon (the agent's acks task runs next).
ACK_LAG_S = 0.1


def commit_overdue_s(commit_interval_s: float) -> float:
    """How long an acked record may wait for its commit before its partition pauses."""
    return commit_interval_s + max(COMMIT_SLACK_MIN_S, COMMIT_SLACK * commit_interval_s)


_Key = TypeVar("_Key")


class InFlight:
    """The requests on the wire: in all, per server (each has its own window), per statement (its
    ``max.inflight``) and per partition (a revocation waits for its partitions' requests)."""

    __slots__ = ("by_partition", "by_server", "by_statement", "total")

    def __init__(self) -> None:
        self.total = 0
        self.by_server: dict[str | None, int] = {}
        self.by_statement: dict[int, int] = {}
        self.by_partition: dict[tuple[str, int], int] = {}

    def of_server(self, server: str | None) -> int:
        return self.by_server.get(server, 0)

    def of_statement(self, statement: int) -> int:
        return self.by_statement.get(statement, 0)

    def started(self, lane: Lane) -> None:
        self._add(lane, 1)

    def ended(self, lane: Lane) -> None:
        self._add(lane, -1)

    def _add(self, lane: Lane, step: int) -> None:
        self.total += step
        _count(self.by_server, lane.server, step)
        _count(self.by_statement, lane.statement, step)
        _count(self.by_partition, lane.partition, step)


def _count(counts: dict[_Key, int], key: _Key, step: int) -> None:
    """Add ``step`` to ``counts[key]``; a count back at 0 is dropped, so the maps hold only what flies."""
    left = counts.get(key, 0) + step
    if left:
        counts[key] = left
    else:
        del counts[key]


class Lane:
    """The queue of one (statement, server, resource, query, partition)."""

    __slots__ = (
        "busy",
        "key",
        "linger",
        "partition",
        "query",
        "queue",
        "ready",
        "retries",
        "route",
        "segments",
        "server",
        "statement",
    )

    def __init__(self, key: tuple[Any, ...], route: Route, request: Request, partition: int) -> None:
        self.key = key
        self.route = route
        self.statement = route.statement.index
        self.segments = request.segments
        #: The server its requests go to (None: the worker's) and their Uri-Query options.
        self.server = request.server
        self.query = request.query
        #: (topic, partition) of the records it carries.
        self.partition = (route.statement.source, partition)
        self.queue: deque[tuple[Tracked, Request]] = deque()
        self.retries: deque[Job] = deque()  # failed jobs whose retry interval is over: sent first
        self.busy = 0  # jobs in flight or waiting to be retried
        self.ready = False  # in the dispatcher's ready queue
        self.linger: asyncio.TimerHandle | None = None

    @property
    def ordered(self) -> bool:
        return self.route.options.ordered


class Job:
    """One request: the records it carries (several for a batch), its body and its attempts so far."""

    __slots__ = ("attempts", "figures", "items", "lane", "options", "payload")

    def __init__(
        self, lane: Lane, items: list[tuple[Tracked, Request]], payload: bytes, options: RequestOptions
    ) -> None:
        self.lane = lane
        self.items = items
        self.payload = payload
        self.options = options
        self.attempts = 0
        self.figures: RequestFigures | None = None

    @property
    def records(self) -> list[RawRecord]:
        return [tracked.raw for tracked, _ in self.items]


class Dispatcher:
    def __init__(
        self,
        sender: Sender,
        failures: Failures,
        stats: Stats,
        acks: Acks,
        *,
        window: int,
        max_payload: int = MAX_PAYLOAD,
        max_pending: int | None = None,
        on_stop: Callable[[WorkerStopped], None] | None = None,
        commit_interval_s: float | None = None,
        replies: Replies | None = None,
    ) -> None:
        """``on_stop``: told once when the error policy stops dispatch; ``commit_interval_s``: how often
        offsets are committed; a partition whose records wait for a commit much longer pauses (module doc,
        "Bounded replay"). None: never paused."""
        self._sender = sender
        self._replies = replies
        self._failures = failures
        self._stats = stats
        self._acks = acks
        self.window = window
        self._max_payload = max_payload
        self.max_pending = max_pending or max(MIN_PENDING, PENDING_PER_SLOT * window)
        self._on_stop = on_stop
        self._lanes: dict[tuple[Any, ...], Lane] = {}
        self._ready: deque[Lane] = deque()
        self._waiting: dict[int, deque[Lane]] = {}  # statement -> lanes held back by its max.inflight
        #: The window is per server (each has its own endpoints): server -> lanes held back by it.
        self._waiting_for_server: dict[str | None, deque[Lane]] = {}
        self.in_flight = InFlight()
        #: Whether lanes went to more than one server (each has its own window): until they do, a full
        #: window means nothing can start.
        self._servers_seen: dict[str | None, bool] = {}
        self._many_servers = False
        self.pending = 0
        self._room: asyncio.Future[None] | None = None
        #: Failures being handled by the policy (a task each), and the requests on the wire.
        self._tasks: set[asyncio.Task[None]] = set()
        self._flying: set[asyncio.Future[Answer]] = set()
        #: (condition, future) of those waiting for requests to land: a drain, a revocation.
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self.stopped: WorkerStopped | None = None
        self._stopped_at: RecordCoordinates | None = None
        self.closing = False
        self._drained: asyncio.Task[None] | None = None
        self._partitions: dict[tuple[str, int], PartitionLog] = {}
        #: Partitions being revoked: nothing more of them is sent (see ``land``).
        self._revoking: set[tuple[str, int]] = set()
        #: Requests that failed and are to be, or are being, sent again under RETRY (``retrying``).
        self._retrying: dict[int, Job] = {}
        #: Partitions paused until a commit lands, and their lanes held back meanwhile.
        self.commit_overdue_s = None if commit_interval_s is None else commit_overdue_s(commit_interval_s)
        self._paused: dict[tuple[str, int], float] = {}  # partition -> when it paused
        self._held: dict[tuple[str, int], deque[Lane]] = {}
        self._commit_check: asyncio.TimerHandle | None = None

    # --- intake ----------------------------------------------------------------------------------------

    def partition_log(self, topic: str, partition: int, ack: Ack) -> PartitionLog:
        key = (topic, partition)
        log_ = self._partitions.get(key)
        if log_ is None:
            log_ = self._partitions[key] = PartitionLog(self._acks, ack)
        else:
            log_.ack = ack
        return log_

    async def room(self) -> None:
        """Wait while the engine holds ``max_pending`` records (or until it halts)."""
        while self.pending >= self.max_pending and not self.halted:
            self._room = self._room or asyncio.get_running_loop().create_future()
            await asyncio.shield(self._room)

    def take(
        self,
        raw: RawRecord,
        outcome: Prepared | WorkerStopped | None,
        token: Any,
        ack: Ack,
    ) -> None:
        """Take one record (in its partition's offset order) as the engine prepared it: queue its
        requests; a record with none (tombstones skipped, or let go by the policy) is finished at once; a
        stop stops dispatch. A record given while halted is not taken (it is read again)."""
        if isinstance(outcome, WorkerStopped):
            self._stop(outcome, raw.where)
            return
        if outcome is None or self.halted:
            return
        if self._commit_check is None and self.commit_overdue_s is not None:
            self._check_commits()
        tracked = self.partition_log(raw.topic, raw.partition, ack).track(raw, token)
        outstanding = 0
        for route, request in zip(outcome.routes, outcome.requests, strict=True):
            if request is not None:
                outstanding += 1
                self._enqueue(route, request, tracked)
        tracked.outstanding = outstanding
        if outstanding == 0:
            tracked.partition_log.advance()
        else:
            self.pending += 1
            self._pump()

    def _enqueue(self, route: Route, request: Request, tracked: Tracked) -> None:
        key = (route.statement.index, request.server, request.segments, request.query, tracked.raw.partition)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane(key, route, request, tracked.raw.partition)
            if not self._many_servers:
                self._many_servers = self._servers_seen.setdefault(request.server, True) and (
                    len(self._servers_seen) > 1
                )
        lane.queue.append((tracked, request))
        batch = route.statement.batch
        if batch is not None and batch > 1:
            if len(lane.queue) == 1 and not lane.busy:
                lane.linger = asyncio.get_running_loop().call_later(LINGER_S, self._linger_over, lane)
                return
            if lane.linger is not None and len(lane.queue) >= batch:
                lane.linger.cancel()
                lane.linger = None
        self._schedule(lane)

    def _linger_over(self, lane: Lane) -> None:
        lane.linger = None
        self._schedule(lane)
        self._pump()

    # --- scheduling ------------------------------------------------------------------------------------

    @property
    def halted(self) -> bool:
        """Stopped by the policy, or draining: nothing new is taken or sent."""
        return self.stopped is not None or self.closing

    def _schedule(self, lane: Lane) -> None:
        """Put the lane in the ready queue if it has something to send and may send it now."""
        if lane.ready or lane.linger is not None or self._lanes.get(lane.key) is not lane:
            return  # already queued, lingering, or forgotten (its partition was revoked)
        if not (lane.retries or lane.queue):
            return
        if lane.ordered and lane.busy:
            return
        lane.ready = True
        self._ready.append(lane)

    def _pump(self) -> None:
        """Start requests while the window has room and lanes are ready."""
        ready = self._ready
        while ready and not self.closing:
            in_flight = self.in_flight
            if in_flight.total >= self.window and not self._many_servers:
                break  # one server and its window is full: nothing can start (the common case, cheap)
            lane = ready.popleft()
            lane.ready = False
            if self.stopped is not None and not self._precedes_stop(self._head(lane)):
                continue  # stopping: only what precedes the failed record in its partition is still sent
            if lane.partition in self._revoking:
                continue  # its partition is being revoked: the new owner sends it
            if lane.partition in self._paused:
                lane.ready = True
                self._held.setdefault(lane.partition, deque()).append(lane)
                continue
            if in_flight.of_server(lane.server) >= self.window:
                lane.ready = True
                self._waiting_for_server.setdefault(lane.server, deque()).append(lane)
                continue
            if in_flight.of_statement(lane.statement) >= lane.route.options.max_inflight:
                lane.ready = True
                self._waiting.setdefault(lane.statement, deque()).append(lane)
                continue
            job = lane.retries.popleft() if lane.retries else self._form_job(lane)
            if job is None:
                continue
            lane.busy += 1
            in_flight.started(lane)
            self._start(job)
            if not lane.ordered:
                self._schedule(lane)

    def _form_job(self, lane: Lane) -> Job | None:
        queue = lane.queue
        if not queue:
            return None
        first = queue.popleft()
        request = first[1]
        route = lane.route
        batch = route.statement.batch
        if batch is None or not request.batchable:
            options = route.delete_options if request.delete else route.options
            return Job(lane, [first], request.payload, options)
        items = [first]
        size = len(request.payload) + 2
        limit = self._max_payload
        while queue and len(items) < batch:
            following = queue[0][1]
            if not following.batchable:
                break  # a batch holds JSON bodies only
            if self.stopped is not None and not self._precedes_stop(queue[0][0]):
                break
            size += len(following.payload) + 1
            if size > limit:
                break
            items.append(queue.popleft())
        payload = b"[" + b",".join(r.payload for _, r in items) + b"]"
        return Job(lane, items, payload, route.options)

    # --- one request -----------------------------------------------------------------------------------

    def _start(self, job: Job) -> None:
        """Put ``job``'s request on the wire: no task of its own, its future's callback goes on."""
        lane = job.lane
        job.figures = self._stats.request(lane.statement, lane.server, len(job.items))
        future = self._sender.submit(
            lane.segments,
            job.payload,
            job.items[0][0].raw.where,
            job.options,
            server=lane.server,
            query=lane.query,
        )
        self._flying.add(future)
        future.add_done_callback(partial(self._landed, job))

    def _landed(self, job: Job, future: asyncio.Future[Answer]) -> None:
        """The request's answer (or its end): a delivery is settled here at once; a failure goes to the
        error policy in a task (it may write a dead letter, and RETRY waits out its interval)."""
        self._flying.discard(future)
        lane = job.lane
        figures = job.figures
        assert figures is not None
        figures.ended()
        if future.cancelled():  # abandoned by the drain: its records stay unacked (read again)
            self._release(lane)
            self._check_waiters()
            return
        error = future.exception()
        if error is None:
            figures.delivered()
            if self._replies is not None and job.options.reply_topic is not None:
                self._in_task(self._reply(job, future.result(), None))
                return
            self._settled(job)
            return
        figures.failed(error)
        if (
            self._replies is not None
            and isinstance(error, DeliveryError)
            and error.answer is not None
            and job.options.reply_topic is not None
        ):
            self._in_task(self._reply(job, error.answer, error))
            return
        self._in_task(self._after_failure(job, error))

    def _in_task(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _settled(self, job: Job) -> None:
        """``job``'s request was delivered (and its reply produced): its records may be acked."""
        lane = job.lane
        self._retrying.pop(id(job), None)
        self._resolve(job)
        self._release(lane)
        self._next(lane)

    async def _reply(self, job: Job, answer: Answer, error: BaseException | None) -> None:
        """Produce the reply to ``answer`` (if ``reply.on`` wants it), then settle the request: delivered,
        or the policy's for ``error``. A reply that cannot be produced is the request's failure."""
        lane = job.lane
        topic = job.options.replies_to(error is None)
        if topic is not None:
            assert self._replies is not None
            uri = self._sender.resource_uri(lane.segments, lane.server, lane.query)
            try:
                await self._replies.send(topic, job.records, answer, uri, lane.statement)
            except ReplyError as exc:
                assert job.figures is not None
                if error is None:
                    job.figures.failed(exc)
                await self._after_failure(job, exc)
                return
            except asyncio.CancelledError:  # the drain abandoned it: the records stay unacked
                self._release(lane)
                self._check_waiters()
                raise
            self._stats.replied(lane.statement)
        if error is None:
            self._settled(job)
        else:
            await self._after_failure(job, error)

    async def _after_failure(self, job: Job, error: BaseException) -> None:
        lane = job.lane
        retry = False
        try:
            if isinstance(error, Exception):
                retry = await self._failed(job, error)
            else:
                raise error
        finally:
            self._release(lane)
            # No pump follows now when cancelled or a retry first waits out its interval.
            self._check_waiters()
        if retry:
            self._retrying[id(job)] = job
            try:
                await self._failures.wait_to_retry()
            finally:
                lane.retries.append(job)
        self._next(lane)

    def _next(self, lane: Lane) -> None:
        """A request of ``lane`` is settled: the lane may send again, the window has room."""
        lane.busy -= 1
        self._schedule(lane)
        self._pump()
        # Only now: a lane scheduled just above may have started a request that a waiter must see.
        self._check_waiters()

    async def _failed(self, job: Job, error: Exception) -> bool:
        """Apply the policy to a failed request; True when it is to be sent again after the interval."""
        statement = job.lane.statement
        records = job.records
        where = records[0].where
        try:
            decision = await self._failures.handle(error, records, statement, job.attempts)
        except Exception as exc:  # the dead-letter topic could not be written: the records stay unacked
            self._stop(WorkerStopped(f"could not apply the error policy to {where}: {exc}"), where)
            return False
        if isinstance(decision, WorkerStopped):
            self._stop(decision, where)
            job.lane.busy += 1  # the lane stays held: nothing after the record is sent
            return False
        if decision is Decision.RETRY:
            job.attempts += 1
            return True
        self._resolve(job)
        return False

    def _resolve(self, job: Job) -> None:
        for tracked, _ in job.items:
            if tracked.resolve():
                self.pending -= 1
        if self._room is not None and self.pending < self.max_pending:
            room, self._room = self._room, None
            room.set_result(None)
        lane = job.lane
        if (
            not (lane.queue or lane.retries or lane.busy > 1 or lane.linger)
            and self._lanes.get(lane.key) is lane
        ):
            del self._lanes[lane.key]  # idle lanes are not kept: resources can be countless

    @staticmethod
    def _head(lane: Lane) -> Tracked:
        return lane.retries[0].items[0][0] if lane.retries else lane.queue[0][0]

    def _precedes_stop(self, tracked: Tracked) -> bool:
        at = self._stopped_at
        raw = tracked.raw
        return (
            at is not None
            and (raw.topic, raw.partition) == (at.topic, at.partition)
            and raw.offset < at.offset
        )

    def _check_waiters(self) -> None:
        """Wake whoever waits for requests to land (``_wait_for``) once their condition holds."""
        for condition, waiter in self._waiters:
            if not waiter.done() and condition():
                waiter.set_result(None)

    async def _wait_for(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``condition`` (about the requests in flight) holds; False if ``timeout_s`` ran out."""
        if condition():
            return True
        entry = (condition, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(entry[1]), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(entry)

    def _release(self, lane: Lane) -> None:
        """A request of ``lane`` is off the wire: its slot of the window goes to a lane held back for it."""
        self.in_flight.ended(lane)
        for waiting in (self._waiting.get(lane.statement), self._waiting_for_server.get(lane.server)):
            if waiting:
                held = waiting.popleft()
                held.ready = True
                self._ready.appendleft(held)

    # --- commits ---------------------------------------------------------------------------------------

    def committed(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """A commit landed: ``(topic, partition) -> next offset``; a paused partition it caught up goes on."""
        for key, offset in offsets.items():
            partition_log = self._partitions.get(key)
            if partition_log is not None:
                partition_log.committed(offset)
        self._resume_caught_up()

    def commit_round_over(self, started_at: float) -> None:
        """A commit round that began at ``started_at`` ended (after ``committed``). What was acked before it
        began and is still not committed was not the consumer's to commit (already committed, say): it
        waits for nothing, so it pauses nothing (``ACK_LAG_S`` leaves the acks task its moment)."""
        for partition_log in self._partitions.values():
            partition_log.forget_acked_before(started_at - ACK_LAG_S)
        self._resume_caught_up()

    def _resume_caught_up(self) -> None:
        overdue = self.commit_overdue_s
        if not self._paused or overdue is None:
            return
        now = time.monotonic()
        resumed = []
        for key, paused_at in list(self._paused.items()):
            partition_log = self._partitions.get(key)
            if partition_log is not None and partition_log.waiting_s(now) > overdue:
                continue
            del self._paused[key]
            self._stats.commit_landed(key)
            resumed.append((key, now - paused_at))
            held = self._held.pop(key, None)
            if held:
                self._ready.extend(held)
        if resumed:
            log.info(
                "engine.commit_landed",
                partitions=sorted(f"{t}/{p}" for (t, p), _ in resumed),
                paused_s=round(max(s for _, s in resumed), 1),
            )
            self._pump()

    def _check_commits(self) -> None:
        """Pause the partitions whose acked records wait too long for a commit (every quarter of that)."""
        overdue = self.commit_overdue_s
        assert overdue is not None
        now = time.monotonic()
        paused = []
        for key, partition_log in self._partitions.items():
            if key in self._paused:
                continue
            waited = partition_log.waiting_s(now)
            if waited > overdue:
                self._paused[key] = now
                self._stats.commit_overdue(key)
                paused.append((key, waited))
        if paused:
            log.warning(
                "engine.waiting_for_commit",
                partitions=sorted(f"{t}/{p}" for (t, p), _ in paused),
                waited_s=round(max(w for _, w in paused), 1),
                why="records delivered longer ago than a commit takes are not committed (is the broker "
                "reachable?); these partitions send nothing more until a commit lands, so that a restart "
                "sends again no more than one commit interval of records",
            )
        if not self.closing:
            self._commit_check = asyncio.get_running_loop().call_later(
                max(0.1, overdue / 4), self._check_commits
            )

    # --- rebalancing -----------------------------------------------------------------------------------

    async def land(self, partitions: set[tuple[str, int]], grace_s: float) -> None:
        """These partitions go to another worker: send nothing more of them and give their requests in
        flight ``grace_s`` to land (what they deliver is acked before the engine commits; ``forget`` then
        drops the rest). Kafka's new owner reads from the last commit: nothing is lost, and only what was in
        flight and abandoned is sent twice."""
        self._revoking = set(partitions)
        self._wake_submitters()
        by_partition = self.in_flight.by_partition
        landed = await self._wait_for(lambda: not any(p in by_partition for p in self._revoking), grace_s)
        if not landed:
            log.warning(
                "engine.revoked_in_flight",
                partitions=sorted(f"{t}/{p}" for t, p in partitions),
                grace_s=grace_s,
                why="requests of revoked partitions still unanswered; their records are read again "
                "by the partitions' new owner",
            )

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """After the commit of a revocation: drop what is left of these partitions."""
        for key in partitions:
            partition_log = self._partitions.pop(key, None)
            if partition_log is not None:
                self.pending -= partition_log.drop()
        for key, lane in list(self._lanes.items()):
            if lane.partition in partitions:
                if lane.linger is not None:
                    lane.linger.cancel()
                del self._lanes[key]
        self._ready = deque(lane for lane in self._ready if lane.partition not in partitions)
        for waiting in (*self._waiting.values(), *self._waiting_for_server.values()):
            kept = [lane for lane in waiting if lane.partition not in partitions]
            waiting.clear()
            waiting.extend(kept)
        self._revoking = set()
        self._retrying = {k: job for k, job in self._retrying.items() if job.lane.partition not in partitions}
        for key in partitions:
            self._held.pop(key, None)
            if self._paused.pop(key, None) is not None:
                self._stats.commit_landed(key)
        if self._room is not None and self.pending < self.max_pending:
            self._wake_submitters()
        self._pump()

    def retrying(self) -> list[tuple[RecordCoordinates, int]]:
        """(first record, resends so far) of each request held by RETRY: its partition waits for it."""
        return [(job.items[0][0].raw.where, job.attempts) for job in self._retrying.values()]

    # --- stopping --------------------------------------------------------------------------------------

    def _stop(self, reason: WorkerStopped, where: RecordCoordinates) -> None:
        """The policy stops the worker at ``where``: from now on only requests of records that precede it
        in its partition are sent (they were read before it and are delivered before the stop commits)."""
        if self.stopped is not None:
            return
        self.stopped = reason
        self._stopped_at = where
        self._wake_submitters()
        for lane in self._lanes.values():
            if lane.linger is not None:
                lane.linger.cancel()
                lane.linger = None
                self._schedule(lane)
        self._pump()
        if self._on_stop is not None:
            self._on_stop(reason)

    def _wake_submitters(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)
        self._room = None

    async def drain(self, grace_s: float) -> None:
        """Send nothing new; wait up to ``grace_s`` for the requests in flight, then abandon them.

        Shared by every caller (each stopping agent): the grace runs once, from the first call.
        """
        if self._drained is None:
            self._drained = asyncio.ensure_future(self._drain(grace_s))
        await asyncio.shield(self._drained)

    async def _drain(self, grace_s: float) -> None:
        if self.stopped is None:
            self.closing = True  # stopping without a failure (SIGTERM): nothing new is sent
        if self._commit_check is not None:
            self._commit_check.cancel()
        self._wake_submitters()
        for lane in self._lanes.values():
            if lane.linger is not None:
                lane.linger.cancel()
        if not await self._wait_for(lambda: self.in_flight.total == 0, grace_s):
            log.warning(
                "engine.abandoned",
                requests=self.in_flight.total,
                grace_s=grace_s,
                why="still unanswered when the stop grace ran out; their records are not committed "
                "and are read again",
            )
        self.closing = True
        current = asyncio.current_task()
        for future in list(self._flying):
            future.cancel()  # abandoned: no more retransmissions, a late answer is unmatched
        tasks = [t for t in self._tasks if t is not current and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
