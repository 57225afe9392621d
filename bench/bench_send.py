"""Plain CoAP requests, one after another: the sink's exchange layer against aiocoap, same run, wall clock
and CPU per request.

``python -m bench.bench_send [--requests N] [--repeats R] [--results PATH] [--uvloop]``

One libcoap ``coap-server-notls`` (DESIGN.md §8: its 25-40 µs per request keeps the client the bottleneck).
Every implementation sends confirmable PUTs of a small JSON body one after another, each awaiting its 2.04,
as the sink does with ``max.inflight=1``, from its own socket:

- ``aiocoap``: ``context.request(Message(code=PUT, uri=...))``, the client as aiocoap's documentation
  writes it, which resolves the URI on every request;
- ``aiocoap_sender``: what ``CoapSender.send`` did per request before the exchange layer (commit 1aee616):
  a ``Message`` with the server's resolved remote and the Uri-Path/Content-Format options, aiocoap's
  transmission parameters, ``context.request(..., handle_blockwise=False)`` in one ``asyncio.timeout``, and
  aiocoap's address helpers memoised (``bench/address_cache.py``);
- ``exchange``: the exchange layer alone (``ClientEndpoint`` and ``Exchange``, a future per request);
- ``streamapp``: ``CoapSender.send`` now: the exchange layer with the endpoint pool, the Message-ID ledger
  and the DeliveryError handling;
- ``raw_udp``: the floor, no CoAP at all: one datagram (encoded once) out through a connected socket, one in,
  one future. On a virtual machine a loopback datagram that wakes the server costs tens of µs of system
  CPU in the sender; the others' cost above this floor is their CoAP.

Wall-clock rates and CPU per request (``getrusage``: this process only, the server is another; user and
system apart) are timed in interleaved passes. Comparisons in results.json (a CPU comparison's
"records/s" are requests per CPU second): ``sequential_put`` (wall, ``aiocoap`` -> ``streamapp``, gated > 1
as before), ``sequential_put_vs_aiocoap_sender`` (wall), ``cpu_per_request`` (total CPU,
``aiocoap_sender`` -> ``streamapp``, gated > 1.5), ``coap_cpu_per_request`` (CPU above the ``raw_udp``
floor: the median of the per-pass differences, the same two, gated > 2) and ``coap_cpu_per_request_layer``
(above the floor, ``aiocoap_sender`` -> ``exchange``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import resource
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import aiocoap
from aiocoap.numbers.codes import Code

from bench import address_cache
from bench.harness import RESULTS, Comparison, Timing, finish, time_passes
from streamapp.coap import exchange, wire
from streamapp.coap.endpoints import MessageIdLedger
from streamapp.coap.exchange import ClientEndpoint, Exchange
from streamapp.coap.request_options import RequestOptions
from streamapp.coap.sender import CoapSender, Server
from streamapp.records import RecordCoordinates
from streamapp_harness.libcoap import LibcoapServer

BENCHMARK = "send"
WHERE = RecordCoordinates("bench", 0, 0)
PAYLOAD = b'{"temp":21.5,"unit":"C","device":"dev-042"}'
OPTIONS = RequestOptions(timeout_s=10.0)

Setup = tuple[Callable[[], None], Callable[[], None]]  # (one timed pass, close)


def bare_aiocoap(loop: asyncio.AbstractEventLoop, uri: str, requests: int) -> Setup:
    context = loop.run_until_complete(aiocoap.Context.create_client_context(transports=["udp6"]))

    async def run() -> None:
        for n in range(requests):
            message = aiocoap.Message(code=Code.PUT, payload=PAYLOAD, uri=f"{uri}/bench/{n % 10}")
            response = await context.request(message).response
            assert response.code.is_successful(), response.code

    return (lambda: loop.run_until_complete(run())), (lambda: loop.run_until_complete(context.shutdown()))


def aiocoap_sender(loop: asyncio.AbstractEventLoop, uri: str, requests: int) -> Setup:
    """The aiocoap path of ``CoapSender.send`` as it was (commit 1aee616), without its pool bookkeeping."""
    address_cache.install()
    context = loop.run_until_complete(aiocoap.Context.create_client_context(transports=["udp6"]))
    tuning = OPTIONS.tuning
    remote: list[object] = []

    async def run() -> None:
        for n in range(requests):
            path = ("bench", str(n % 10))
            if not remote:
                message = aiocoap.Message(
                    code=Code.PUT,
                    transport_tuning=tuning,
                    payload=PAYLOAD,
                    content_format=OPTIONS.content_format,
                    uri=uri,
                    uri_path=path,
                    uri_query=(),
                )
            else:
                message = aiocoap.Message(
                    code=Code.PUT,
                    transport_tuning=tuning,
                    payload=PAYLOAD,
                    content_format=OPTIONS.content_format,
                    uri_path=path,
                    uri_query=(),
                )
                message.remote = remote[0]
            pending = context.request(message, handle_blockwise=False).response
            async with asyncio.timeout(OPTIONS.response_timeout_s):
                response = await pending
            if not remote:
                remote.append(message.remote)
            assert response.code.is_successful(), response.code

    return (lambda: loop.run_until_complete(run())), (lambda: loop.run_until_complete(context.shutdown()))


def exchange_layer(loop: asyncio.AbstractEventLoop, uri: str, requests: int) -> Setup:
    """One ClientEndpoint, one Exchange per request, each awaited through a future."""
    server = Server(uri)

    async def open_endpoint() -> ClientEndpoint:
        endpoint = ClientEndpoint(MessageIdLedger(300.0), server.remote, 300.0)
        await exchange.connect_udp(endpoint, server.host, server.port)
        return endpoint

    endpoint = loop.run_until_complete(open_endpoint())
    code, confirmable, ack_timeout, factor, max_retransmit, timeout_s = OPTIONS.exchange_parameters

    async def run() -> None:
        for n in range(requests):
            options, last = server.options.get(("bench", str(n % 10)), (), OPTIONS.content_format)
            future = loop.create_future()

            def settle(response: object, exc: BaseException | None, future: asyncio.Future = future) -> None:
                if exc is not None:
                    future.set_exception(exc)
                else:
                    future.set_result(response)

            endpoint.start(
                Exchange(
                    code,
                    confirmable,
                    options,
                    last,
                    PAYLOAD,
                    ack_timeout=ack_timeout,
                    random_factor=factor,
                    max_retransmit=max_retransmit,
                    timeout_s=timeout_s,
                    on_done=settle,
                )
            )
            response = await future
            assert 64 <= response.code < 96, response

    return (lambda: loop.run_until_complete(run())), endpoint.close


class _Floor(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: asyncio.Future[bytes] | None = None

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(data)


def raw_udp(loop: asyncio.AbstractEventLoop, uri: str, requests: int) -> Setup:
    """The floor: what any asyncio client pays per request without doing CoAP (a datagram encoded once out
    through a connected socket, a datagram in, a future): the rest of the others' cost is their CoAP."""
    server = Server(uri)
    options, _ = server.options.get(("bench", "0"), (), OPTIONS.content_format)
    protocol = _Floor()
    transport, _ = loop.run_until_complete(
        loop.create_datagram_endpoint(lambda: protocol, remote_addr=("127.0.0.1", server.port))
    )

    async def run() -> None:
        for n in range(requests):
            protocol.waiting = future = loop.create_future()
            transport.sendto(wire.encode(wire.CON, 3, n & 0xFFFF, b"tokn", options, PAYLOAD))
            await future

    return (lambda: loop.run_until_complete(run())), transport.close


