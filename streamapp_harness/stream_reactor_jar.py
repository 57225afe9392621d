"""stream-reactor's CoAP sink jar (``kafka-connect-coap-1.2.0.jar``), built once from its released source.

Why it is built here: the Maven Central this project (and its CI) reaches answers 404 for
``com.datamountaineer:kafka-connect-coap``, every version, while the connector's libraries are all there
(``jvm/stream-reactor-coap/pom.xml``). Its 1.2.0 source, the ``kafka-connect-coap/src/main`` tree of
stream-reactor's tag 1.2.0 (Apache-2.0), is kept unmodified in ``jvm/stream-reactor-coap/source/``
(``jvm/stream-reactor-coap/README.md`` says from which commit and how to check it), so a fresh clone runs the
real connector: :func:`build` compiles it into the JVM cache the first time it is needed (``make jars``
does it before the tests), and :mod:`streamapp_harness.connect` uses that jar unless an operator's own is
given (``$STREAMAPP_STREAM_REACTOR_COAP_JAR``).

The recipe, every input from Maven Central or this repository:

1. Maven fetches Scala 2.11.12's compiler (``compile/scalac.pom.xml``), the Kafka 2.0.0 API the release was
   built against (``compile/kafka-api.pom.xml``) and the connector's run-time libraries (``pom.xml``, the
   jars its plugin folder gets), each once, as :func:`streamapp_harness.jvm.fetch` does for the peers.
2. ``javac`` compiles two compile-only stand-ins of ours for Confluent's ``AvroConverter`` and ``AvroData``
   (``compile/stubs/``): type-checking the sink, scalac reads kafka-connect-common 1.1.7's ``ConverterUtil``,
   whose members have these types, and Maven Central does not serve ``io.confluent`` (without them: "Symbol
   'term io.confluent' is missing from the classpath"). They are on scalac's classpath only, never in the
   jar: at run time the plugin folder has no ``io.confluent`` class, as the release's had none.
3. scalac (``scala.tools.nsc.Main``, run as a plain JVM program) compiles the 12 Scala files against the
   libraries, Kafka's API and the stand-ins, for Java 8 class files (the release's ``targetCompatibility``).
   Scala 2.11.12, not the build's 2.11.7: 2.11.7's compiler cannot start on Java 9 and later ("object
   java.lang.Object in compiler mirror not found": there is no ``rt.jar``); the 2.11 line keeps one binary
   interface and the classes link against the plugin folder's ``scala-library`` 2.11.8.
4. The classes, the source's resources (two ASCII-art banners and a ``log4j.properties``) and
   ``compile/MANIFEST.MF`` (the release's attributes, its Created-By saying who built it) are zipped into the
   jar in a fixed order with fixed timestamps, so a rebuild from the same inputs is byte-for-byte the same.

The jar lands in ``<jvm cache>/stream-reactor-coap-jar-<hash>/`` where the hash covers every file under
``jvm/stream-reactor-coap/`` that goes into it (source, stand-ins, the three poms, the manifest) and
:data:`RECIPE`; a second run finds it and starts neither Maven nor a compiler. A lock lets two processes
ask at once: the second waits, then finds the jar. The cold build on 2 cores, fresh clone and empty cache:
27-64 s from an empty Maven repository (the downloads vary; the plugin folder's libraries included),
9-22 s when Maven already has the jars (almost all of it scalac). ``build.log`` beside the jar keeps the
commands and their output. The key does not depend on where the clone is: every clone builds the same jar,
byte for byte.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path

from streamapp_harness import jvm

__all__ = ["FOLDER", "JAR_NAME", "RECIPE", "BuildError", "build", "built", "inputs_digest"]

#: ``streamapp_harness/jvm/stream-reactor-coap``: the run-time pom, the vendored source, the build's inputs.
FOLDER = jvm.POMS / "stream-reactor-coap"
SOURCE = FOLDER / "source" / "main"
COMPILE = FOLDER / "compile"
JAR_NAME = "kafka-connect-coap-1.2.0.jar"

#: Part of the cache key: change it when the steps below change (a new flag), so the jar is rebuilt.
RECIPE = "scalac-2.11.12 -target:jvm-1.8; javac stubs, not packaged; zip with fixed timestamps; v1"

#: Longest the whole build may take (a first Maven download on a slow mirror, then scalac on 2 cores).
BUILD_TIMEOUT_S = 1200.0

#: Every entry's timestamp in the jar: the tag's commit date (2018-12-28), so rebuilds are identical.
_ENTRY_TIME = (2018, 12, 28, 12, 22, 38)


class BuildError(jvm.JvmError):
    """A step of the build failed (its command and output are in the message and in ``build.log``)."""


def _input_files() -> list[Path]:
    """Every file the jar is made from, in a fixed order (the README is documentation, not an input)."""
    files = [FOLDER / "pom.xml", *SOURCE.rglob("*"), *COMPILE.rglob("*")]
    return sorted((f for f in files if f.is_file()), key=lambda f: f.relative_to(FOLDER).as_posix())


def inputs_digest() -> str:
    """A hash of the build's inputs (each file's path and bytes) and :data:`RECIPE`."""
    digest = hashlib.sha256(RECIPE.encode())
    for path in _input_files():
        digest.update(path.relative_to(FOLDER).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def built() -> Path:
    """Where :func:`build` puts (or has put) the jar for the current inputs."""
    return jvm.cache_root() / f"stream-reactor-coap-jar-{inputs_digest()}" / JAR_NAME


def build(*, echo: bool = False) -> Path:
    """The connector jar built from the vendored source: from the cache, else built now (see the module
    docstring). ``echo`` prints a line when it starts building and when done, with the time it took."""
    jar = built()
    if jar.is_file():
        return jar
    with jvm.locked(jar.parent.with_name(jar.parent.name + ".lock")):
        if jar.is_file():
            return jar  # another process built it while we waited
        began = time.monotonic()
        if echo:
            print(f"jars: building {JAR_NAME} from stream-reactor's 1.2.0 source (once) ...", flush=True)
        staging = Path(tempfile.mkdtemp(prefix=".stream-reactor-coap-jar-", dir=jar.parent.parent))
        try:
            _build_into(staging)
            shutil.rmtree(staging / "work")
            shutil.rmtree(jar.parent, ignore_errors=True)
            staging.rename(jar.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if echo:
            print(f"jars: built {JAR_NAME} in {time.monotonic() - began:.0f} s", flush=True)
    return jar


def _build_into(staging: Path) -> None:
    """Steps 1-4 of the module docstring; the jar and ``build.log`` in ``staging``, scratch in ``work/``."""
    log = staging / "build.log"
    work = staging / "work"
    stub_classes, classes = work / "stub-classes", work / "classes"
    stub_classes.mkdir(parents=True)
    classes.mkdir()

    scalac_jars = jvm.fetch_pom("stream-reactor-coap-scalac", COMPILE / "scalac.pom.xml")
    kafka_api = jvm.fetch_pom("stream-reactor-coap-kafka-api", COMPILE / "kafka-api.pom.xml")
    libraries = jvm.fetch("stream-reactor-coap")
    compile_path = _classpath([libraries, kafka_api])

    stubs = sorted(str(p) for p in (COMPILE / "stubs").rglob("*.java"))
    _run([jvm.jdk_tool("javac"), "-nowarn", "-d", str(stub_classes), "-cp", compile_path, *stubs], log)

    scala_sources = sorted(str(p) for p in (SOURCE / "scala").rglob("*.scala"))
    _run(
        jvm.java(
            [
                "-Xss8m",  # scalac's typer recurses deeply
                "-Xmx1g",
                "-cp",
                _classpath([scalac_jars]),
                "scala.tools.nsc.Main",
                "-usejavacp:false",  # compile against the classpath below, not the compiler's own jars
                "-target:jvm-1.8",
                "-nowarn",
                "-classpath",
                f"{compile_path}:{stub_classes}",
                "-d",
                str(classes),
                *scala_sources,
            ]
        ),
        log,
    )
    _write_jar(staging / JAR_NAME, COMPILE / "MANIFEST.MF", [classes, SOURCE / "resources"])


def _classpath(folders: Iterable[Path]) -> str:
    return ":".join(str(jar) for folder in folders for jar in sorted(folder.glob("*.jar")))


def _run(argv: list[str], log: Path) -> None:
    with log.open("a") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        try:
            done = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"{Path(argv[0]).name} timed out after {BUILD_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        tool = Path(argv[0]).name
        raise BuildError(f"building {JAR_NAME} failed ({tool} exited {done.returncode}):\n{tail}")


def _write_jar(jar: Path, manifest: Path, roots: list[Path]) -> None:
    """A jar as ``jar cfm`` writes one (manifest first, a directory entry before its files), but with
    every entry's time fixed and the entries sorted, so the same inputs give the same bytes."""
    entries: dict[str, Path | None] = {}
    for root in roots:
        for path in root.rglob("*"):
            name = path.relative_to(root).as_posix()
            if path.is_dir():
                entries.setdefault(name + "/", None)
            elif name.startswith("io/confluent/"):
                raise BuildError(f"{name}: the compile-only stand-ins must not be packaged")
            elif name in entries:
                raise BuildError(f"{name} is in more than one of {roots}")
            else:
                entries[name] = path
    with zipfile.ZipFile(jar, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr(_info("META-INF/"), b"")
        out.writestr(_info("META-INF/MANIFEST.MF"), manifest.read_bytes())
        for name in sorted(entries):
            source = entries[name]
            out.writestr(_info(name), b"" if source is None else source.read_bytes())


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ENTRY_TIME)
    info.compress_type = zipfile.ZIP_STORED if name.endswith("/") else zipfile.ZIP_DEFLATED
    info.external_attr = (0o40755 << 16) | 0x10 if name.endswith("/") else 0o644 << 16
    return info
