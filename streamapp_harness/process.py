"""What every local peer launcher shares: a child process in its own process group with a log file
(:class:`PeerProcess`), free loopback ports, and waits that poll a condition with a deadline.

Rules the launchers follow (``kafka_broker.py``, ``tansu.py``, ``libcoap.py`` and the JVM peers):

* Everything binds to 127.0.0.1 only.
* Every wait is a poll of a condition with a deadline (:func:`wait_until` / :func:`async_wait_until`);
  nothing sleeps a fixed time and hopes.
* Each launched program runs in its own process group, so :meth:`PeerProcess.stop` (and ``pause`` /
  ``resume``) reach it and anything it forks, never unrelated processes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self, TypeVar

__all__ = [
    "LOCALHOST",
    "PeerError",
    "PeerProcess",
    "async_wait_until",
    "free_port",
    "free_udp_tcp_ports",
    "log_tail",
    "port_is_free",
    "run_in_fresh_loop",
    "wait_until",
]

LOCALHOST = "127.0.0.1"

_T = TypeVar("_T")


class PeerError(RuntimeError):
    """A local peer could not be started, died, or answered something unexpected."""


def free_port(kind: Literal["tcp", "udp"] = "tcp", host: str = LOCALHOST) -> int:
    """Return a port on ``host`` that the OS reported free for ``kind`` a moment ago.

    The port is released before returning, so another process can grab it in between; launchers below
    detect that and retry when they chose the port themselves.
    """
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, sock_type) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, kind: Literal["tcp", "udp"], host: str = LOCALHOST) -> bool:
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, sock_type) as sock:
        if kind == "tcp":
            # Like the servers themselves: ignore TIME_WAIT leftovers, fail only on a live listener.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_udp_tcp_ports(count: int, host: str = LOCALHOST, attempts: int = 50) -> int:
    """Return P such that P..P+count-1 are free for both UDP and TCP (libcoap binds both on its ports)."""
    for _ in range(attempts):
        base = free_port("udp", host)
        if base + count - 1 > 65535:
            continue
        if all(port_is_free(p, kind, host) for p in range(base, base + count) for kind in ("udp", "tcp")):
            return base
    raise PeerError(f"no block of {count} UDP+TCP ports free on {host} after {attempts} attempts")


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it returns true; raise ``TimeoutError`` once ``timeout`` seconds have passed.

    Exceptions raised by ``predicate`` propagate at once (use that to fail fast, e.g. when a process died).
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(min(interval, remaining))


async def async_wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Async twin of :func:`wait_until`; ``predicate`` may be a plain or an async callable."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(min(interval, remaining))


def run_in_fresh_loop(coro_fn: Callable[[], Awaitable[_T]]) -> _T:
    """Run an async function to completion in a new event loop in a worker thread.

    Lets the synchronous ``start()`` use aiokafka even when called from inside a running loop (an async
    pytest fixture, the demo CLI), where ``asyncio.run`` in the current thread is not allowed.
    """

    async def main() -> _T:
        return await coro_fn()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="peers-probe") as pool:
        return pool.submit(asyncio.run, main()).result()


def log_tail(path: Path | None, lines: int = 20) -> str:
    if path is None:
        return "(no log file; pass log_path to keep the output)"
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class PeerProcess:
    """A child process in its own process group with an optional log file: the shared plumbing."""

    def __init__(self, name: str, log_path: str | os.PathLike[str] | None) -> None:
        self._name = name
        self._log_path = Path(log_path) if log_path is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._paused = False

    def start(self) -> Self:
        raise NotImplementedError  # each peer launches and waits for readiness its own way

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn(self, argv: Sequence[str | bytes], env: dict[str, str] | None = None) -> None:
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_path.open("ab")
        out: IO[bytes] | int = self._log if self._log is not None else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group: signals reach only this peer
        )

    @property
    def pid(self) -> int | None:
        """PID of the running process, or None when not running."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def _check_alive(self) -> None:
        if self._proc is None:
            raise PeerError(f"{self._name} was not started")
        code = self._proc.poll()
        if code is not None:
            raise PeerError(f"{self._name} exited with code {code}; log tail:\n{log_tail(self._log_path)}")

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def pause(self) -> None:
        """Freeze the peer (SIGSTOP to its process group): sockets stay open but nothing answers."""
        self._check_alive()
        self._signal_group(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        self._check_alive()
        self._signal_group(signal.SIGCONT)
        self._paused = False

    def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        """SIGTERM the process group, wait up to ``timeout`` s, then SIGKILL. Idempotent.

        ``kill``: SIGKILL at once, as a crash would (no goodbye to clients, e.g. no DTLS close_notify).
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None and kill:
                self._signal_group_of(proc, signal.SIGKILL)
                proc.wait(timeout=timeout)
            if proc.poll() is None:
                if self._paused:
                    self._signal_group_of(proc, signal.SIGCONT)  # a stopped process never sees SIGTERM
                self._signal_group_of(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group_of(proc, signal.SIGKILL)
                    proc.wait(timeout=timeout)
            # The leader may be gone while a forked child lingers in the group: make sure it is gone too.
            self._signal_group_of(proc, signal.SIGKILL)
        self._paused = False
        if self._log is not None:
            self._log.close()
            self._log = None

    @staticmethod
    def _signal_group_of(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
