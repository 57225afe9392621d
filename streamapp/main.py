"""The worker's entry point: ``faust -A streamapp.main worker``. The only module that builds at import."""

from __future__ import annotations

import sys

from streamapp.app import create_app
from streamapp.errors import ConfigError
from streamapp.settings import Settings

try:
    settings = Settings.load()
    app = create_app(settings)  # reads the DTLS key and certificate files
except ConfigError as exc:
    print(f"streamapp: configuration error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None
