"""End to end: Kafka backlog -> worker -> CoAP server, against a stream-reactor-style loop, same run.

``python -m bench.bench_pipeline [--cases a,b] [--quick] [--repeats R] [--results PATH] [record counts]``

Every run of an implementation gets a fresh topic on one Apache Kafka broker (``kafka_broker.py``), filled
with its whole backlog before anything consumes it, a fresh consumer group, and a fresh
``bench.coap_responder`` (its own process, so its CPU is not the client's) that answers every request with
2.04 after the case's delay. Throughput is measured at the responder: unique deliveries / (last unique
delivery - first unique delivery), so start-up (the consumer group's join) is not in the figure.

- baseline ``loop``: what the Kafka Connect sink did, in this process: a plain aiokafka consumer, and per
  record one confirmable aiocoap PUT, awaited before the next;
- baseline ``stream_reactor``: the connector itself, stream-reactor's CoAP sink 1.2.0 in Kafka Connect 4.4
  standalone (``streamapp_harness/connect.py``, Connect's defaults), in the one-resource cases (its KCQL
  cannot spread records over resources). Its jar is the one built from its vendored 1.2.0 source
  (``streamapp_harness/stream_reactor_jar.py``, once; Maven Central does not serve it), or an operator's
  own (``$STREAMAPP_STREAM_REACTOR_COAP_JAR``); where neither can be had (no JDK) the line says why it is
  left out;
- ``default``: ``faust -A streamapp.main worker`` (tests/worker.py) with ``connect.coap.max.inflight`` unset;
- ``tuned``: the same with ``connect.coap.max.inflight=N``;
- case ``two_workers`` compares two tuned workers in one consumer group with one tuned worker;
- case ``dtls_psk`` compares a tuned worker over ``coaps://`` (PSK, TLS_PSK_WITH_AES_128_CCM_8) with the same
  worker over ``coap://``, both to one libcoap ``coap-server-openssl`` (plain on P, DTLS on P+1: the responder
  speaks no DTLS). libcoap counts nothing, so this case counts at the worker (its ``/coap/stats.json``,
  polled every 50 ms): the rate is the records delivered between the first poll that saw a delivery and the
  poll that saw the last, scaled to the whole backlog.

A target missed is reported (and recorded as ``passed: false``), not a failure: the exit status is 1 only
when a run did not deliver every record exactly once (unique deliveries and distinct bodies == records), or
did not finish.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap.numbers.codes import Code
from aiokafka import AIOKafkaConsumer

from bench.harness import RESULTS, ROOT, Comparison, Timing, append_result, run_entry
from streamapp_harness.connect import KafkaConnectStandalone, connector_jar
from streamapp_harness.jvm import JvmError
from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.libcoap import LibcoapServer
from streamapp_harness.process import PeerError, wait_until
from streamapp_harness.worker import WorkerProcess

BENCHMARK = "pipeline"
LOCALHOST = "127.0.0.1"
#: How long a run may take to its first delivery (Faust joins its group in ~30 s; more on a loaded machine).
JOIN_TIMEOUT_S = 180.0
#: A run fails when the responder sees no new delivery for this long after the first one.
STALL_TIMEOUT_S = 60.0
POLL_S = 0.05
#: The pre-shared key of case dtls_psk (identity "bench").
DTLS_PSK = "bench-psk-0123456789"


# --- cases --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Impl:
    """One implementation of a case: the stream-reactor-style loop, or ``workers`` worker processes."""

    name: str
    records: int
    workers: int = 0  # 0: the in-process loop (or the connector)
    max_inflight: int | None = None  # None: connect.coap.max.inflight not set
    connector: bool = False  # stream-reactor's sink in Kafka Connect
    dtls: bool = False  # coaps:// with a PSK (case dtls_psk)

    @property
    def label(self) -> str:
        if self.connector:
            return f"{self.name} (stream-reactor 1.2.0 in Kafka Connect, one PUT at a time)"
        if not self.workers:
            return f"{self.name} (aiokafka + aiocoap, one PUT at a time)"
        inflight = "unset" if self.max_inflight is None else str(self.max_inflight)
        count = f"{self.workers} workers, " if self.workers > 1 else ""
        scheme = "coaps:// PSK, " if self.dtls else ""
        return f"{self.name} ({scheme}{count}max.inflight={inflight})"


@dataclass(frozen=True)
class Target:
    """What ``candidate`` should reach: ``ratio`` x the baseline's rate and, if set, ``min_rate``/s."""

    candidate: str
    ratio: float
    min_rate: float | None = None
    #: What ``candidate`` should reach against stream-reactor in Kafka Connect, where that runs.
    connector_ratio: float | None = None

    def describe(self) -> str:
        text = f">= {self.ratio:g}x"
        return text + (f" and >= {self.min_rate:,.0f}/s" if self.min_rate is not None else "")


