"""Where things are in the repository, for tests that read files: one place, so that a test file can move
(tests/unit mirrors the package: tests/unit/codecs/test_golden.py ...) without counting ``parents[n]``."""

from __future__ import annotations

from pathlib import Path

#: The repository's root (where pyproject.toml is).
REPO = Path(__file__).resolve().parents[1]
#: The golden files: ``tests/golden/<form>/<case>.input`` and what each must become.
GOLDEN = REPO / "tests" / "golden"
