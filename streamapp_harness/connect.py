"""stream-reactor's CoAP sink, the connector streamapp replaces, running for real: Apache Kafka Connect's
standalone worker (``ConnectStandalone``, Kafka 4.4.0 from ``jvm/connect/pom.xml``) with
``com.datamountaineer.streamreactor.connect.coap.sink.CoapSinkConnector`` 1.2.0 as an isolated plugin.

Usage::

    with KafkaConnectStandalone(
        broker.bootstrap,
        {"name": "coap-sink", "topics": "readings",
         "connect.coap.uri": server.uri, "connect.coap.kcql": "INSERT INTO sensors SELECT * FROM readings"},
        workdir=tmp_path / "connect",
        worker={"offset.flush.interval.ms": "1000"},
    ) as connect:
        ...  # records on "readings" arrive as PUTs to /sensors; the group is connect.group

Several connectors in one worker, as a Connect cluster runs them: give a list of connector dicts (each with
its own ``name``); the methods that read a connector's status take ``name=`` (default: the first). They
share the JVM and so Californium's default endpoint (one UDP port for every plain ``coap://`` client, as in
any Connect worker running several CoAP sinks); each has its own task, consumer group and offsets.

:meth:`start` returns once every connector and task is RUNNING (``GET /connectors/<name>/status`` on
the worker's REST port, 127.0.0.1), polled with a deadline; a task that FAILED, or a worker that exited,
raises :class:`PeerError` with the trace or the log's tail. :meth:`stop` is SIGTERM (a graceful Connect
shutdown: the task's ``stop()`` and a last offset commit), then SIGKILL after ``timeout``; :meth:`kill` is
SIGKILL. The JVM runs in its own process group with ``workdir`` as its working directory (Californium
writes ``Californium.properties`` there) and logs to ``workdir/connect.log`` unless told otherwise.

Where the connector comes from: the Maven Central this project reaches answers 404 for
``com.datamountaineer:kafka-connect-coap`` (every version, pom and jar), so the jar is built from the
connector's released 1.2.0 source, kept unmodified in ``jvm/stream-reactor-coap/source/``, once into the JVM
cache (:mod:`streamapp_harness.stream_reactor_jar`; ``make jars`` does it). An operator's own jar replaces it:
``connector_jar=``, else ``$STREAMAPP_STREAM_REACTOR_COAP_JAR``; :func:`connector_jar` says which. Its
libraries, all on Maven Central, are ``jvm/stream-reactor-coap/pom.xml``. The facts below were measured with
that built jar.

Why a plugin folder (``plugin.path``) and not the worker's classpath: the connector is Scala 2.11 code built
against Kafka 2.0 and brings Jackson 2.6, Guava 18, Avro 1.8, json4s, Calcite 1.12 and Netty 4.1.1, while the
worker runs Jackson 2.21, Jetty 12 and Jersey 3. In its own folder the connector gets a ``PluginClassLoader``
that takes everything from its own jars first except the Connect/Kafka API (``org.apache.kafka``), slf4j and
the JDK, which come from the worker, so neither side sees the other's library versions. The old jars carry no
``META-INF/services`` manifests, so the worker must scan classes (``plugin.discovery=only_scan``; the 4.x
default ``hybrid_warn`` would also find it, with a warning).

Facts measured here (Connect 4.4.0, OpenJDK 17, 2 cores; the commands are in the spike's report):

* Connect 4.4.0 loads and runs the 1.2.0 sink unchanged (it overrides neither of the
  ``onPartitionsAssigned``/``onPartitionsRevoked`` methods that Connect 4.0 removed). Discovery:
  ``only_scan`` and ``hybrid_warn`` find it (the latter warns about missing manifests); ``service_load``
  exits 3 with "Failed to find any class that implements Connector".
* JVM start to task RUNNING: 7-15 s on an idle machine, up to ~25 s beside another busy JVM; most of it is
  the class scan of the plugin folder (54 jars) and of the worker's classpath. ``jvm_args=
  ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]`` cut it to ~7 s (not the default: a C1-only JVM would
  handicap stream-reactor in any throughput comparison).
* The task's ``start()`` sends ``GET /.well-known/core`` (Californium's ``discover()``; the answer is only
  logged) and waits for it: with no server answering, the task becomes RUNNING only after Californium gives
  up, 62-93 s later (4 retransmissions, the first after a random 2-3 s, doubling: 31 times that in all).
* Each record is one synchronous CON PUT to ``<connect.coap.uri>/<KCQL target>`` with Content-Format 50
  (application/json); the next record waits for the answer. Values over 1024 bytes go block-wise (Block1,
  512-byte blocks). A non-2.xx answer fails the batch; no answer makes ``put`` fail after the same 62-93 s
  (the client's null response), and the task is FAILED only after the DELETE of its stop timed out too.
* The payload is the record value only (key and headers are never sent). A schemaless value (JsonConverter
  with ``schemas.enable=false``, the worker default here) is a ``java.util.HashMap`` re-serialised by Jackson:
  compact (no spaces) and in hash order, nested objects too, not the producer's field order. A string value
  (StringConverter) is parsed and re-rendered compactly by json4s in the producer's order (``2.50`` ->
  ``2.5``, ``1e3`` -> ``1000.0``, ``\u00e9`` -> UTF-8); a JSON string, number or array passes, a non-JSON
  string fails.
  A Struct value (JsonConverter with schemas) is rendered in schema order, bytes as base64.
* KCQL field selection on a schemaless value only renames: ``SELECT x AS a, y`` of ``{x,y,z,w}`` sends
  ``{a,y,z,w}``. On a Struct it selects (``{id, t}``).
* A tombstone (null value) fails the record ("The sink record value is null") under THROW; NOOP skips it.
  A schemaless value that is not an object fails too; a value the worker's converter cannot read fails the
  whole polled batch before any PUT of it.
* RETRY (``connect.coap.error.policy``) redelivers the whole batch: records before the failing one are PUT
  again (duplicates).
* Stopping the task sends ``DELETE`` to the target resource: at a graceful stop (SIGTERM), when the
  connector is deleted (REST), and when the task fails. SIGKILL sends nothing.
* Offsets: Connect commits the group ``connect-<name>`` every ``offset.flush.interval.ms`` (Connect's
  default 60 000 ms) and once more at a graceful stop; the sink's ``flush()`` does nothing, so a commit is
  of whatever ``put()`` returned from. A failed batch is never committed; SIGKILL commits nothing since the
  last interval.
* ``coaps://`` with a PSK (``connect.coap.username``/``password``) cannot work in 1.2.0: the sink registers
  the PSK for its own bind address, so Scandium aborts the handshake ("No Identity found for peer") and the
  task never becomes RUNNING.

The worker's defaults here: key converter StringConverter, value converter JsonConverter without schemas,
file offset storage in ``workdir``, REST on a free 127.0.0.1 port; ``worker=`` overrides any of them. A
connector's own ``value.converter`` (or ``key.converter``) replaces the worker's for that connector, with its
``value.converter.*`` settings; a ``value.converter.schemas.enable`` without ``value.converter`` beside it is
ignored (the worker's converter and settings stay).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from streamapp_harness import jvm, stream_reactor_jar
from streamapp_harness.process import LOCALHOST, PeerError, PeerProcess, free_port, log_tail, wait_until

__all__ = [
    "CONNECTOR_CLASS",
    "CONNECTOR_JAR_ENV",
    "KafkaConnectStandalone",
    "connector_jar",
]

#: The sink's class, as stream-reactor 1.2.0's docs name it.
CONNECTOR_CLASS = "com.datamountaineer.streamreactor.connect.coap.sink.CoapSinkConnector"

#: Where to find the connector's own jar when ``connector_jar=`` is not given.
CONNECTOR_JAR_ENV = "STREAMAPP_STREAM_REACTOR_COAP_JAR"

#: The plugin folder's name under ``workdir/plugins``.
_PLUGIN = "stream-reactor-coap"

#: The worker's log: Connect's own pattern less the source line; ``%X{connector.context}`` names the connector
#: and task (``[coap-sink|task-0] ``) on their lines, which tells them apart in a worker running several.
_LOG4J2 = """\
status = error
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %X{connector.context}%m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
"""


def connector_jar(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The CoAP sink's jar: ``explicit``, else ``$STREAMAPP_STREAM_REACTOR_COAP_JAR`` (an operator's own
    released jar), else the one built from the vendored source (built now if the cache lacks it). A jar
    named but missing is an error, not a fall-back to the built one: the run would not test what was asked.
    """
    given = explicit if explicit is not None else os.environ.get(CONNECTOR_JAR_ENV) or None
    if given is None:
        return stream_reactor_jar.build()
    if not Path(given).is_file():
        source = "connector_jar=" if explicit is not None else f"${CONNECTOR_JAR_ENV}"
        raise PeerError(f"no stream-reactor CoAP sink jar at {given} (named by {source})")
    return Path(given)


