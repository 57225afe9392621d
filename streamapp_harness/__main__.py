"""``python -m streamapp_harness demo``: the sink end to end on an embedded broker and a libcoap server.
``python -m streamapp_harness jars``: fetch the JVM peers' jars from Maven Central into their cache (once),
and build stream-reactor's CoAP sink jar from its vendored source (once; ``stream_reactor_jar.py``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamapp_harness", description="streamapp's harness")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the sink end to end on an embedded broker and libcoap")
    demo.add_argument("--records", type=int, default=5, help="records to produce (default 5)")
    demo.add_argument(
        "--exit",
        action="store_true",
        help="exit once every record is delivered (0) or the timeout passes (1) instead of running on",
    )
    demo.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for delivery")
    jars = commands.add_parser(
        "jars", help="fetch the JVM test peers' jars from Maven Central and build the connector jar (once)"
    )
    jars.add_argument("peers", nargs="*", help="which (default: every peer with a pom)")
    args = parser.parse_args(argv)
    if args.command == "jars":
        return fetch_jars(args.peers)
    try:
        from streamapp_harness.demo import run_demo
    except ModuleNotFoundError as exc:
        print(
            f"demo: the embedded broker is missing ({exc.name}): pip install '.[demo]' (make demo does)",
            file=sys.stderr,
        )
        return 1
    return run_demo(records=args.records, exit_when_done=args.exit, timeout_s=args.timeout)


def fetch_jars(peers: Sequence[str]) -> int:
    from streamapp_harness import jvm, stream_reactor_jar
    from streamapp_harness.connect import CONNECTOR_JAR_ENV

    for peer in peers or jvm.PEERS:
        try:
            print(f"jars: {peer}: {jvm.fetch(peer)}", flush=True)
            if peer != "stream-reactor-coap":
                continue
            # The connector's own jar is built, not fetched, unless the operator gives theirs.
            given = os.environ.get(CONNECTOR_JAR_ENV)
            jar = f"{given} (${CONNECTOR_JAR_ENV})" if given else stream_reactor_jar.build(echo=True)
            print(f"jars: {peer}: {jar}", flush=True)
        except jvm.JvmError as error:
            print(f"jars: {peer}: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
