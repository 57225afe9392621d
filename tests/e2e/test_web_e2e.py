"""The worker's stats page, stats.json and /metrics after (and during) a real run: the numbers equal what
the CoAP server received, the page updates itself in a real browser, and nothing on it is a secret."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.worker import metric_samples
from tests.recording_server import RecordingCoapServer
from tests.scenario import Scenario, json_values

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).parents[1] / "artifacts"


def fetch(port: int, path: str) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.headers.get("Content-Type", ""), response.read().decode()


def status_of(port: int, path: str, method: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"{}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def test_endpoints_after_a_run_with_two_statements_and_eight_in_flight(run: Scenario) -> None:
    n = 600
    topic = await run.topic(json_values({"n": i, "d": i % 30} for i in range(n)), partitions=2)
    kcql = f"INSERT INTO dev/{{d}} SELECT n FROM {topic}; INSERT INTO all SELECT * FROM {topic}"
    worker = run.start(kcql, {"connect.coap.max.inflight": "8"})
    run.wait_for(worker, 2 * n)
    recorder = run.recorder
    worker.wait_until(
        lambda: sum(worker.delivered().values()) >= 2 * n,
        what="stats",
    )

    stats = worker.stats()
    assert stats is not None
    per_statement = {s["statement"]: s for s in stats["statements"]}
    assert (
        per_statement[1]["delivered"]
        == len([r for r in recorder.requests if r.path.startswith("/dev/")])
        == n
    )
    assert per_statement[2]["delivered"] == len(recorder.requests_for("all")) == n
    assert (
        per_statement[1]["latency_ms_p50"] is not None
        and per_statement[1]["latency_ms_p99"] >= per_statement[1]["latency_ms_p50"]
    )
    assert sum(per_statement[1]["rate_history"]) > 0
    w = stats["worker"]
    assert w["coap_server"] == recorder.uri and w["security"] == "none (coap://)"
    assert {(p["topic"], p["partition"]) for p in w["partitions"]} == {(topic, 0), (topic, 1)}
    assert all(p["next_offset"] == n // 2 for p in w["partitions"])

    content_type, text = fetch(worker.web_port, "/metrics")
    assert content_type.startswith("text/plain")
    metrics = metric_samples(text)
    for path in ("/coap/", "/coap/stats.json", "/metrics", "/healthz", "/readyz"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert status_of(worker.web_port, path, method) == 405, (method, path)  # read-only endpoints
    assert metrics[("streamapp_asyncio_tasks", ())] >= 1
    assert metrics[("process_open_fds", ())] >= 1 and metrics[("process_resident_memory_bytes", ())] > 0
    for statement, resource in ((1, "dev/{d}"), (2, "all")):
        labels = (("resource", resource), ("statement", str(statement)), ("topic", topic))
        assert metrics[("streamapp_records_delivered_total", labels)] == n
        assert metrics[("streamapp_delivery_latency_seconds_count", labels)] >= 1
    lag = {k: v for k, v in metrics.items() if k[0] == "streamapp_consumer_lag"}
    assert lag and all(v == 0 for v in lag.values()), lag

    content_type, page = fetch(worker.web_port, "/coap/")
    assert content_type.startswith("text/html")
    assert "http://" not in page and "https://" not in page, "the page must work offline (no external assets)"
    assert worker.stop() == 0


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="no Chromium: `make install` installs Debian's chromium"
)
async def test_the_page_updates_itself_in_a_browser_while_records_flow(
    broker: KafkaBroker, recorder: RecordingCoapServer, start_worker, unique: str
) -> None:
    topic = f"{unique}-t"
    await broker.create_topic(topic, partitions=1)
    recorder.set_delay(0.02)  # ~50 records/s, so the count visibly rises while the browser watches
    worker = start_worker(
        {
            "name": unique,
            "connect.coap.uri": recorder.uri,
            "connect.coap.kcql": f"INSERT INTO sensors/{{room}} SELECT t, room FROM {topic}",
        }
    )
    await broker.produce(
        topic, [json.dumps({"t": 20 + i % 7, "room": f"r{i % 3}"}).encode() for i in range(400)]
    )
    worker.wait_until(lambda: len(recorder.requests) >= 20, what="the first deliveries")
    async with async_playwright() as playwright:
        # Debian's chromium, driven by Playwright; no browser is downloaded (make install installs chromium).
        browser = await playwright.chromium.launch(executable_path=shutil.which("chromium"))
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        loads = []
        page.on("load", lambda _page: loads.append(1))
        await page.goto(f"http://127.0.0.1:{worker.web_port}/coap/")
        delivered = page.locator('[data-statement="1"] [data-field="delivered"]')

        async def shown() -> int:
            return int((await delivered.text_content() or "0").replace(",", "") or 0)

        await delivered.wait_for()
        first = await shown()
        await page.wait_for_function(
            'n => Number(document.querySelector(\'[data-statement="1"] [data-field="delivered"]\')'
            ".textContent.replace(/,/g, '')) >= n",
            arg=first + 30,
            timeout=30_000,
        )
        assert await shown() > first
        assert loads == [1], "the page must refresh its numbers without reloading"
        assert await page.locator("#server").text_content() == recorder.uri
        shot = ARTIFACTS / "stats-page.png"
        await page.screenshot(path=shot)
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 5000
        phone = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        await phone.goto(f"http://127.0.0.1:{worker.web_port}/coap/")
        await phone.locator('[data-statement="1"] [data-field="delivered"]').wait_for()
        assert await phone.evaluate("document.documentElement.scrollWidth") <= 390, "too wide for a phone"
        await phone.screenshot(path=ARTIFACTS / "stats-page-phone.png")
        await browser.close()
    assert worker.stop() == 0