def _escape(text: str, *, key: bool) -> str:
    """``text`` as java.util.Properties reads it back (a key also escapes its separators)."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if key:
        for char in " =:#!":
            out = out.replace(char, "\\" + char)
    elif out.startswith(" "):
        out = "\\" + out
    return out


def _properties(values: Mapping[str, str]) -> str:
    return "".join(f"{_escape(k, key=True)}={_escape(str(v), key=False)}\n" for k, v in values.items())


class KafkaConnectStandalone(PeerProcess):
    """One Connect standalone worker running one CoAP sink connector, or several (see the module
    docstring)."""

    def __init__(
        self,
        bootstrap: str,
        connector: Mapping[str, str] | Sequence[Mapping[str, str]],
        workdir: str | os.PathLike[str],
        *,
        worker: Mapping[str, str] | None = None,
        connector_jar: str | os.PathLike[str] | None = None,
        rest_port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 120.0,
        heap: str = "512m",
        jvm_args: Sequence[str] = (),
    ) -> None:
        """``connector``: the keys of a coap-sink.properties (``name``, ``topics``, ``connect.coap.*``...);
        ``connector.class`` and ``tasks.max`` default to the CoAP sink and 1, ``name`` to ``coap-sink``;
        or a list of such dicts, each with its own ``name``, all run by this one worker.
        ``worker``: worker properties that replace or add to the defaults (``offset.flush.interval.ms``...).
        ``connector_jar``: the connector's jar (default: :func:`connector_jar`'s choice).
        ``startup_timeout``: the deadline for the task to be RUNNING, after the jars are fetched or built."""
        self.workdir = Path(workdir).resolve()
        super().__init__("kafka connect", log_path if log_path is not None else self.workdir / "connect.log")
        self.bootstrap = bootstrap
        given = [connector] if isinstance(connector, Mapping) else list(connector)
        #: Each connector's properties, defaults filled in, in the order given.
        self.connectors = [
            {"name": "coap-sink", "connector.class": CONNECTOR_CLASS, "tasks.max": "1"}
            | {k: str(v) for k, v in c.items()}
            for c in given
        ]
        names = [c["name"] for c in self.connectors]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"one worker needs at least one connector and a name for each: {names}")
        self._worker_overrides = {k: str(v) for k, v in (worker or {}).items()}
        self._connector_jar = connector_jar
        self._fixed_rest_port = rest_port is not None
        self._rest_port = rest_port if rest_port is not None else free_port("tcp")
        self._startup_timeout = startup_timeout
        self._heap = heap
        self._jvm_args = tuple(jvm_args)
        #: Seconds from spawning the JVM to every task RUNNING, set by :meth:`start`.
        self.startup_seconds: float | None = None

    # -- names -----------------------------------------------------------------------------------------------

    @property
    def connector(self) -> dict[str, str]:
        """The (first) connector's properties."""
        return self.connectors[0]

    @property
    def name(self) -> str:
        """The (first) connector's name."""
        return self.connector["name"]

    @property
    def names(self) -> list[str]:
        """Every connector's name, in the order given."""
        return [c["name"] for c in self.connectors]

    @property
    def group(self) -> str:
        """The consumer group of the (first) sink's tasks: ``connect-<name>``."""
        return self.group_of(self.name)

    @staticmethod
    def group_of(name: str) -> str:
        """The consumer group of connector ``name``'s tasks (Connect's ``connect-<name>``)."""
        return f"connect-{name}"

    @property
    def rest_port(self) -> int:
        return self._rest_port

    @property
    def rest_url(self) -> str:
        return f"http://{LOCALHOST}:{self._rest_port}"

    @property
    def log_path(self) -> Path:
        assert self._log_path is not None
        return self._log_path

    @property
    def californium_properties(self) -> Path:
        """Where Californium writes its defaults when the task starts (the JVM's working directory)."""
        return self.workdir / "Californium.properties"

    def worker_properties(self) -> dict[str, str]:
        """The worker's properties as :meth:`start` writes them."""
        props = {
            "bootstrap.servers": self.bootstrap,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "offset.storage.file.filename": str(self.workdir / "connect.offsets"),
            "plugin.path": str(self.workdir / "plugins"),
            "plugin.discovery": "only_scan",
            "listeners": f"http://{LOCALHOST}:{self._rest_port}",
            "rest.advertised.host.name": LOCALHOST,
            "rest.advertised.port": str(self._rest_port),
        }
        props.update(self._worker_overrides)
        return props

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _plugin_folder(self) -> Path:
        """``workdir/plugins/stream-reactor-coap``: links to the cached library jars and the connector jar."""
        jar = connector_jar(self._connector_jar)
        folder = self.workdir / "plugins" / _PLUGIN
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for lib in sorted(jvm.fetch("stream-reactor-coap").glob("*.jar")):
            (folder / lib.name).symlink_to(lib)
        (folder / jar.name).symlink_to(jar.resolve())
        return folder

    def _argv(self) -> list[str]:
        return jvm.java(
            [
                f"-Xmx{self._heap}",
                "-cp",
                jvm.classpath("connect"),
                f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
                *self._jvm_args,
                "org.apache.kafka.connect.cli.ConnectStandalone",
                str(self.workdir / "worker.properties"),
                *(str(path) for path in self._connector_files()),
            ]
        )

    def _connector_files(self) -> list[Path]:
        """``connector.properties`` for one connector, ``connector-<name>.properties`` for each of several."""
        if len(self.connectors) == 1:
            return [self.workdir / "connector.properties"]
        return [self.workdir / f"connector-{name}.properties" for name in self.names]

    def _spawn_in_workdir(self, argv: Sequence[str]) -> None:
        """:meth:`PeerProcess._spawn` with ``workdir`` as the working directory."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,  # own process group: signals reach only this worker
        )

    def start(self, *, failed_ok: bool | Collection[str] = False) -> Self:
        """Write the properties, start the worker and wait until every connector and task is RUNNING.

        ``failed_ok``: a task that is FAILED also counts as started (for records already on the topic that
        fail the task at its first ``put``, which may happen before a status poll saw it RUNNING); True for
        every connector, or the names of those it applies to."""
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        jvm.fetch("connect")  # fetched (once) outside the readiness deadline
        self._plugin_folder()
        (self.workdir / "log4j2.properties").write_text(_LOG4J2)
        for path, connector in zip(self._connector_files(), self.connectors, strict=True):
            path.write_text(_properties(connector))
        may_fail = set(self.names) if failed_ok is True else set(failed_ok or ())
        attempts = 1 if self._fixed_rest_port else 3
        for attempt in range(attempts):
            (self.workdir / "worker.properties").write_text(_properties(self.worker_properties()))
            began = time.monotonic()
            self._spawn_in_workdir(self._argv())
            try:
                wait_until(
                    lambda: all(self._tasks_running(name, failed_ok=name in may_fail) for name in self.names),
                    timeout=self._startup_timeout,
                    interval=0.2,
                    what=f"connectors {', '.join(self.names)} and their tasks RUNNING at {self.rest_url}",
                )
            except PeerError:
                text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
                self.stop()
                if attempt + 1 < attempts and "Address already in use" in text:
                    self._rest_port = free_port("tcp")  # someone took the REST port meanwhile
                    continue
                raise
            except TimeoutError as exc:
                last = "; ".join(self._last_status(name) for name in self.names)
                self.stop()
                raise PeerError(f"{exc}; last status: {last}\nlog tail:\n{self._tail()}") from exc
            except BaseException:
                self.stop()
                raise
            self.startup_seconds = time.monotonic() - began
            return self
        raise AssertionError("unreachable")

    def kill(self) -> None:
        """SIGKILL the worker at once: no task ``stop()`` (no DELETE) and no last offset commit."""
        self.stop(kill=True)

    def stop(self, timeout: float = 30.0, *, kill: bool = False) -> None:
        """SIGTERM (Connect stops the task, which sends DELETE, and commits offsets), SIGKILL after
        ``timeout`` s; ``kill=True`` is :meth:`kill`. Idempotent."""
        super().stop(timeout, kill=kill)

    # -- REST ------------------------------------------------------------------------------------------------

    def rest(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
        """One call to the worker's REST API: (HTTP status, decoded JSON body or None)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.rest_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw) if raw else None
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def status(self, name: str | None = None) -> dict[str, Any]:
        """``GET /connectors/<name>/status`` (default: the first connector); raises :class:`PeerError`
        unless it answers 200."""
        name = name or self.name
        code, body = self.rest("GET", f"/connectors/{name}/status")
        if code != 200:
            raise PeerError(f"GET /connectors/{name}/status answered {code}: {body}")
        status: dict[str, Any] = body
        return status

    def task_states(self, name: str | None = None) -> list[str]:
        """Each task's state (RUNNING, FAILED, PAUSED, UNASSIGNED), in task-id order."""
        tasks = sorted(self.status(name).get("tasks", []), key=lambda t: t["id"])
        return [t["state"] for t in tasks]

    def wait_for_task_state(self, state: str, timeout: float, name: str | None = None) -> dict[str, Any]:
        """Poll until every task of connector ``name`` (default: the first) is in ``state`` (e.g.
        ``"FAILED"`` after a THROW); return its status."""
        name = name or self.name
        seen: dict[str, Any] = {}

        def reached() -> bool:
            self._check_alive()
            seen.update(self.status(name))
            tasks = seen.get("tasks", [])
            return bool(tasks) and all(t["state"] == state for t in tasks)

        wait_until(reached, timeout=timeout, interval=0.1, what=f"tasks of {name} {state}")
        return seen

    def _tasks_running(self, name: str, *, failed_ok: bool = False) -> bool:
        self._check_alive()
        try:
            code, body = self.rest("GET", f"/connectors/{name}/status", timeout=2.0)
        except (urllib.error.URLError, OSError):
            return False  # REST server not listening yet
        if code != 200 or not isinstance(body, dict):
            return False  # 404 until the connector is created
        tasks = body.get("tasks", [])
        if failed_ok and body.get("connector", {}).get("state") == "RUNNING" and tasks:
            return all(t.get("state") in ("RUNNING", "FAILED") for t in tasks)
        failed = [t for t in [body.get("connector", {}), *tasks] if t.get("state") == "FAILED"]
        if failed:
            trace = failed[0].get("trace", "(no trace)")
            raise PeerError(f"connector {name} FAILED while starting:\n{trace}\nlog tail:\n{self._tail()}")
        return (
            body.get("connector", {}).get("state") == "RUNNING"
            and bool(tasks)
            and all(t.get("state") == "RUNNING" for t in tasks)
        )

    def _last_status(self, name: str) -> str:
        try:
            code, body = self.rest("GET", f"/connectors/{name}/status", timeout=2.0)
        except (urllib.error.URLError, OSError) as exc:
            return f"(REST not answering: {exc})"
        return f"{code} {body}"

    def _tail(self) -> str:
        return log_tail(self._log_path, lines=30)
