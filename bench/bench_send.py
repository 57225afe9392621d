"""Plain CoAP request rate: streamapp's CoapSender against the straightforward aiocoap client, same run.

``python -m bench.bench_send [--requests N] [--repeats R] [--results PATH]``

One libcoap ``coap-server-notls`` (DESIGN.md §8: its 25-40 µs per request keeps the client the bottleneck).
Both sides send confirmable PUTs of a small JSON body one after another, each awaiting its 2.04, as the sink
does with ``max.inflight=1``:

- baseline ``aiocoap``: ``context.request(Message(code=PUT, uri=...))``, the client as aiocoap's documentation
  writes it, which resolves the URI on every request;
- candidate ``streamapp``: ``CoapSender.send`` (which reuses the address aiocoap resolved for the last
  delivered request).

Gated: the sender is not slower than the bare client (ratio > 1.0).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import aiocoap
from aiocoap.numbers.codes import Code

from bench.harness import RESULTS, Comparison, finish, time_passes
from streamapp.coap.sender import CoapSender, RequestOptions
from streamapp.records import RecordCoordinates
from streamapp_harness.libcoap import LibcoapServer

BENCHMARK = "send"
WHERE = RecordCoordinates("bench", 0, 0)
PAYLOAD = b'{"temp":21.5,"unit":"C","device":"dev-042"}'


def bare_aiocoap(
    loop: asyncio.AbstractEventLoop, uri: str, requests: int
) -> tuple[Callable[[], None], object]:
    context = loop.run_until_complete(aiocoap.Context.create_client_context(transports=["udp6"]))

    async def run() -> None:
        for n in range(requests):
            message = aiocoap.Message(code=Code.PUT, payload=PAYLOAD, uri=f"{uri}/bench/{n % 10}")
            response = await context.request(message).response
            assert response.code.is_successful(), response.code

    return (lambda: loop.run_until_complete(run())), context


def streamapp_sender(
    loop: asyncio.AbstractEventLoop, uri: str, requests: int
) -> tuple[Callable[[], None], object]:
    sender = CoapSender(uri, RequestOptions(timeout_s=10.0))
    loop.run_until_complete(sender.start())

    async def run() -> None:
        for n in range(requests):
            await sender.send(("bench", str(n % 10)), PAYLOAD, WHERE)

    return (lambda: loop.run_until_complete(run())), sender


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_send", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per timed pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per implementation")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (default: %(default)s)")
    args = parser.parse_args(argv)

    # Both sides alike: aiocoap's DEBUG records are not built (the sender pins this too).
    logging.getLogger("coap").setLevel(logging.INFO)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with LibcoapServer(flavour="notls") as server:
        bare, context = bare_aiocoap(loop, server.uri, args.requests)
        ours, sender = streamapp_sender(loop, server.uri, args.requests)
        try:
            timings = time_passes(
                {"aiocoap": bare, "streamapp": ours}, items=args.requests, repeats=args.repeats
            )
        finally:
            loop.run_until_complete(context.shutdown())  # type: ignore[attr-defined]
            loop.run_until_complete(sender.stop())  # type: ignore[attr-defined]
    loop.close()
    comparisons = [Comparison("sequential_put", timings["aiocoap"], timings["streamapp"], 1.0)]
    return finish(
        BENCHMARK,
        {"records": args.requests, "repeats": args.repeats},
        comparisons,
        args.results,
        "{name}: CoapSender sends {ratio:.2f}x the requests per second of bare aiocoap (must be > {gate:g}x)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
