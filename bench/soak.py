"""Soak: a long run of one worker, watched for growth (issue 15).

``python -m bench.soak [--records N] [--sample-s S] [--warmup-s W] [--inflight K] [--results PATH]``

A backlog of ``--records`` records (1 000 000 by default) on 4 partitions goes through one worker with
three statements: one templated over 1 000 resources, one ``BATCH = 20``, one with ``IGNORE``; the window
is ``--inflight`` (16). The CoAP server is ``bench.coap_responder`` in its own process: it counts every
request it received once (RFC 7252 de-duplication by endpoint and Message ID), which libcoap's server
cannot report. Every ``--sample-s`` seconds the bench samples the worker process from outside (resident
memory from ``/proc/<pid>/status``, open file descriptors from ``/proc/<pid>/fd``) and its ``/metrics``
(``streamapp_asyncio_tasks``, the counters).

The baseline is the first sample after ``--warmup-s`` (caches and lanes are full by then); each figure is
printed as a ratio against it at the end. Targets: resident memory within +10 %; tasks flat (at most
``FLAT_SLACK`` more); the CoAP endpoints within the bound the Message-ID rule sets (below), and every file
descriptor beyond the baseline one of those endpoints; the worker's counters exactly what the responder
received (records per statement, requests per server, no duplicate).

Endpoints are not flat, by design (docs/delivery-engine.md, "Why one endpoint per exchange"): one endpoint
starts at most 65 536 messages per EXCHANGE_LIFETIME (247 s), then rests, socket and port held, until its
oldest IDs age out, while another carries on. At ``R`` requests/s the worker therefore holds up to
``window + ceil(R * 247 / 65 536)`` endpoints (at most ``window + SPARE_ENDPOINTS``), one UDP socket each:
:func:`endpoint_bound`. A long fast run grows its descriptors by exactly that, then stays.

The run is appended to ``bench/results.json``; the exit status is 1 when a target is missed or a record is
missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.bench_pipeline import Responder, RunFailed
from bench.harness import RESULTS, append_result, run_entry
from streamapp.coap.endpoints import DEFAULT_EXCHANGE_LIFETIME_S, MESSAGE_IDS, SPARE_ENDPOINTS
from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.process import wait_until
from streamapp_harness.worker import WorkerProcess

BENCHMARK = "soak"
PARTITIONS = 4
RESOURCES = 1000
BATCH = 20
#: Resident memory may grow this much over the baseline (ratio).
RSS_GATE = 1.10
#: Tasks (and descriptors beyond the endpoints) may differ from the baseline by this many.
FLAT_SLACK = 8
PRODUCE_CHUNK = 50_000


@dataclass
class Sample:
    at_s: float
    rss_kib: int
    fds: int
    tasks: int
    delivered: dict[str, int]
    endpoints: int = 0
    requests: int = 0

    @property
    def total(self) -> int:
        return sum(self.delivered.values())


def kcql(topic: str) -> str:
    return (
        f"INSERT INTO dev/{{dev}} SELECT n, t FROM {topic}; "
        f"INSERT INTO batched SELECT n FROM {topic} BATCH = {BATCH}; "
        f"INSERT INTO clean SELECT * FROM {topic} IGNORE secret"
    )


def record(n: int) -> bytes:
    return json.dumps({"n": n, "dev": n % RESOURCES, "t": 20 + n % 7 * 0.5, "secret": "x" * 8}).encode()


def sample(worker: WorkerProcess, started: float) -> Sample:
    figures = worker.metrics()
    delivered = {
        dict(labels)["statement"]: int(value)
        for (name, labels), value in figures.items()
        if name == "streamapp_records_delivered_total"
    }
    requests = sum(
        int(value)
        for (name, _), value in figures.items()
        if name == "streamapp_server_requests_delivered_total"
    )
    return Sample(
        at_s=round(time.monotonic() - started, 1),
        rss_kib=worker.rss_kib(),
        fds=len(os.listdir(f"/proc/{worker.pid}/fd")),
        tasks=int(figures[("streamapp_asyncio_tasks", ())]),
        delivered=delivered,
        endpoints=int(figures.get(("streamapp_coap_endpoints", ()), 0)),
        requests=requests,
    )


def peak_request_rate(samples: list[Sample]) -> float:
    """The most requests/s over any EXCHANGE_LIFETIME of the run (the whole run when it is shorter)."""
    best = 0.0
    for i, first in enumerate(samples):
        for last in samples[i + 1 :]:
            span = last.at_s - first.at_s
            if span >= DEFAULT_EXCHANGE_LIFETIME_S or last is samples[-1]:
                best = max(best, (last.requests - first.requests) / max(span, 1e-9))
                break
    return best


def endpoint_bound(window: int, requests_per_s: float) -> int:
    """The endpoints the Message-ID rule needs at this rate (module doc), capped as the pool caps them."""
    needed = window + math.ceil(requests_per_s * DEFAULT_EXCHANGE_LIFETIME_S / MESSAGE_IDS)
    return min(needed, window + SPARE_ENDPOINTS)


async def fill(broker: KafkaBroker, topic: str, records: int) -> None:
    await broker.create_topic(topic, partitions=PARTITIONS)
    for start in range(0, records, PRODUCE_CHUNK):
        numbers = range(start, min(records, start + PRODUCE_CHUNK))
        await broker.produce(
            topic, [record(n) for n in numbers], partitions=[n % PARTITIONS for n in numbers], timeout=300
        )
        print(f"  produced {numbers.stop:,} of {records:,}", flush=True)


def verdict(
    baseline: Sample,
    last: Sample,
    samples: list[Sample],
    window: int,
    worker_stats: dict[str, Any],
    responder: dict[str, Any],
    records: int,
) -> tuple[dict[str, Any], list[str]]:
    """The growth figures and every target missed."""
    requests = sum(s["delivered"] for s in worker_stats["servers"])
    per_statement = {str(s["statement"]): s["delivered"] for s in worker_stats["statements"]}
    rate = peak_request_rate(samples)
    bound = endpoint_bound(window, rate)
    most_endpoints = max(s.endpoints for s in samples)
    figures = {
        "rss_ratio": round(last.rss_kib / baseline.rss_kib, 3),
        "rss_kib": [baseline.rss_kib, last.rss_kib],
        "rss_peak_kib": max(s.rss_kib for s in samples),
        "fds": [baseline.fds, last.fds],
        "endpoints": [baseline.endpoints, last.endpoints],
        "endpoints_most": most_endpoints,
        "endpoint_bound": bound,
        "peak_requests_per_s": round(rate),
        "tasks": [baseline.tasks, last.tasks],
        "records_per_statement": per_statement,
        "requests_delivered_by_worker": requests,
        "requests_received_by_server": responder["deliveries"],
        "server_duplicates": responder["duplicates"],
        "server_resources": responder["resources"],
    }
    missed = []
    if figures["rss_ratio"] > RSS_GATE:
        missed.append(f"resident memory grew {figures['rss_ratio']:.3f}x after warm-up (gate {RSS_GATE})")
    if last.tasks - baseline.tasks > FLAT_SLACK:
        missed.append(f"tasks grew from {baseline.tasks} to {last.tasks} after warm-up")
    if most_endpoints > bound:
        missed.append(
            f"{most_endpoints} CoAP endpoints, more than the {bound} the Message-ID rule needs at "
            f"{rate:,.0f} requests/s with a window of {window}"
        )
    beyond = (last.fds - baseline.fds) - (last.endpoints - baseline.endpoints)
    if beyond > FLAT_SLACK:
        missed.append(
            f"file descriptors grew from {baseline.fds} to {last.fds} after warm-up, {beyond} of them not "
            f"CoAP endpoints ({baseline.endpoints} -> {last.endpoints})"
        )
    if per_statement != {"1": records, "2": records, "3": records}:
        missed.append(f"records per statement {per_statement}, expected {records:,} each")
    if requests != responder["deliveries"] or responder["duplicates"]:
        missed.append(
            f"the worker counted {requests:,} delivered requests, the server received "
            f"{responder['deliveries']:,} (+{responder['duplicates']} duplicates)"
        )
    if responder["resources"] != RESOURCES + 2:
        missed.append(f"{responder['resources']} resources at the server, expected {RESOURCES + 2}")
    return figures, missed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"soak: {args.records:,} records; logs in {workdir}", flush=True)
    topic = f"soak-{os.getpid()}"
    samples: list[Sample] = []
    with KafkaBroker(workdir / "kafka") as broker:
        asyncio.run(fill(broker, topic, args.records))
        responder = Responder(0, workdir, "responder").start()
        worker = WorkerProcess(
            {
                "name": topic,
                "bootstrap.servers": broker.bootstrap,
                "connect.coap.uri": responder.uri,
                "connect.coap.kcql": kcql(topic),
                "connect.coap.max.inflight": str(args.inflight),
            },
            workdir,
            "worker",
        ).start()
        try:
            wait_until(lambda: worker.stats() is not None, timeout=120, what="the worker's web server")
            started = time.monotonic()
            expected = 3 * args.records
            while True:
                if worker.returncode is not None:
                    raise RunFailed(f"the worker exited with {worker.returncode}; log {worker.log_path}")
                responder.check_alive()
                current = sample(worker, started)
                samples.append(current)
                print(
                    f"  {current.at_s:7.1f} s  {current.total:>10,} of {expected:,} records  "
                    f"rss {current.rss_kib / 1024:7.1f} MiB  fds {current.fds:4}  "
                    f"endpoints {current.endpoints:3}  tasks {current.tasks:4}",
                    flush=True,
                )
                if current.total >= expected:
                    break
                if len(samples) > 3 and samples[-4].total == current.total:
                    raise RunFailed(f"no progress for {3 * args.sample_s:.0f} s at {current.total:,}")
                time.sleep(args.sample_s)
            worker_stats = worker.stats()
            server = responder.final_stats()
            assert worker_stats is not None
        finally:
            worker.stop()
            responder.stop()
    warm = [s for s in samples if s.at_s >= args.warmup_s]
    if len(warm) < 2:
        print(f"soak: FAILED the run ended {samples[-1].at_s:.0f} s in, before a baseline after warm-up")
        return 1
    baseline, last = warm[0], warm[-1]
    figures, missed = verdict(baseline, last, samples, args.inflight, worker_stats, server, args.records)
    span = last.at_s - samples[0].at_s
    figures["records_per_s"] = round(3 * args.records / max(span, 1e-9))
    for name, value in figures.items():
        print(f"  {name}: {value}")
    entry = run_entry(
        BENCHMARK,
        {
            "records": args.records,
            "statements": 3,
            "resources": RESOURCES,
            "batch": BATCH,
            "partitions": PARTITIONS,
            "max_inflight": args.inflight,
            "warmup_s": args.warmup_s,
            "sample_s": args.sample_s,
        },
        [],
    )
    entry["baseline_at_s"] = baseline.at_s
    entry["figures"] = figures
    entry["passed"] = not missed
    entry["samples"] = [asdict(s) for s in samples]
    append_result(entry, args.results)
    print(f"written to {args.results}")
    for reason in missed:
        print(f"soak: FAILED {reason}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
