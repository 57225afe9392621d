"""Run the sink as a real ``faust -A streamapp.main worker`` subprocess, configured by a properties file:
the one launcher of the tests, the benchmarks and the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import javaproperties
from prometheus_client.parser import text_string_to_metric_families

from streamapp.config.keys import env_name
from streamapp_harness.process import free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
FAUST = Path(sys.executable).with_name("faust")

#: A worker's first delivery takes ~4 s after its start (docs/production.md, "Start and restart"); a
#: restart after a SIGKILL waits ~11 s more for the dead member's session; leave room on a loaded machine.
JOIN_TIMEOUT_S = 60.0

#: One Prometheus sample: (name, its labels sorted) -> value.
MetricSamples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metric_samples(text: str) -> MetricSamples:
    """Every sample of a ``/metrics`` text."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class WorkerProcess:
    def __init__(
        self,
        properties: dict[str, str],
        workdir: Path,
        label: str = "worker",
        *,
        cwd: Path = REPO_ROOT,
        uid: int | None = None,
        env: dict[str, str] | None = None,
        config_file: Path | None = None,
    ) -> None:
        """``cwd``: the worker's working directory; ``uid``: run as this user (setpriv; needs root);
        ``env``: extra environment variables; ``config_file``: run on this properties file as it is, with
        ``properties`` given as environment variables instead."""
        self.cwd, self.uid, self.extra_env = cwd, uid, dict(env or {})
        self.web_port = free_port("tcp")
        self.properties = {"web.port": str(self.web_port), **properties}
        self.workdir = workdir
        self.label = label
        self.config_file = config_file
        self.config_path = config_file or workdir / f"{label}.properties"
        self.log_path = workdir / f"{label}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECT_COAP_")}
        env["STREAMAPP_CONFIG"] = str(self.config_path)
        env.pop("PORT", None)
        if self.config_file is None:
            with self.config_path.open("w", encoding="utf-8") as fh:
                javaproperties.dump(self.properties, fh, timestamp=False)
        else:
            env.update({env_name(key): value for key, value in self.properties.items()})
        env.update(self.extra_env)
        argv = [str(FAUST), "-A", "streamapp.main", "worker", "-l", "info"]
        if self.uid is not None:
            argv = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", *argv]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None, f"{self.label} was not started"
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The worker's structured log events so far, in order (it logs them as JSON objects with
        ``log.format=json``: ``event``, ``level``, ``timestamp`` and the event's own fields); only those
        whose ``event`` is ``name`` when given. Lines that hold no JSON object (Faust's banner, a start
        failure's one line) are not events."""
        found = []
        for line in self.log_text().splitlines():
            start = line.find("{")
            if start < 0:
                continue
            try:
                event = json.loads(line[start:])
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and "event" in event and (name is None or event["event"] == name):
                found.append(event)
        return found

    def stats(self) -> dict[str, Any] | None:
        """The worker's ``/coap/stats.json``, or None while its web server is not up."""
        url = f"http://127.0.0.1:{self.web_port}/coap/stats.json"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                stats: dict[str, Any] = json.load(response)
                return stats
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            return None

    def metrics(self) -> MetricSamples:
        """The worker's ``/metrics`` now."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=10) as response:
            return metric_samples(response.read().decode())

    def rss_kib(self) -> int:
        """The worker process' resident memory, as the kernel counts it (``/proc/<pid>/status``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"{self.label}: no VmRSS for pid {self.pid}")

    def probe(self, path: str) -> tuple[int, dict[str, Any]] | None:
        """(status, JSON body) of ``GET path`` (``/healthz``, ``/readyz``), or None while the web server
        does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=2) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            return None

    def delivered(self) -> dict[int, int]:
        stats = self.stats() or {"statements": []}
        return {s["statement"]: s["delivered"] for s in stats["statements"]}

    def wait_exit(self, timeout: float | None) -> int:
        assert self._proc is not None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"{self.label} did not exit within {timeout}s; log tail:\n{self.log_text()[-3000:]}"
            ) from None

    def wait_until(self, predicate: Any, timeout: float = JOIN_TIMEOUT_S, what: str = "condition") -> None:
        """Wait on ``predicate``; fail at once (with the log) if the worker dies meanwhile."""

        def check() -> bool:
            if self.returncode is not None:
                raise AssertionError(
                    f"{self.label} exited with {self.returncode} while waiting for {what}; "
                    f"log tail:\n{self.log_text()[-3000:]}"
                )
            return bool(predicate())

        wait_until(check, timeout=timeout, what=f"{what} ({self.label}, log {self.log_path})")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, as a platform would send it, and wait for the exit code."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)
