"""streamapp_harness/stream_reactor_jar.py and the connector jar choice in streamapp_harness/connect.py: the
vendored source is stream-reactor's tag unmodified, the cache key follows the inputs, the jar is written the
same way every time and never holds the compile-only stand-ins, and an operator's jar replaces the built one.
Nothing here runs Maven or a compiler (the e2e tests run the built jar)."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from streamapp_harness import connect, stream_reactor_jar
from streamapp_harness.process import PeerError

#: ``git rev-parse 1.2.0:kafka-connect-coap/src/main`` in github.com/lensesio/stream-reactor (commit
#: f9f051c2d2f0d97237b808c5f28f5bd08cec578f): the tree the vendored ``source/main`` must be.
TAG_TREE = "a4c06e2840ac5820630e34024cc8d243f477481d"


def git_tree_hash(folder: Path) -> str:
    """The object name git gives ``folder`` as a tree (regular files, mode 100644), computed without git so
    that it also holds in a copy of the repository without its history."""
    entries = []
    for path in folder.iterdir():
        if path.is_dir():
            mode, digest, key = b"40000", bytes.fromhex(git_tree_hash(path)), path.name + "/"
        else:
            data = path.read_bytes()
            mode, key = b"100644", path.name
            digest = hashlib.sha1(b"blob %d\0" % len(data) + data).digest()
        entries.append((key, mode + b" " + path.name.encode() + b"\0" + digest))
    body = b"".join(entry for _, entry in sorted(entries))
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()


def test_the_vendored_source_is_stream_reactors_1_2_0_tree_unmodified() -> None:
    assert git_tree_hash(stream_reactor_jar.SOURCE) == TAG_TREE
    license_text = (stream_reactor_jar.FOLDER / "source" / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``jvm/stream-reactor-coap`` that the module reads instead of the real one."""
    folder = tmp_path / "stream-reactor-coap"
    shutil.copytree(stream_reactor_jar.FOLDER, folder)
    monkeypatch.setattr(stream_reactor_jar, "FOLDER", folder)
    monkeypatch.setattr(stream_reactor_jar, "SOURCE", folder / "source" / "main")
    monkeypatch.setattr(stream_reactor_jar, "COMPILE", folder / "compile")
    return folder


def test_the_cache_key_follows_every_input_and_not_the_readme(inputs: Path) -> None:
    first = stream_reactor_jar.inputs_digest()
    (inputs / "README.md").write_text("reworded\n")
    assert stream_reactor_jar.inputs_digest() == first
    for changed in [
        next((inputs / "source" / "main" / "scala").rglob("CoapWriter.scala")),
        inputs / "compile" / "scalac.pom.xml",
        inputs / "compile" / "MANIFEST.MF",
        inputs / "pom.xml",
    ]:
        before = stream_reactor_jar.inputs_digest()
        changed.write_bytes(changed.read_bytes() + b"\n")
        assert stream_reactor_jar.inputs_digest() != before, changed.name


def test_a_built_jar_in_the_cache_is_used_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMAPP_JVM_CACHE", str(tmp_path / "cache"))
    jar = stream_reactor_jar.built()
    assert jar.name == "kafka-connect-coap-1.2.0.jar"
    assert jar.parent.name == f"stream-reactor-coap-jar-{stream_reactor_jar.inputs_digest()}"
    jar.parent.mkdir(parents=True)
    jar.write_bytes(b"cached")

    def no_build(staging: Path) -> None:
        raise AssertionError("built again")

    monkeypatch.setattr(stream_reactor_jar, "_build_into", no_build)
    assert stream_reactor_jar.build() == jar


def test_the_jar_is_the_same_bytes_every_time_manifest_first(tmp_path: Path) -> None:
    classes = tmp_path / "classes"
    (classes / "com" / "example").mkdir(parents=True)
    (classes / "com" / "example" / "B.class").write_bytes(b"\xca\xfe\xba\xbeB")
    (classes / "com" / "example" / "A.class").write_bytes(b"\xca\xfe\xba\xbeA")
    manifest = stream_reactor_jar.COMPILE / "MANIFEST.MF"
    resources = stream_reactor_jar.SOURCE / "resources"
    one, two = tmp_path / "one.jar", tmp_path / "two.jar"
    stream_reactor_jar._write_jar(one, manifest, [classes, resources])
    (classes / "com" / "example" / "A.class").touch()  # a newer mtime changes nothing
    stream_reactor_jar._write_jar(two, manifest, [classes, resources])
    assert one.read_bytes() == two.read_bytes()
    with zipfile.ZipFile(one) as jar:
        names = jar.namelist()
        assert names[:2] == ["META-INF/", "META-INF/MANIFEST.MF"]
        assert {"com/", "com/example/", "com/example/A.class", "log4j.properties"} <= set(names)
        text = jar.read("META-INF/MANIFEST.MF").decode()
    assert text.startswith("Manifest-Version: 1.0\n") and "Git-Commit-Hash: f9f051c2" in text
    assert all(len(line.encode()) <= 72 for line in text.splitlines())  # the manifest format's limit


def test_the_compile_only_stand_ins_are_never_packaged(tmp_path: Path) -> None:
    stub = tmp_path / "stubs" / "io" / "confluent" / "connect" / "avro"
    stub.mkdir(parents=True)
    (stub / "AvroData.class").write_bytes(b"\xca\xfe\xba\xbe")
    with pytest.raises(stream_reactor_jar.BuildError, match="must not be packaged"):
        stream_reactor_jar._write_jar(
            tmp_path / "x.jar", stream_reactor_jar.COMPILE / "MANIFEST.MF", [tmp_path / "stubs"]
        )


def test_an_operators_jar_replaces_the_built_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = tmp_path / "built.jar"
    monkeypatch.setattr(stream_reactor_jar, "build", lambda **_: built)
    monkeypatch.delenv(connect.CONNECTOR_JAR_ENV, raising=False)
    assert connect.connector_jar() == built
    released = tmp_path / "released.jar"
    released.write_bytes(b"jar")
    monkeypatch.setenv(connect.CONNECTOR_JAR_ENV, str(released))
    assert connect.connector_jar() == released
    explicit = tmp_path / "explicit.jar"
    explicit.write_bytes(b"jar")
    assert connect.connector_jar(explicit) == explicit
    # A jar named but missing is an error, never a quiet fall-back to the built one.
    monkeypatch.setenv(connect.CONNECTOR_JAR_ENV, str(tmp_path / "missing.jar"))
    with pytest.raises(PeerError, match=r"missing\.jar \(named by \$STREAMAPP_STREAM_REACTOR_COAP_JAR\)"):
        connect.connector_jar()
    with pytest.raises(PeerError, match="named by connector_jar="):
        connect.connector_jar(tmp_path / "gone.jar")
