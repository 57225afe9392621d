"""Drive a real headless Chromium (Debian's ``chromium`` package) from tests over the DevTools protocol.

No Playwright/Selenium/pyppeteer and no browser download: :class:`HeadlessChromium` starts the installed
binary with ``--remote-debugging-port=0``, reads the ``DevTools listening on ws://...`` line from its stderr
(which goes to a log file), and speaks CDP JSON-RPC over one aiohttp websocket to the browser endpoint. The
page is a target created with ``Target.createTarget`` and attached in *flatten* mode, so its commands travel
on that same websocket tagged with a ``sessionId``. The asyncio loop runs in a daemon thread
(:class:`tests.threaded_server.ThreadedServer`), so the API is synchronous.

Usage::

    with HeadlessChromium() as browser:
        browser.open(f"http://127.0.0.1:{port}/")
        browser.wait_for("document.querySelector('#n')?.textContent === '1'")
        assert browser.reloads() == 0
        browser.screenshot(Path("tests/artifacts/page.png"))
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import aiohttp

from tests.threaded_server import ThreadedServer

__all__ = ["BrowserError", "HeadlessChromium", "JavaScriptError", "chromium_executable"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_WS_LINE = re.compile(rb"DevTools listening on (ws://\S+)")
# Chromium logs these in containers without a D-Bus; they are harmless and would crowd out the useful tail.
_NOISE = re.compile(r"dbus/|Failed to connect to the bus|unexpected operator")
_MAX_MESSAGE = 256 * 1024 * 1024  # screenshots arrive base64-encoded in one message


def chromium_executable() -> str | None:
    """The first Chromium/Chrome binary on ``PATH`` (``/usr/bin/chromium`` on Debian), else ``None``."""
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """Chromium failed to start, died, or answered a DevTools command with an error."""


class JavaScriptError(BrowserError):
    """An expression given to :meth:`HeadlessChromium.evaluate` threw; the message is the JS error text."""


class HeadlessChromium(ThreadedServer):
    """A headless Chromium with one page (tab); a context manager, every method blocks until done.

    ``window`` is the page's viewport in CSS pixels (also passed as ``--window-size``).
    """

    thread_name = "headless-chromium"

    def __init__(self, *, executable: str | None = None, window: tuple[int, int] = (1280, 900)) -> None:
        super().__init__(startup_timeout=15.0)
        self._executable = executable or chromium_executable()
        self._window = window
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._log_path: Path | None = None
        # Loop-thread state.
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._session_id: str | None = None
        self._closed_reason: str | None = None
        self._navigations = 0  # main-frame Page.frameNavigated events
        self._baseline = 0  # ... as of the end of the last open()
        self._main_loader: str | None = None
        self._loaded_loader: str | None = None
        self._load_seen: asyncio.Event | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Launch Chromium, connect to it and open a blank page. No-op when running."""
        if self._proc is not None:
            return self
        if self._executable is None:
            raise BrowserError("no Chromium executable found (apt-get install chromium)")
        try:
            self._launch()
            super().start()  # runs _open() in the loop thread; calls stop() itself on failure
        except BaseException:
            self._reap()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """``Browser.close``, then terminate, then kill; remove the profile dir. Idempotent."""
        try:
            super().stop(timeout)
        finally:
            self._reap()

    def _launch(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="headless-chromium-"))
        profile = self._tmp / "profile"
        profile.mkdir()
        self._log_path = self._tmp / "chromium.log"
        width, height = self._window
        args = [
            self._executable or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--mute-audio",
            f"--window-size={width},{height}",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        with self._log_path.open("wb") as log:
            # Own session (process group), so a stuck browser can be killed together with its helpers.
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _wait_for_ws_url(self, timeout: float) -> str:
        """Poll the log for the ``DevTools listening on ws://...`` line (no pipe that could fill up)."""
        assert self._proc is not None and self._log_path is not None
        deadline = time.monotonic() + timeout
        while True:
            match = _WS_LINE.search(self._log_path.read_bytes())
            if match:
                return match.group(1).decode()
            if self._proc.poll() is not None:
                raise BrowserError(self._with_log(f"Chromium exited with code {self._proc.returncode}"))
            if time.monotonic() > deadline:
                raise BrowserError(self._with_log(f"no DevTools URL from Chromium within {timeout:g}s"))
            time.sleep(0.05)

    async def _open(self) -> None:
        ws_url = await asyncio.to_thread(self._wait_for_ws_url, 10.0)
        self._load_seen = asyncio.Event()
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(ws_url, max_msg_size=_MAX_MESSAGE, autoping=True)
        self._reader = asyncio.create_task(self._read())
        # Use the tab Chromium opened for ``about:blank`` (its size comes from --window-size; passing
        # width/height to Target.createTarget fails with "Target position can only be set for new windows").
        targets = (await self._send("Target.getTargets", session=False))["targetInfos"]
        pages = [t["targetId"] for t in targets if t["type"] == "page"]
        if pages:
            target_id = pages[0]
        else:
            created = await self._send("Target.createTarget", {"url": "about:blank"}, session=False)
            target_id = created["targetId"]
        attached = await self._send(
            "Target.attachToTarget", {"targetId": target_id, "flatten": True}, session=False
        )
        self._session_id = attached["sessionId"]
        await self._send("Page.enable")
        await self._send("Runtime.enable")
        # New headless takes browser chrome off --window-size (1280x900 gave a 1280x757 viewport): make the
        # page's viewport exactly ``window``.
        width, height = self._window
        await self._send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 0, "mobile": False},
        )

    async def _close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._send("Browser.close", session=False, timeout=3.0)
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._http is not None:
            await self._http.close()
        self._ws = self._reader = self._http = None

    def _reap(self) -> None:
        """Let Chromium exit after ``Browser.close``, else terminate, else kill; remove the temp dir."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(3.0)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(3.0)
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def _with_log(self, message: str, lines: int = 30) -> str:
        """``message`` followed by the tail of Chromium's log (known-harmless noise left out)."""
        try:
            text = self._log_path.read_text(errors="replace") if self._log_path else ""
        except OSError:
            text = ""
        tail = [line for line in text.splitlines() if line.strip() and not _NOISE.search(line)][-lines:]
        return message + "\n--- chromium log (tail) ---\n" + ("\n".join(tail) or "(empty)")

    # -- DevTools protocol (loop thread) ---------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: bool = True,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Send one command (to the page session unless ``session=False``) and return its ``result``."""
        if self._ws is None or self._ws.closed:
            raise BrowserError(self._with_log(f"{method}: not connected ({self._closed_reason or 'closed'})"))
        message: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = future
        try:
            await self._ws.send_str(json.dumps(message))
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(self._with_log(f"{method}: no answer within {timeout:g}s")) from None
        finally:
            self._pending.pop(message["id"], None)
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error'].get('message')} ({reply['error']})")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    future = self._pending.get(data["id"])
                    if future is not None and not future.done():
                        future.set_result(data)
                elif data.get("sessionId") == self._session_id:
                    self._on_event(data["method"], data.get("params", {}))
            self._closed_reason = f"websocket closed ({self._ws.close_code})"
        except Exception as exc:
            self._closed_reason = f"websocket failed: {exc!r}"
        finally:
            error = BrowserError(self._with_log(f"Chromium connection lost: {self._closed_reason}"))
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.frameNavigated":
            frame = params.get("frame", {})
            if not frame.get("parentId"):
                self._navigations += 1
                self._main_loader = frame.get("loaderId")
        elif method == "Page.loadEventFired":
            self._loaded_loader = self._main_loader
            assert self._load_seen is not None
            self._load_seen.set()

    async def _navigate(self, url: str, timeout: float) -> None:
        assert self._load_seen is not None
        result = await self._send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise BrowserError(f"navigating to {url} failed: {result['errorText']}")
        loader = result.get("loaderId")
        if loader is not None:  # None: a same-document navigation (fragment change), nothing to load
            while self._loaded_loader != loader:
                self._load_seen.clear()
                await self._load_seen.wait()
        self._baseline = self._navigations

    # -- public API (any thread but the loop's) -------------------------------------------------------------

    def _run(self, coroutine: Any, timeout: float) -> Any:
        if self._loop is None:
            coroutine.close()
            raise BrowserError("HeadlessChromium is not started")
        try:
            return self._call(coroutine, timeout)
        except TimeoutError as exc:
            if str(exc):
                raise
            raise TimeoutError(self._with_log(f"browser call timed out after {timeout:g}s")) from None

    def open(self, url: str, timeout: float = 15.0) -> None:
        """Navigate the page to ``url`` and wait for its load event; resets :meth:`reloads` to 0."""
        try:
            self._run(asyncio.wait_for(self._navigate(url, timeout), timeout), timeout + 1.0)
        except TimeoutError:
            raise TimeoutError(self._with_log(f"{url} did not load within {timeout:g}s")) from None

    def evaluate(self, expression: str, timeout: float = 5.0) -> Any:
        """The value of a JS expression (promises awaited, result returned by value; ``undefined`` -> None).

        Raises :class:`JavaScriptError` with the JS error text if it throws.
        """
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        result = self._run(self._send("Runtime.evaluate", params, timeout=timeout), timeout + 1.0)
        details = result.get("exceptionDetails")
        if details:
            exception = details.get("exception") or {}
            text = exception.get("description") or exception.get("value") or details.get("text")
            raise JavaScriptError(f"{expression!r} threw: {text}")
        return result.get("result", {}).get("value")

    def text(self, selector: str) -> str | None:
        """``document.querySelector(selector)?.textContent``; None if nothing matches."""
        return self.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent ?? null")

    def wait_for(self, expression: str, timeout: float = 15.0, interval: float = 0.05) -> Any:
        """Evaluate ``expression`` every ``interval`` s until it is truthy and return that value.

        A throwing expression counts as not yet true (e.g. an element that does not exist yet), as does a
        page mid-navigation ("Execution context was destroyed"); the ``TimeoutError`` after ``timeout`` s
        names the last value or error.
        """
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            remaining = deadline - time.monotonic()
            try:
                last = self.evaluate(expression, timeout=max(0.5, min(5.0, remaining)))
                if last:
                    return last
            except BrowserError as exc:
                if not isinstance(exc, JavaScriptError) and not str(exc).startswith(
                    "Runtime.evaluate failed"
                ):
                    raise
                last = exc
            if remaining <= 0:
                raise TimeoutError(f"{expression!r} not truthy within {timeout:g}s; last: {last!r}")
            time.sleep(min(interval, max(remaining, 0.0)))

    def reloads(self) -> int:
        """Main-frame navigations (``Page.frameNavigated``) since the last :meth:`open` finished."""
        return self._navigations - self._baseline

    def screenshot(self, path: Path) -> Path:
        """Write a PNG of the viewport to ``path`` (parent dirs created) and return ``path``."""
        result = self._run(self._send("Page.captureScreenshot", {"format": "png"}, timeout=15.0), 16.0)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(result["data"]))
        return path

    def set_viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """Emulate a ``width`` x ``height`` CSS-pixel viewport (``mobile``: meta viewport and touch too)."""
        metrics = {"width": width, "height": height, "deviceScaleFactor": 0, "mobile": mobile}
        self._run(self._send("Emulation.setDeviceMetricsOverride", metrics), 11.0)
        self._run(self._send("Emulation.setTouchEmulationEnabled", {"enabled": mobile}), 11.0)
