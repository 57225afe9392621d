"""JVM peers from Maven Central: a small pom per peer, its jars fetched once into a cache, and ``java``.

Each peer the tests run on the JVM (Apache Kafka, Kafka Connect with stream-reactor's CoAP sink,
Californium, Apicurio Registry) has its own pom in ``streamapp_harness/jvm/<peer>/pom.xml``. The pom lists
what the peer needs and nothing runs from it: :func:`fetch` asks Maven to copy the pom's dependencies
(``mvn dependency:copy-dependencies``) into ``<cache>/<peer>-<hash of the pom>/``, once. The next run finds
the folder complete and starts no Maven at all, so a second ``make test`` downloads nothing; changing a pom
changes its hash, so a new set is fetched beside the old one. Maven's own repository (``~/.m2``) is its
cache of the downloads themselves.

The cache lives in ``$STREAMAPP_JVM_CACHE``, else ``$XDG_CACHE_HOME/streamapp/jvm``, else
``~/.cache/streamapp/jvm``. A lock file per peer lets two processes (a test run and a benchmark) fetch at
the same time without tearing a folder: the second waits, then finds it complete.

Only Maven Central is used (Maven's default); nothing Java ships in the ``streamapp`` package. The one jar
Central lacks, stream-reactor's CoAP sink, is built from its vendored source by ``stream_reactor_jar.py``,
which fetches its compiler and compile-only classpath with :func:`fetch_pom` into the same cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["PEERS", "JvmError", "cache_root", "classpath", "fetch", "fetch_pom", "java", "jdk_tool", "locked"]

POMS = Path(__file__).resolve().parent / "jvm"

#: The peers that have a pom here (folder names under ``streamapp_harness/jvm/``).
PEERS = tuple(sorted(p.name for p in POMS.iterdir() if (p / "pom.xml").is_file()))

#: Written last into a peer's folder: its presence means every jar was copied.
_COMPLETE = ".complete"

#: Maven prints progress for each download without ``-q``; a first fetch is minutes on a slow mirror.
FETCH_TIMEOUT_S = 1200.0


class JvmError(RuntimeError):
    """Maven could not fetch a peer's jars, or no Java runtime was found."""


def cache_root() -> Path:
    explicit = os.environ.get("STREAMAPP_JVM_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamapp" / "jvm"


def _pom(peer: str) -> Path:
    pom = POMS / peer / "pom.xml"
    if not pom.is_file():
        raise JvmError(f"no pom for JVM peer {peer!r}: expected {pom} (known: {', '.join(PEERS)})")
    return pom


def _folder(name: str, pom: Path) -> Path:
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    return cache_root() / f"{name}-{digest}"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if missing) for as long as the block runs: two processes
    filling the same cache folder take turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch(peer: str, *, log: Path | None = None) -> Path:
    """The folder holding every jar (and other artifact) of ``peer``'s pom, fetched on first use."""
    return fetch_pom(peer, _pom(peer), log=log)


def fetch_pom(name: str, pom: Path, *, log: Path | None = None) -> Path:
    """:func:`fetch` for a pom that is not a peer's own (a build's compiler or compile-only classpath):
    its dependencies in ``<cache>/<name>-<hash of the pom>/``, fetched on first use."""
    folder = _folder(name, pom)
    if (folder / _COMPLETE).is_file():
        return folder
    with locked(folder.with_name(folder.name + ".lock")):
        if (folder / _COMPLETE).is_file():
            return folder  # another process fetched it while we waited
        mvn = shutil.which("mvn")
        if mvn is None:
            raise JvmError("mvn not found: the JVM peers are fetched from Maven Central with Maven")
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
        argv = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False)
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text(done.stdout + done.stderr)
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
                raise JvmError(f"Maven could not fetch the jars of {name} ({' '.join(argv)}):\n{tail}")
            (staging / _COMPLETE).write_text(" ".join(argv) + "\n")
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def classpath(peer: str, *extra: Path) -> str:
    """A ``-cp`` value: every jar of ``peer`` (and ``extra`` folders or jars first)."""
    folder = fetch(peer)
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    return os.pathsep.join([*(str(e) for e in extra), *jars])


def java(args: Sequence[str] = ()) -> list[str]:
    """``java`` (``$JAVA_HOME/bin/java`` when set) followed by ``args``."""
    home = os.environ.get("JAVA_HOME")
    binary = Path(home) / "bin" / "java" if home else shutil.which("java")
    if binary is None or not Path(binary).exists():
        raise JvmError("no java found (set JAVA_HOME or put java on PATH): the JVM peers need Java 17")
    return [str(binary), *args]


def jdk_tool(name: str) -> str:
    """A JDK tool (``javac``...) from ``$JAVA_HOME/bin`` when set, else from ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / name) if home else shutil.which(name)
    if found is None or not Path(found).exists():
        raise JvmError(
            f"{name} not found (set JAVA_HOME or put it on PATH): it needs a JDK "
            "(Debian: openjdk-17-jdk-headless), not only a JRE"
        )
    return found
