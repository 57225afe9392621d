"""``python -m streamapp_harness demo`` (``make demo``): the whole sink on this machine, nothing to set up.

Starts an embedded Tansu broker and libcoap's ``coap-server-notls``, runs the worker as a real
``faust -A streamapp.main worker`` subprocess, produces the stream-reactor docs' sample record and more,
then shows what the CoAP server holds and the stats URL. With ``--exit`` it stops once every record is
delivered (exit 0) or the timeout passes (exit 1).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from streamapp_harness.libcoap import LibcoapServer
from streamapp_harness.tansu import TansuBroker
from streamapp_harness.worker import WorkerProcess

TOPIC = "demo-people"
#: The sample record of stream-reactor's CoAP sink documentation.
SAMPLE = {"firstName": "John", "lastName": "Smith", "age": 30, "salary": 4830}
KCQL = (
    f"INSERT INTO people SELECT * FROM {TOPIC}; "
    f"INSERT INTO people/names SELECT firstName AS first, lastName AS last FROM {TOPIC}"
)


def sample_records(count: int) -> list[dict[str, Any]]:
    people = [SAMPLE]
    for i in range(1, count):
        people.append({"firstName": f"Person{i}", "lastName": "Doe", "age": 20 + i % 50, "salary": 1000 + i})
    return people[:count]


def run_demo(records: int, exit_when_done: bool, timeout_s: float) -> int:
    if records < 1:
        print("demo: --records must be at least 1", file=sys.stderr)
        return 2
    if shutil.which("coap-server-notls") is None:
        print(
            "demo: coap-server-notls not found: install Debian's libcoap3-bin (make demo does)",
            file=sys.stderr,
        )
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="streamapp-demo-"))
    print(f"demo: working directory {workdir}")
    with (
        TansuBroker(log_path=workdir / "tansu.log") as broker,
        LibcoapServer(log_path=workdir / "coap-server.log") as coap,
    ):
        print(f"demo: Tansu broker on {broker.bootstrap}, libcoap server on {coap.uri}")
        people = sample_records(records)
        asyncio.run(_produce(broker, people))
        print(f"demo: produced {len(people)} records to topic {TOPIC!r}")
        worker = WorkerProcess(
            {
                "name": "streamapp-demo",
                "bootstrap.servers": broker.bootstrap,
                "connect.coap.uri": coap.uri,
                "connect.coap.kcql": KCQL,
            },
            workdir,
            "worker",
            cwd=workdir,
        ).start()
        web_port = worker.web_port
        print(f"demo: worker started (log {worker.log_path}); its first delivery comes after ~5 s")
        print(
            f"demo: stats page http://127.0.0.1:{web_port}/coap/  JSON http://127.0.0.1:{web_port}/coap/stats.json"
        )
        try:
            ok = _wait_for_delivery(worker, len(people), timeout_s)
            _show(coap, worker)
            if not ok:
                print(
                    f"demo: FAILED: not every record was delivered within {timeout_s:g} s; "
                    f"see {worker.log_path}"
                )
                return 1
            print(f"demo: OK: all {len(people)} records delivered to both resources")
            if not exit_when_done:
                print(
                    "demo: running until Ctrl-C (produce more with the Kafka tools at", broker.bootstrap + ")"
                )
                worker.wait_exit(None)
            return 0
        except KeyboardInterrupt:
            return 0
        finally:
            try:
                worker.stop()
            except TimeoutError:
                worker.kill()


async def _produce(broker: TansuBroker, people: list[dict[str, Any]]) -> None:
    await broker.create_topic(TOPIC, partitions=1)
    await broker.produce(TOPIC, [json.dumps(p).encode() for p in people])


def _wait_for_delivery(worker: WorkerProcess, expected: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    last: list[int] = []
    while time.monotonic() < deadline:
        if worker.returncode is not None:
            print(f"demo: the worker exited with code {worker.returncode}")
            return False
        delivered = list(worker.delivered().values())
        if delivered != last and delivered:
            print(f"demo: delivered per statement: {delivered}")
            last = delivered
        if delivered and all(n >= expected for n in delivered):
            return True
        time.sleep(0.5)
    return False


def _show(coap: LibcoapServer, worker: WorkerProcess) -> None:
    for path in ("people", "people/names"):
        held = coap.get(path)
        shown = held.decode("utf-8", "replace") if held is not None else "(nothing)"
        print(f"demo: CoAP server holds {coap.uri}/{path} = {shown}")
    stats = worker.stats()
    if stats is not None:
        for s in stats["statements"]:
            print(
                f"demo: statement {s['statement']} {s['source']} -> {s['resource']}: "
                f"delivered {s['delivered']}, failed {s['failed']}"
            )
