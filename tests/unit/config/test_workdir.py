"""The data directory (``streamapp/config/workdir.py``): the configured one as it is, or a private one removed
when the process exits, never the working directory."""

from __future__ import annotations

import os
import subprocess
import sys

from streamapp.config.workdir import data_directory


def test_the_default_data_directory_is_private_and_removed_at_exit(tmp_path) -> None:
    assert data_directory(str(tmp_path)) == str(tmp_path)
    code = "from streamapp.config.workdir import data_directory; print(data_directory(None))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path, timeout=60
    )
    path = out.stdout.strip()
    assert path.startswith("/") and "streamapp-" in path
    assert not os.path.exists(path)  # removed when that process exited
    assert list(tmp_path.iterdir()) == []  # nothing written into the working directory
