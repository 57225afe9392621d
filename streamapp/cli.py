"""``python -m streamapp check`` (the demo is ``python -m streamapp_harness demo``, from a clone)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from streamapp.coap.discovery import describe as describe_discovery
from streamapp.coap.request_options import RequestOptions
from streamapp.coap.security import dtls_options, unused_dtls_keys
from streamapp.coap.tcp_tls import tls_options
from streamapp.config.settings import CONFIG_ENV, Settings
from streamapp.config.uris import discovery_group
from streamapp.engine.pipeline import Route
from streamapp.errors import ConfigError
from streamapp.kafka.security import broker_credentials


def check(_args: argparse.Namespace) -> int:
    """Print the resolved configuration and every compiled route, or the first error in one line."""
    try:
        settings = Settings.load()
        dtls = dtls_options(settings)
        tls = tls_options(settings)
        _, kafka_security = broker_credentials(settings)
        for statement in settings.statements:  # fixed statement servers are checked as the worker does
            Route.compile(statement)
    except ConfigError as exc:
        print(f"streamapp: configuration error: {exc}", file=sys.stderr)
        return 1
    rows = settings.describe()
    width = max(len(key) for key, _, _ in rows)
    print("configuration (secrets hidden):")
    for key, value, source in rows:
        print(f"  {key:<{width}} = {value}    [{source}]")
    if discovery_group(settings.uri) is not None:
        print(f"  connect.coap.uri: {describe_discovery(settings.uri)}")
    for notice in settings.notices:
        print(f"  {notice.key}: {notice.text}")
    for name in settings.ignored:
        print(f"  ignored: {name} (not a streamapp key)")
    for name in unused_dtls_keys(settings):
        print(f"  ignored: {name} (DTLS and TLS only: no coaps:// or coaps+tcp:// server)")
    if dtls is not None:
        print(f"DTLS: {dtls.description}")
    if tls is not None:
        print(f"TLS: {tls.description}")
    print(
        f"Kafka: group {settings.group_id!r}, {kafka_security}, "
        f"auto.offset.reset={settings.auto_offset_reset}"
    )
    print("routes:")
    defaults = RequestOptions.from_values(settings.values)
    for statement in settings.statements:
        fields = ", ".join(str(f) for f in statement.fields)
        target = f"{settings.uri.rstrip('/')}/{'/'.join(statement.resource_segments)}"
        # The directory only (checked, not opened: a running worker holds its lock); docs/oscore.md.
        context = defaults.overridden(statement.properties).oscore_context
        protected = f"  OSCORE {context}" if context else ""
        print(f"  [{statement.index}] {statement.source} -> {target}  SELECT {fields}{protected}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streamapp", description="streamapp: a Kafka -> CoAP sink"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check_cmd = commands.add_parser(
        "check", help=f"validate the configuration (${CONFIG_ENV} and environment) and print the routes"
    )
    check_cmd.set_defaults(func=check)
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.func
    return command(args)
