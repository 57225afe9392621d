"""Self-test of tests/browser.py: a real headless Chromium watches a live number change on a local page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.browser import HeadlessChromium, JavaScriptError, chromium_executable
from tests.threaded_server import ThreadedServer

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

PAGE = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>browser self-test</title>
<style>
  body { font-family: sans-serif; margin: 2rem; background: #f4f6fb; }
  h1 { font-size: 4rem; color: #123; border: 4px solid #3a6; padding: 1rem; }
</style>
</head>
<body>
<h1>Count: <span id="n">?</span></h1>
<script>
async function tick() {
  try {
    const response = await fetch("/count", { cache: "no-store" });
    document.getElementById("n").textContent = await response.text();
  } catch (e) {
    /* the next tick retries */
  }
  setTimeout(tick, 200);
}
tick();
</script>
</body>
</html>
"""


class CounterPage(ThreadedServer):
    """``/`` serves :data:`PAGE`; ``/count`` answers the current :attr:`count` as text."""

    thread_name = "counter-page"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._count = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    def increment(self) -> int:
        with self._lock:
            self._count += 1
            return self._count

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def _counter(self, request: web.Request) -> web.Response:
        with self._lock:
            count = self._count
        return web.Response(text=str(count), headers={"Cache-Control": "no-store"})

    async def _open(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/count", self._counter)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner, self.port = runner, int(runner.addresses[0][1])

    async def _close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


@pytest.fixture
def page() -> Iterator[CounterPage]:
    with CounterPage() as server:
        yield server


@pytest.fixture
def browser() -> Iterator[HeadlessChromium]:
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no Chromium executable on PATH (install Debian's package: apt-get install -y chromium)")
    with HeadlessChromium(executable=executable) as running:
        yield running


@pytest.mark.timeout(60)
def test_page_updates_live_without_reload(page: CounterPage, browser: HeadlessChromium) -> None:
    browser.open(page.url)
    assert browser.evaluate("document.title") == "browser self-test"
    assert browser.evaluate("[window.innerWidth, window.innerHeight]") == [1280, 900]
    browser.wait_for("document.querySelector('#n').textContent === '0'", timeout=10)

    page.increment()
    assert browser.wait_for("document.querySelector('#n').textContent === '1'", timeout=10) is True
    assert browser.text("#n") == "1"
    assert browser.text("#missing") is None
    assert browser.reloads() == 0

    shot = browser.screenshot(ARTIFACTS / "browser-selftest.png")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1024

    browser.set_viewport(390, 844, mobile=True)
    assert browser.evaluate("window.innerWidth") == 390
    assert browser.reloads() == 0

    # The counter is not vacuous: a real reload is seen.
    browser.evaluate("location.reload()")
    browser.wait_for("performance.getEntriesByType('navigation')[0].type === 'reload'", timeout=10)
    assert browser.reloads() == 1


def test_evaluate_raises_the_javascript_error(page: CounterPage, browser: HeadlessChromium) -> None:
    browser.open(page.url)
    with pytest.raises(JavaScriptError, match="ReferenceError: nope is not defined"):
        browser.evaluate("nope.nothing")