@dataclass(frozen=True)
class Case:
    name: str
    delay_ms: float
    resources: int
    partitions: int
    baseline: Impl
    candidates: tuple[Impl, ...]
    target: Target
    #: stream-reactor's sink in Kafka Connect, the second baseline (None: not in this case, or no jar).
    connector: Impl | None = None
    #: True: a libcoap coap-server-openssl serves the case and the workers' own counters are read.
    libcoap: bool = False

    @property
    def implementations(self) -> tuple[Impl, ...]:
        return (self.baseline, *((self.connector,) if self.connector else ()), *self.candidates)

    def describe(self) -> str:
        plural = "s" if self.resources > 1 else ""
        return (
            f"delay {self.delay_ms:g} ms, {self.resources} resource{plural}, {self.partitions} partitions, "
            + ", ".join(f"{impl.name} {impl.records:,}" for impl in self.implementations)
            + " records"
        )


@functools.cache
def connector_missing() -> str | None:
    """Why stream-reactor's sink cannot run here (its jar could not be built, the one named is missing),
    or None. The first call builds the jar if the cache lacks it (``make jars`` has usually done so)."""
    try:
        connector_jar()
    except (JvmError, PeerError) as exc:
        return str(exc)
    return None


CASE_NAMES = ("loopback", "rtt20_one_resource", "rtt20_64_resources", "two_workers", "dtls_psk")


