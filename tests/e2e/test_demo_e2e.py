"""``make demo``'s command, as the README gives it: from nothing to every record delivered, exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).parents[2]


def test_the_demo_delivers_every_record_to_both_resources_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamapp_harness", "demo", "--records", "25", "--exit", "--timeout", "240"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=360,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "demo: OK: all 25 records delivered to both resources" in out
    assert "people/names = " in out and '"first":"Person24","last":"Doe"' in out
    assert "delivered 25, failed 0" in out
