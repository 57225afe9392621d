"""discoverIP4 / discoverIP6 need multicast, which must not leave this machine: the tests in tests/netns/
run in a network namespace made here (``unshare -rn``), with their own broker, servers and workers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_discovery_in_a_network_namespace_of_its_own() -> None:
    env = {**os.environ, "STREAMAPP_IN_TEST_NETNS": "1"}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/netns"]
    result = subprocess.run(
        ["unshare", "-rn", str(REPO / "tests/netns/setup.sh"), *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) == 6, output[-3000:]
    assert "skipped" not in output and "failed" not in output, output[-3000:]