def streamapp_sender(loop: asyncio.AbstractEventLoop, uri: str, requests: int) -> Setup:
    sender = CoapSender(uri, OPTIONS)
    loop.run_until_complete(sender.start())

    async def run() -> None:
        for n in range(requests):
            await sender.send(("bench", str(n % 10)), PAYLOAD, WHERE)

    return (lambda: loop.run_until_complete(run())), (lambda: loop.run_until_complete(sender.stop()))


IMPLEMENTATIONS = {
    "raw_udp": raw_udp,
    "aiocoap": bare_aiocoap,
    "aiocoap_sender": aiocoap_sender,
    "exchange": exchange_layer,
    "streamapp": streamapp_sender,
}


def cpu_timed(run: Callable[[], None], spent: list[tuple[int, int]]) -> Callable[[], None]:
    """``run``, adding the user and system CPU time (ns) of each call to ``spent`` (garbage collected
    first, as the harness does)."""

    def timed() -> None:
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF)
        run()
        after = resource.getrusage(resource.RUSAGE_SELF)
        spent.append(
            (round((after.ru_utime - before.ru_utime) * 1e9), round((after.ru_stime - before.ru_stime) * 1e9))
        )

    return timed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_send", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per timed pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per implementation")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (default: %(default)s)")
    parser.add_argument("--uvloop", action="store_true", help="on uvloop, as the worker runs")
    args = parser.parse_args(argv)

    # aiocoap's DEBUG records are not built (the old sender pinned this too).
    logging.getLogger("coap").setLevel(logging.INFO)
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    cpu: dict[str, list[tuple[int, int]]] = {name: [] for name in IMPLEMENTATIONS}
    with LibcoapServer(flavour="notls") as server:
        setups = {name: make(loop, server.uri, args.requests) for name, make in IMPLEMENTATIONS.items()}
        try:
            passes = {name: cpu_timed(run, cpu[name]) for name, (run, _) in setups.items()}
            timings = time_passes(passes, items=args.requests, repeats=args.repeats)
        finally:
            for _, close in setups.values():
                close()
    loop.close()
    # The first CPU figure of each is its warm-up pass (time_passes runs one untimed); the passes are
    # interleaved, so pass i of each ran at about the same time as pass i of the floor.
    total = {name: [u + s for u, s in ns[1:]] for name, ns in cpu.items()}
    cpu_timings = {name: Timing(name, args.requests, tuple(ns)) for name, ns in total.items()}
    user = {name: Timing(name, args.requests, tuple(u for u, _ in ns[1:])) for name, ns in cpu.items()}
    # Above the floor: the median of the per-pass differences, as a Timing of that one figure.
    above_floor = {
        name: Timing(
            name,
            args.requests,
            (max(1, round(statistics.median(a - f for a, f in zip(ns, total["raw_udp"], strict=True)))),),
        )
        for name, ns in total.items()
        if name != "raw_udp"
    }
    per = args.requests * 1000
    print("CPU per request in this process, µs (median of the timed passes):")
    print(f"  {'':15} {'total':>7} {'user':>7} {'system':>7} {'above raw_udp':>14}")
    for name, timing in cpu_timings.items():
        median, user_median = timing.median_ns / per, user[name].median_ns / per
        coap = f"{above_floor[name].median_ns / per:14.1f}" if name in above_floor else f"{'-':>14}"
        print(f"  {name:15} {median:7.1f} {user_median:7.1f} {median - user_median:7.1f} {coap}")
    comparisons = [
        Comparison("sequential_put", timings["aiocoap"], timings["streamapp"], 1.0),
        Comparison("sequential_put_vs_aiocoap_sender", timings["aiocoap_sender"], timings["streamapp"]),
        Comparison("cpu_per_request", cpu_timings["aiocoap_sender"], cpu_timings["streamapp"], 1.5),
        Comparison("coap_cpu_per_request", above_floor["aiocoap_sender"], above_floor["streamapp"], 2.0),
        Comparison("coap_cpu_per_request_layer", above_floor["aiocoap_sender"], above_floor["exchange"]),
    ]
    return finish(
        BENCHMARK,
        {
            "records": args.requests,
            "repeats": args.repeats,
            "loop": "uvloop" if args.uvloop else "asyncio",
            "cpu_us_per_request_median": {
                name: round(t.median_ns / per, 1) for name, t in cpu_timings.items()
            },
            "user_cpu_us_per_request_median": {name: round(t.median_ns / per, 1) for name, t in user.items()},
            "cpu_us_above_raw_udp_median": {
                name: round(t.median_ns / per, 1) for name, t in above_floor.items()
            },
        },
        comparisons,
        args.results,
        "{name}: {ratio:.2f}x (must be > {gate:g}x)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
