"""The worker's entry point: ``faust -A streamapp.main worker``. The only module that builds at import."""

from __future__ import annotations

import os
import sys

import uvloop

from streamapp.app import create_app
from streamapp.coap.discovery import DiscoveryFailed, find_server
from streamapp.config.settings import Settings
from streamapp.errors import ConfigError
from streamapp.kafka.preflight import SKIP_PREFLIGHT_ENV, BrokerUnusable, preflight
from streamapp.patches import PatchOutdated

# uvloop's event loop, installed before the app asks for a loop: ~1.4x the records/s of asyncio's own at
# the same CPU (docs/delivery-engine.md, "Where the time goes").
uvloop.install()

try:
    settings = Settings.load()
    settings = find_server(settings)  # coap://discoverIP4:5683: a multicast at start, else unchanged
    app = create_app(settings)  # reads the DTLS and Kafka TLS key and certificate files
except ConfigError as exc:
    print(f"streamapp: configuration error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None
except PatchOutdated as exc:
    print(f"streamapp: {exc}", file=sys.stderr)
    raise SystemExit(1) from None
except DiscoveryFailed as exc:
    print(f"streamapp: connect.coap.uri: {settings.uri}: {exc}", file=sys.stderr)
    raise SystemExit(1) from None

if os.environ.get(SKIP_PREFLIGHT_ENV) != "1":
    try:
        preflight(settings, app.conf.broker_credentials)
    except BrokerUnusable as exc:
        print(f"streamapp: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