def build_cases(args: argparse.Namespace) -> dict[str, Case]:
    scale = 10 if args.quick else 1

    def n(records: int) -> int:
        return max(2, records // scale)

    loopback, rtt20 = n(args.loopback_records), n(args.rtt20_records)
    with_connector = connector_missing() is None
    many, many_slow, two = (
        n(args.rtt20_64_records),
        n(args.rtt20_64_baseline_records),
        n(args.two_workers_records),
    )
    return {
        "loopback": Case(
            "loopback",
            delay_ms=0,
            resources=1,
            partitions=4,
            baseline=Impl("loop", loopback),
            candidates=(Impl("default", loopback, workers=1), Impl("tuned", loopback, 1, max_inflight=16)),
            target=Target("tuned", 3.5, min_rate=5000, connector_ratio=2.0),
            connector=Impl("stream_reactor", loopback, connector=True) if with_connector else None,
        ),
        "rtt20_one_resource": Case(
            "rtt20_one_resource",
            delay_ms=20,
            resources=1,
            partitions=4,
            baseline=Impl("loop", rtt20),
            candidates=(Impl("default", rtt20, workers=1), Impl("tuned", rtt20, 1, max_inflight=4)),
            target=Target("tuned", 3.5, connector_ratio=3.5),
            connector=Impl("stream_reactor", rtt20, connector=True) if with_connector else None,
        ),
        # The loop and the default worker do ~46 records/s here: fewer records give the same rate sooner.
        "rtt20_64_resources": Case(
            "rtt20_64_resources",
            delay_ms=20,
            resources=64,
            partitions=4,
            baseline=Impl("loop", many_slow),
            candidates=(Impl("default", many_slow, workers=1), Impl("tuned", many, 1, max_inflight=64)),
            target=Target("tuned", 50),
        ),
        "two_workers": Case(
            "two_workers",
            delay_ms=0,
            resources=1,
            partitions=8,
            baseline=Impl("one_worker", two, workers=1, max_inflight=16),
            candidates=(Impl("two_workers", two, workers=2, max_inflight=16),),
            target=Target("two_workers", 1.8),
        ),
        "dtls_psk": Case(
            "dtls_psk",
            delay_ms=0,
            resources=1,
            partitions=4,
            baseline=Impl("coap", loopback, 1, max_inflight=16),
            candidates=(Impl("coaps_psk", loopback, 1, max_inflight=16, dtls=True),),
            target=Target("coaps_psk", 0.85),
            libcoap=True,
        ),
    }


def make_records(count: int, resources: int, partitions: int) -> tuple[list[bytes], list[int]]:
    """JSON values with ``id`` (the resource, ``r/{id}``) and a unique ``seq``; record i goes to partition
    i % partitions, so with 64 resources over 4 partitions each resource lives in one partition."""
    values, parts = [], []
    for seq in range(count):
        doc = {"id": seq % resources, "seq": seq, "temp": 20 + (seq % 100) / 10, "device": f"dev-{seq % 997}"}
        values.append(json.dumps(doc, separators=(",", ":")).encode())
        parts.append(seq % partitions)
    return values, parts


# --- the responder process ----------------------------------------------------------------------------------


class RunFailed(Exception):
    """A run did not finish: something died or stalled. The message says what, and where the logs are."""


class Responder:
    """``python -m bench.coap_responder`` as a subprocess in its own process group; :meth:`stats` asks it."""

    def __init__(self, delay_ms: float, workdir: Path, label: str) -> None:
        self.delay_ms = delay_ms
        self.port_file = workdir / f"{label}.port"
        self.log_path = workdir / f"{label}.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"coap://{LOCALHOST}:{self.port}"

    def start(self) -> Responder:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.coap_responder",
                    "--port-file",
                    str(self.port_file),
                    "--delay-ms",
                    str(self.delay_ms),
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def bound() -> bool:
            self.check_alive()
            return self.port_file.exists()

        wait_until(bound, timeout=20, what=f"the responder to bind (log {self.log_path})")
        self.port = int(self.port_file.read_text(encoding="ascii"))
        wait_until(lambda: self.stats() is not None, timeout=10, what="the responder to answer STATS")
        return self

    def check_alive(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            code = None if self._proc is None else self._proc.returncode
            raise RunFailed(f"the CoAP responder exited ({code}); log {self.log_path}")

    def stats(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """The responder's counters, or None if it did not answer within ``timeout``.

        A fresh socket per query, so a late answer to an earlier query is never taken for this one."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.sendto(b"STATS", (LOCALHOST, self.port))
                data = sock.recv(65535)
            except OSError:  # TimeoutError included; also ECONNREFUSED from an ICMP unreachable
                return None
        return json.loads(data)

    def final_stats(self) -> dict[str, Any]:
        for _ in range(5):
            stats = self.stats()
            if stats is not None:
                return stats
            self.check_alive()
        raise RunFailed(f"the CoAP responder stopped answering STATS; log {self.log_path}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


class WorkerCount:
    """The workers' own delivered counters as the responder's ``stats()`` (case ``dtls_psk``: libcoap's
    server counts nothing). ``span_ns`` is the time between the first poll that saw a delivery and the poll
    that saw the last, scaled from the records delivered in between to the whole backlog."""

    def __init__(self, workers: Sequence[WorkerProcess], records: int) -> None:
        self._workers, self._records = workers, records
        self._first: tuple[int, int] | None = None  # (count, monotonic_ns) at the first poll that saw one

    def check_alive(self) -> None:
        """The workers are checked by the caller's ``check``."""

    def stats(self, timeout: float = 1.0) -> dict[str, Any] | None:
        now = time.monotonic_ns()
        counts = [worker.stats() for worker in self._workers]
        if any(c is None for c in counts):
            return None
        count = sum(s["delivered"] for c in counts if c is not None for s in c["statements"])
        if count and self._first is None:
            self._first = (count, now)
        span = 0
        if self._first is not None and count >= self._records > self._first[0]:
            span = round((now - self._first[1]) * self._records / (count - self._first[0]))
        return {"deliveries": count, "span_ns": span, "counted_by": "worker"}


def await_deliveries(
    responder: Responder | WorkerCount,
    expected: int,
    check: Callable[[], None],
    *,
    join_timeout: float,
    stall_timeout: float,
    on_first: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Poll the responder until it counted ``expected`` unique deliveries; return its stats.

    Deadlines: ``join_timeout`` for the first delivery, then ``stall_timeout`` without a new one. ``check``
    raises if a client process died meanwhile; ``on_first`` is told the count once deliveries began.
    """
    started = time.monotonic()
    last_count, last_change = 0, started
    while True:
        check()
        responder.check_alive()
        stats = responder.stats()
        now = time.monotonic()
        if stats is not None:
            count = stats["deliveries"]
            if count and not last_count and on_first is not None:
                on_first(count)
            if count >= expected:
                return stats
            if count != last_count:
                last_count, last_change = count, now
        limit = join_timeout if last_count == 0 else stall_timeout
        if now - last_change > limit:
            raise RunFailed(
                f"{last_count:,} of {expected:,} records delivered, none new for {now - last_change:.0f} s"
            )
        time.sleep(POLL_S)


# --- the implementations ------------------------------------------------------------------------------------


async def stream_reactor_loop(
    bootstrap: str,
    topic: str,
    group: str,
    uri: str,
    records: int,
    *,
    join_timeout: float,
    stall_timeout: float,
) -> None:
    """The Kafka Connect sink's way: poll a batch, then for each record decode it, render its resource and
    PUT it (confirmable), awaiting the response before the next. The client is aiocoap's as documented:
    ``context.request(Message(code=PUT, uri=...))``."""
    context = await aiocoap.Context.create_client_context(transports=["udp6"])
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    try:
        await consumer.start()
        done = 0
        last_progress = time.monotonic()
        while done < records:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for message in messages:
                    doc = json.loads(message.value)
                    request = aiocoap.Message(
                        code=Code.PUT,
                        payload=json.dumps(doc, separators=(",", ":")).encode(),
                        content_format=50,
                        uri=f"{uri}/r/{doc['id']}",
                    )
                    response = await asyncio.wait_for(context.request(request).response, stall_timeout)
                    if not response.code.is_successful():
                        raise RunFailed(f"the responder answered {response.code} to record {doc['seq']}")
                    done += 1
            now = time.monotonic()
            if batch:
                last_progress = now
            elif now - last_progress > (join_timeout if done == 0 else stall_timeout):
                raise RunFailed(f"the loop consumed {done:,} of {records:,} records, then nothing")
    finally:
        await consumer.stop()
        await context.shutdown()


@dataclass
class RunResult:
    """One implementation, one repeat: the responder's final stats and what went wrong, if anything."""

    impl: Impl
    records: int
    stats: dict[str, Any] | None = None
    worker_exits: list[int | None] = field(default_factory=list)
    error: str | None = None
    logs: list[str] = field(default_factory=list)
    #: Per worker, the UDP ports its sockets held just before the stop (to split the responder's figures).
    worker_ports: list[set[int]] = field(default_factory=list)
    #: The workers' CPU (user + system, every thread, from /proc) per record delivered while it was measured:
    #: from the first delivery to the last, so start-up and the group join are not in it.
    cpu_us_per_record: float | None = None
    #: Where time went, by library (py-spy, with ``--profile``): share of the samples.
    profile: dict[str, float] | None = None

    @property
    def span_ns(self) -> int | None:
        return None if self.stats is None else self.stats["span_ns"]

    @property
    def delivery_problem(self) -> str | None:
        """Why the deliveries are wrong, or None when every record arrived once (unique deliveries and
        distinct bodies both equal to the records produced)."""
        if self.error is not None:
            return self.error
        assert self.stats is not None
        if self.stats.get("counted_by") == "worker":  # no server figures: the count, and a span
            if self.stats["deliveries"] != self.records:
                counted = self.stats["deliveries"]
                return f"the worker counted {counted:,} deliveries of {self.records:,} records"
            return None if self.stats["span_ns"] else "too few records to measure"
        unique, bodies = self.stats["deliveries"], self.stats["distinct_payloads"]
        if unique != self.records or bodies != self.records:
            return (
                f"{unique:,} unique deliveries, {bodies:,} distinct bodies, {self.records:,} records produced"
            )
        if not self.span_ns:
            return "no time between the first and the last delivery: too few records to measure"
        return None

    def per_worker(self) -> list[dict[str, Any]]:
        """Each worker's share, from the responder's per-client figures: deliveries, its own rate, and when it
        began (s after the run's first delivery). Empty for the loop or without stats."""
        if self.stats is None or not self.worker_ports or "clients" not in self.stats:
            return []
        shares = []
        for ports in self.worker_ports:
            mine = [c for c in self.stats["clients"] if c[0] in ports]
            count = sum(c[1] for c in mine)
            first = min((c[2] for c in mine), default=None)
            last = max((c[3] for c in mine), default=None)
            span = None if first is None or last is None else last - first
            shares.append(
                {
                    "deliveries": count,
                    "endpoints": len(mine),
                    "records_per_s": round(count * 1e9 / span) if span else None,
                    "starts_after_s": None
                    if first is None
                    else round((first - self.stats["first_ns"]) / 1e9, 3),
                    "span_s": None if span is None else round(span / 1e9, 3),
                }
            )
        return shares

    def as_dict(self) -> dict[str, Any]:
        stats = self.stats or {}
        hidden = ("first_ns", "last_ns", "now_ns", "clients")
        return {
            "implementation": self.impl.name,
            "records": self.records,
            "workers": self.impl.workers,
            "max_inflight": self.impl.max_inflight,
            "records_per_s": None if not self.span_ns else round(self.records * 1e9 / self.span_ns),
            "responder": {k: v for k, v in stats.items() if k not in hidden},
            "worker_exits": self.worker_exits,
            "per_worker": self.per_worker(),
            "cpu_us_per_record": None if self.cpu_us_per_record is None else round(self.cpu_us_per_record, 1),
            "profile": self.profile,
            "problem": self.delivery_problem,
        }


class Bench:
    def __init__(self, broker: KafkaBroker, workdir: Path, args: argparse.Namespace) -> None:
        self.broker = broker
        self.workdir = workdir
        self.join_timeout: float = args.join_timeout
        self.stall_timeout: float = args.stall_timeout
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.token = secrets.token_hex(3)
        self.profile: str | None = args.profile

    def run(self, case: Case, impl: Impl, repeat: int) -> RunResult:
        label = f"{case.name}-{impl.name}-{repeat}"
        name = f"bench-{label}-{self.token}".replace("_", "-")
        result = RunResult(impl, impl.records)
        if case.libcoap:
            return self._run_on_libcoap(case, impl, name, label, result)
        responder = Responder(case.delay_ms, self.workdir, f"{label}-responder")
        result.logs.append(str(responder.log_path))
        try:
            values, parts = make_records(impl.records, case.resources, case.partitions)
            self.loop.run_until_complete(self.broker.create_topic(name, case.partitions))
            self.loop.run_until_complete(self.broker.produce(name, values, partitions=parts, timeout=120))
            responder.start()
            if impl.connector:
                self._run_connector(impl, name, label, responder, result)
            elif impl.workers:
                self._run_workers(case, impl, name, label, responder, result)
            else:
                self.loop.run_until_complete(
                    stream_reactor_loop(
                        self.broker.bootstrap,
                        name,
                        name,
                        responder.uri,
                        impl.records,
                        join_timeout=self.join_timeout,
                        stall_timeout=self.stall_timeout,
                    )
                )
            result.stats = responder.final_stats()
        except Exception as exc:  # reported with the run; the other runs go on
            result.error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(RunFailed):
                result.stats = responder.final_stats() if responder.port else None
        finally:
            responder.stop()
        return result

    def _run_connector(
        self, impl: Impl, name: str, label: str, responder: Responder, result: RunResult
    ) -> None:
        """stream-reactor's sink in a Connect standalone worker with Connect's defaults (its JVM starts
        and discovers the server before the first record: not in the figure, which starts at the first
        delivery)."""
        connect = KafkaConnectStandalone(
            self.broker.bootstrap,
            {
                "name": name,
                "topics": name,
                "connect.coap.uri": responder.uri,
                "connect.coap.kcql": f"INSERT INTO r SELECT * FROM {name}",
                "connect.coap.error.policy": "THROW",
            },
            self.workdir / f"{label}-connect",
            startup_timeout=self.join_timeout,
        )
        result.logs.append(str(connect.log_path))

        def check() -> None:
            if not connect.running:
                raise RunFailed(f"Kafka Connect exited; log {connect.log_path}")
            states = connect.task_states()
            if "FAILED" in states:
                raise RunFailed(f"the connector's task FAILED; log {connect.log_path}")

        with connect:
            await_deliveries(
                responder,
                impl.records,
                check,
                join_timeout=self.join_timeout,
                stall_timeout=self.stall_timeout,
            )

    def _run_on_libcoap(self, case: Case, impl: Impl, name: str, label: str, result: RunResult) -> RunResult:
        """Case ``dtls_psk``: one libcoap coap-server-openssl; the worker's own counters (see the module)."""
        server = LibcoapServer(
            flavour="openssl", psk=DTLS_PSK.encode(), log_path=self.workdir / f"{label}-libcoap.log"
        )
        result.logs.append(str(self.workdir / f"{label}-libcoap.log"))
        try:
            values, parts = make_records(impl.records, case.resources, case.partitions)
            self.loop.run_until_complete(self.broker.create_topic(name, case.partitions))
            self.loop.run_until_complete(self.broker.produce(name, values, partitions=parts, timeout=120))
            server.start()
            extra = {"connect.coap.username": "bench", "connect.coap.password": DTLS_PSK} if impl.dtls else {}
            self._run_workers(
                case, impl, name, label, None, result, server.coaps_uri if impl.dtls else server.uri, extra
            )
        except Exception as exc:  # reported with the run; the other runs go on
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            server.stop()
        return result

    def _run_workers(
        self,
        case: Case,
        impl: Impl,
        name: str,
        label: str,
        responder: Responder | None,
        result: RunResult,
        uri: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        """``responder`` counts the deliveries; None: the workers' own counters do (``uri`` then given)."""
        properties = {
            "name": name,
            "bootstrap.servers": self.broker.bootstrap,
            "connect.coap.uri": uri or (responder.uri if responder else ""),
            "connect.coap.kcql": f"INSERT INTO r/{{id}} SELECT * FROM {name}",
            "connect.coap.error.policy": "THROW",
            "log.format": "json",
            **(extra or {}),
        }
        if impl.max_inflight is not None:
            properties["connect.coap.max.inflight"] = str(impl.max_inflight)
        workers = [
            WorkerProcess(properties, self.workdir, f"{label}-worker{i + 1}") for i in range(impl.workers)
        ]
        result.logs.extend(str(w.log_path) for w in workers)

        def check() -> None:
            for worker in workers:
                if worker.returncode is not None:
                    raise RunFailed(f"{worker.label} exited with {worker.returncode}; log {worker.log_path}")

        began: dict[str, Any] = {}
        profiler: Profiler | None = None

        def first_delivery(count: int) -> None:
            nonlocal profiler
            began["cpu"] = sum(cpu_seconds(w.pid) for w in workers)
            began["count"] = count
            if self.profile and impl.name == self.profile and len(workers) == 1:
                profiler = Profiler(workers[0].pid, self.workdir / f"{label}-py-spy.txt")

        try:
            for worker in workers:  # all at once, so that they join the group together
                worker.start()
            stats = await_deliveries(
                responder or WorkerCount(workers, impl.records),
                impl.records,
                check,
                join_timeout=self.join_timeout,
                stall_timeout=self.stall_timeout,
                on_first=first_delivery,
            )
            if responder is None:
                result.stats = stats
            if "cpu" in began and stats["deliveries"] > began["count"]:
                spent = sum(cpu_seconds(w.pid) for w in workers) - began["cpu"]
                result.cpu_us_per_record = spent * 1e6 / (stats["deliveries"] - began["count"])
            if profiler is not None:
                result.profile = profiler.finish()
                result.logs.append(str(profiler.output))
            result.worker_ports = [udp_ports(worker) for worker in workers]
            # SIGTERM to all at once: a worker stopping alone would hand its partitions to the others.
            with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
                exits = list(pool.map(_stop, workers))
            result.worker_exits = exits
        finally:
            if profiler is not None and profiler.running:
                profiler.finish()
            for worker in workers:
                worker.kill()

    def close(self) -> None:
        self.loop.close()


def udp_ports(worker: WorkerProcess) -> set[int]:
    """The local ports of the UDP sockets (IPv4 and IPv6: aiocoap's udp6 transport) the worker holds."""
    proc = worker._proc  # streamapp_harness.worker keeps the Popen private; the pid is all that is read
    if proc is None or proc.poll() is not None:
        return set()
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{proc.pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("udp", "udp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{proc.pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()  # sl local_address rem_address st ... uid timeout inode
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` and all its threads so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: py-spy samples per second; every thread, active samples only (idle threads are not CPU).
PROFILE_RATE = 200
#: Where a sample's time is put: the first frame, from the leaf up, whose file is in one of these packages
#: (py-spy names a frame ``function (package/module.py:line)``).
PROFILE_LIBRARIES = {
    "streamapp": "streamapp",
    "agents": "streamapp",
    "aiocoap": "aiocoap",
    "faust": "faust + mode",
    "mode": "faust + mode",
    "aiokafka": "aiokafka",
    "kafka": "aiokafka",
    "asyncio": "event loop",
    "uvloop": "event loop",
}


def frame_library(frame: str) -> str | None:
    """The library of a py-spy frame, ``function (package/module.py:line)``; None: none of them."""
    start = frame.rfind("(")
    package = frame[start + 1 :].split("/", 1)[0].split(":", 1)[0].split(".", 1)[0]
    return PROFILE_LIBRARIES.get(package)


class Profiler:
    """``py-spy record`` attached to a worker while it delivers; :meth:`finish` gives each library's share of
    the samples (a sample counts for the innermost frame of a known library: stdlib helpers such as json or
    dataclasses count for whoever called them)."""

    def __init__(self, pid: int, output: Path) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.output = output
        self._proc = subprocess.Popen(
            [
                spy,
                "record",
                "--nonblocking",
                "-p",
                str(pid),
                "-r",
                str(PROFILE_RATE),
                "-f",
                "raw",
                "-o",
                str(output),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def finish(self) -> dict[str, float]:
        if self.running:
            self._proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        return profile_shares(self.output)


def profile_shares(collapsed: Path) -> dict[str, float]:
    """Share of the samples per library, from py-spy's raw (collapsed-stack) output."""
    counts: collections.Counter[str] = collections.Counter()
    if not collapsed.exists():
        return {}
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        library = "other"
        for frame in reversed(stack.split(";")):
            found = frame_library(frame)
            if found is not None:
                library = found
                break
        counts[library] += int(count)
    total = sum(counts.values()) or 1
    return {name: round(n / total, 3) for name, n in counts.most_common()}


def _stop(worker: WorkerProcess) -> int | None:
    try:
        return worker.stop(timeout=60)
    except TimeoutError:
        return None


# --- ratios, output -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateComparison(Comparison):
    """A :class:`Comparison` whose ratio is of rates, since baseline and candidate may handle different record
    counts; ``passed`` is the target (ratio >= gate, and rate >= ``min_rate`` when set)."""

    min_rate: float | None = None

    @property
    def ratio(self) -> float:
        return self.candidate.rate / self.baseline.rate

    @property
    def median_ratio(self) -> float:
        return self.candidate.median_rate / self.baseline.median_rate

    @property
    def passed(self) -> bool:
        ratio_ok = self.gate is None or self.ratio >= self.gate
        return ratio_ok and (self.min_rate is None or self.candidate.rate >= self.min_rate)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "min_rate": self.min_rate}


def timing(impl: Impl, runs: list[RunResult]) -> Timing | None:
    """The implementation's runs that delivered correctly, as harness Timings (one pass per repeat)."""
    spans = [r.span_ns for r in runs if r.delivery_problem is None and r.span_ns]
    return Timing(impl.name, impl.records, tuple(spans)) if spans else None


def print_case(case: Case, runs: dict[str, list[RunResult]], timings: dict[str, Timing | None]) -> None:
    header = (
        "implementation",
        "records/s",
        "ratio",
        "CPU/record",
        "max pending",
        "endpoints",
        "resources",
        "dups",
        "check",
    )
    rows = []
    base = timings[case.baseline.name]
    for impl in case.implementations:
        last = runs[impl.name][-1]
        stats = last.stats or {}
        t = timings[impl.name]
        rate = "-" if t is None else f"{t.rate:,.0f}"
        ratio = "" if impl is case.baseline or t is None or base is None else f"{t.rate / base.rate:.2f}x"
        problems = [r.delivery_problem for r in runs[impl.name] if r.delivery_problem is not None]
        cpu = [r.cpu_us_per_record for r in runs[impl.name] if r.cpu_us_per_record is not None]
        rows.append(
            (
                impl.label,
                rate,
                ratio,
                f"{min(cpu):.0f} µs" if cpu else "-",
                str(stats.get("max_pending", "-")),
                str(stats.get("endpoints", "-")),
                str(stats.get("resources", "-")),
                str(stats.get("duplicates", "-")),
                "ok" if not problems else "WRONG",
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    print(f"== {BENCHMARK}: {case.name} ({case.describe()})")
    for row in (header, *rows):
        cells = zip(row, widths, strict=True)
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)).rstrip())
    candidate, target = timings[case.target.candidate], case.target
    if candidate is not None and base is not None:
        ratio = candidate.rate / base.rate
        met = ratio >= target.ratio and (target.min_rate is None or candidate.rate >= target.min_rate)
        print(
            f"   target for {target.candidate}: {target.describe()} {case.baseline.name}; "
            f"measured {ratio:.2f}x, {candidate.rate:,.0f}/s: {'met' if met else 'NOT MET'}"
        )
    else:
        print(f"   target for {target.candidate}: {target.describe()}: no figure (a run failed)")
    connector = case.connector and timings[case.connector.name]
    if connector and candidate is not None and target.connector_ratio is not None:
        ratio = candidate.rate / connector.rate
        met = "met" if ratio >= target.connector_ratio else "NOT MET"
        print(
            f"   against stream-reactor in Kafka Connect: {ratio:.2f}x "
            f"(target >= {target.connector_ratio:g}x): {met}"
        )
    for impl in case.implementations:
        for run in runs[impl.name]:
            if run.delivery_problem is not None:
                print(f"   {impl.name}: WRONG: {run.delivery_problem}", file=sys.stderr)
            for i, share in enumerate(run.per_worker() if impl.workers > 1 else (), start=1):
                if not share["deliveries"]:
                    print(f"   {impl.name}: worker{i}: no deliveries")
                    continue
                rate = "-" if share["records_per_s"] is None else f"{share['records_per_s']:,}/s"
                print(
                    f"   {impl.name}: worker{i}: {share['deliveries']:,} records, {rate} on its own, "
                    f"{share['endpoints']} endpoints, first delivery +{share['starts_after_s']:g} s"
                )
            if run.profile:
                split = ", ".join(f"{name} {share:.0%}" for name, share in run.profile.items())
                print(f"   {impl.name}: py-spy: {split}")
            if any(code != 0 for code in run.worker_exits):
                print(f"   {impl.name}: worker exit codes {run.worker_exits} after SIGTERM", file=sys.stderr)
    sys.stdout.flush()


# --- main ---------------------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_cases(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASE_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown case(s) {unknown}; choose from {', '.join(CASE_NAMES)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_pipeline", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--cases", type=parse_cases, default=list(CASE_NAMES), help="comma-separated cases")
    parser.add_argument("--quick", action="store_true", help="every record count divided by 10")
    parser.add_argument("--loopback-records", type=positive_int, default=20_000)
    parser.add_argument("--rtt20-records", type=positive_int, default=3_000, help="rtt20_one_resource")
    parser.add_argument(
        "--rtt20-64-records", type=positive_int, default=12_000, help="rtt20_64_resources, tuned"
    )
    parser.add_argument(
        "--rtt20-64-baseline-records",
        type=positive_int,
        default=1_000,
        help="rtt20_64_resources, loop and default worker (~46 records/s)",
    )
    parser.add_argument("--two-workers-records", type=positive_int, default=20_000)
    parser.add_argument("--repeats", type=positive_int, default=1, help="runs per implementation (best kept)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (default: %(default)s)")
    parser.add_argument(
        "--workdir", type=Path, help="logs and worker configs (default: a temporary directory)"
    )
    parser.add_argument(
        "--join-timeout", type=float, default=JOIN_TIMEOUT_S, help="seconds to first delivery"
    )
    parser.add_argument(
        "--stall-timeout", type=float, default=STALL_TIMEOUT_S, help="seconds without progress"
    )
    parser.add_argument(
        "--profile",
        metavar="IMPL",
        help="attach py-spy to this implementation's worker while it delivers (e.g. tuned) and print "
        "where its time went by library (the collapsed stacks stay in the workdir)",
    )
    args = parser.parse_args(argv)

    cases = build_cases(args)
    selected = [cases[name] for name in args.cases]
    missing = connector_missing()
    if missing is not None:
        print(f"bench_pipeline: the stream_reactor baseline is left out: {missing}", flush=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"bench_pipeline: logs in {workdir}", flush=True)

    comparisons: list[RateComparison] = []
    details: dict[str, Any] = {}
    wrong = False
    with KafkaBroker(workdir / "kafka") as broker:
        bench = Bench(broker, workdir, args)
        try:
            for case in selected:
                runs: dict[str, list[RunResult]] = {impl.name: [] for impl in case.implementations}
                for repeat in range(args.repeats):  # interleaved, as harness.time_passes does
                    for impl in case.implementations:
                        print(f"-- {case.name}: {impl.label}, {impl.records:,} records ...", flush=True)
                        run = bench.run(case, impl, repeat)
                        runs[impl.name].append(run)
                        if run.delivery_problem is not None:
                            wrong = True
                timings = {impl.name: timing(impl, runs[impl.name]) for impl in case.implementations}
                print_case(case, runs, timings)
                base = timings[case.baseline.name]
                for impl in case.candidates:
                    candidate = timings[impl.name]
                    if base is None or candidate is None:
                        continue
                    targeted = impl.name == case.target.candidate
                    comparisons.append(
                        RateComparison(
                            f"{case.name}/{impl.name}",
                            base,
                            candidate,
                            case.target.ratio if targeted else None,
                            case.target.min_rate if targeted else None,
                        )
                    )
                connector = case.connector and timings[case.connector.name]
                target = timings[case.target.candidate]
                if connector and target is not None:
                    comparisons.append(
                        RateComparison(
                            f"{case.name}/{case.target.candidate}_vs_stream_reactor",
                            connector,
                            target,
                            case.target.connector_ratio,
                        )
                    )
                details[case.name] = {
                    "delay_ms": case.delay_ms,
                    "resources": case.resources,
                    "partitions": case.partitions,
                    "runs": [run.as_dict() for impl in case.implementations for run in runs[impl.name]],
                }
        finally:
            bench.close()

    params = {
        "cases": args.cases,
        "quick": args.quick,
        "repeats": args.repeats,
        "records": {c.name: {i.name: i.records for i in c.implementations} for c in selected},
        "max_inflight": {c.name: {i.name: i.max_inflight for i in c.candidates} for c in selected},
    }
    entry = run_entry(BENCHMARK, params, list(comparisons))
    entry["cases"] = details
    append_result(entry, args.results)
    print(f"written to {args.results}")
    if wrong:
        print(
            f"bench_pipeline: FAILED: a run did not deliver every record once; logs in {workdir}",
            file=sys.stderr,
        )
        return 1
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
