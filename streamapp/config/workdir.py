"""Where the worker writes: Faust's data directory, never the working directory (docs/production.md).

``faust.datadir`` names it; unset, it is a new private temporary directory (under ``$TMPDIR``) that is
removed when the process exits, so a read-only working directory, a non-root user and a test run leave
nothing behind. The worker keeps no table, so the directory holds nothing that must outlive the process.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile

from streamapp.errors import ConfigError

KEY = "faust.datadir"


def data_directory(configured: str | None) -> str:
    if configured:
        return configured
    try:
        path = tempfile.mkdtemp(prefix="streamapp-")
    except OSError as exc:
        raise ConfigError(KEY, f"no writable temporary directory for Faust's data: {exc}") from None
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
