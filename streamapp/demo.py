"""``python -m streamapp demo``: the whole sink on this machine, with nothing to set up.

Starts an embedded Tansu broker and libcoap's ``coap-server-notls``, runs the worker as a real
``faust -A streamapp.main worker`` subprocess, produces the stream-reactor docs' sample record and more,
then shows what the CoAP server holds and the stats URL. With ``--exit`` it stops once every record is
delivered (exit 0) or the timeout passes (exit 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import javaproperties

from streamapp.peers import LibcoapServer, TansuBroker, free_port

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


def _stats(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/coap/stats.json", timeout=2) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None


def _delivered(stats: dict[str, Any] | None) -> list[int]:
    return [s["delivered"] for s in (stats or {"statements": []})["statements"]]


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
    web_port = free_port("tcp")
    print(f"demo: working directory {workdir}")
    with (
        TansuBroker(log_path=workdir / "tansu.log") as broker,
        LibcoapServer(log_path=workdir / "coap-server.log") as coap,
    ):
        print(f"demo: Tansu broker on {broker.bootstrap}, libcoap server on {coap.uri}")
        people = sample_records(records)
        asyncio.run(_produce(broker, people))
        print(f"demo: produced {len(people)} records to topic {TOPIC!r}")
        config = workdir / "demo.properties"
        with config.open("w", encoding="utf-8") as fh:
            javaproperties.dump(
                {
                    "name": "streamapp-demo",
                    "bootstrap.servers": broker.bootstrap,
                    "connect.coap.uri": coap.uri,
                    "connect.coap.kcql": KCQL,
                    "web.port": str(web_port),
                },
                fh,
                timestamp=False,
            )
        log_path = workdir / "worker.log"
        env = {**os.environ, "STREAMAPP_CONFIG": str(config)}
        faust = Path(sys.executable).with_name("faust")
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [str(faust), "-A", "streamapp.main", "worker", "-l", "info"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        print(f"demo: worker started (pid {worker.pid}, log {log_path}); the consumer group join takes ~30 s")
        print(
            f"demo: stats page http://127.0.0.1:{web_port}/coap/  JSON http://127.0.0.1:{web_port}/coap/stats.json"
        )
        try:
            ok = _wait_for_delivery(worker, web_port, len(people), timeout_s)
            _show(coap, web_port)
            if not ok:
                print(f"demo: FAILED: not every record was delivered within {timeout_s:g} s; see {log_path}")
                return 1
            print(f"demo: OK: all {len(people)} records delivered to both resources")
            if not exit_when_done:
                print(
                    "demo: running until Ctrl-C (produce more with the Kafka tools at", broker.bootstrap + ")"
                )
                worker.wait()
            return 0
        except KeyboardInterrupt:
            return 0
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(60)
                except subprocess.TimeoutExpired:
                    worker.kill()


async def _produce(broker: TansuBroker, people: list[dict[str, Any]]) -> None:
    await broker.create_topic(TOPIC, partitions=1)
    await broker.produce(TOPIC, [json.dumps(p).encode() for p in people])


def _wait_for_delivery(
    worker: subprocess.Popen[bytes], web_port: int, expected: int, timeout_s: float
) -> bool:
    deadline = time.monotonic() + timeout_s
    last: list[int] = []
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            print(f"demo: the worker exited with code {worker.returncode}")
            return False
        delivered = _delivered(_stats(web_port))
        if delivered != last and delivered:
            print(f"demo: delivered per statement: {delivered}")
            last = delivered
        if delivered and all(n >= expected for n in delivered):
            return True
        time.sleep(0.5)
    return False


def _show(coap: LibcoapServer, web_port: int) -> None:
    for path in ("people", "people/names"):
        held = coap.get(path)
        shown = held.decode("utf-8", "replace") if held is not None else "(nothing)"
        print(f"demo: CoAP server holds {coap.uri}/{path} = {shown}")
    stats = _stats(web_port)
    if stats is not None:
        for s in stats["statements"]:
            print(
                f"demo: statement {s['statement']} {s['source']} -> {s['resource']}: "
                f"delivered {s['delivered']}, failed {s['failed']}"
            )
