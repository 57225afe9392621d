"""DTLS cost: sequential request rate and a fresh client's first request, coaps:// against coap://, same run.

``python -m bench.bench_dtls [--requests N] [--repeats R] [--results PATH]``

One libcoap ``coap-server-openssl`` serves plain CoAP on port P and DTLS on P+1; streamapp's CoapSender
(aiocoap, plus the python-mbedtls transport for coaps) sends confirmable PUTs one after another, each
awaiting its 2.04, as the sink does with ``max.inflight=1``.

- ``sequential_psk``: N PUTs over coap:// (baseline) and over coaps:// with a PSK and
  TLS_PSK_WITH_AES_128_CCM_8 (candidate). Gated: the candidate keeps more than half the rate.
- ``sequential_x509``: the same with ECDSA certificates (ECDHE-ECDSA-AES-128-CCM-8). Not gated.
- ``first_request_psk`` / ``first_request_x509``: a new client's first PUT over coap:// against the same
  over coaps://, handshake included (both certificates verified for x509). Not gated.

The first-request cases time whole fresh clients (context creation and, for coaps, the handshake), so
``1 / rate`` is the time to a first delivery and the difference between the two is the handshake's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.harness import RESULTS, Comparison, finish, time_passes
from streamapp.coap.dtls import DtlsOptions
from streamapp.coap.request_options import RequestOptions
from streamapp.coap.security import dtls_options
from streamapp.coap.sender import CoapSender
from streamapp.config.settings import Settings
from streamapp.records import RecordCoordinates
from streamapp_harness.libcoap import LibcoapServer
from tests.certs import make_pki

BENCHMARK = "dtls"
WHERE = RecordCoordinates("bench", 0, 0)
PAYLOAD = b'{"temp":21.5,"unit":"C","device":"dev-042"}'
PSK = "bench-psk-0123456789"
FRESH_CLIENTS = 20


def options_for(uri: str, **props: str) -> DtlsOptions | None:
    return dtls_options(
        Settings.from_mapping(
            {"connect.coap.uri": uri, "connect.coap.kcql": "INSERT INTO r SELECT * FROM t", **props}
        )
    )


class Client:
    """A started CoapSender on a private event loop, driven synchronously by the harness."""

    def __init__(self, loop: asyncio.AbstractEventLoop, uri: str, dtls: DtlsOptions | None) -> None:
        self.loop = loop
        self.sender = CoapSender(uri, RequestOptions(timeout_s=10.0), dtls)
        loop.run_until_complete(self.sender.start())

    def sequential(self, requests: int) -> Callable[[], None]:
        async def run() -> None:
            for n in range(requests):
                await self.sender.send(("bench", str(n % 10)), PAYLOAD, WHERE)

        return lambda: self.loop.run_until_complete(run())

    def close(self) -> None:
        self.loop.run_until_complete(self.sender.stop())


def fresh_clients(loop: asyncio.AbstractEventLoop, uri: str, dtls: DtlsOptions | None) -> Callable[[], None]:
    async def run() -> None:
        for _ in range(FRESH_CLIENTS):
            sender = CoapSender(uri, RequestOptions(timeout_s=10.0), dtls)
            await sender.start()
            await sender.send(("bench", "first"), PAYLOAD, WHERE)
            await sender.stop()

    return lambda: loop.run_until_complete(run())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_dtls", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per timed pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per implementation")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (default: %(default)s)")
    args = parser.parse_args(argv)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as folder:
        pki = make_pki(Path(folder))
        psk_server = LibcoapServer(flavour="openssl", psk=PSK.encode()).start()
        x509_server = LibcoapServer(
            flavour="openssl", cert=pki.server_cert, key=pki.server_key, ca=pki.ca
        ).start()
        try:
            psk = options_for(
                psk_server.coaps_uri, **{"connect.coap.username": "bench", "connect.coap.password": PSK}
            )
            x509_uri = f"coaps://localhost:{x509_server.dtls_port}"
            x509 = options_for(
                x509_uri,
                **{
                    "connect.coap.private.key.file": str(pki.client_key),
                    "connect.coap.public.key.file": str(pki.client_cert),
                    "connect.coap.truststore.path": str(pki.ca),
                },
            )
            comparisons = []
            for name, server, uri, dtls, gate in (
                ("psk", psk_server, psk_server.coaps_uri, psk, 0.5),
                ("x509", x509_server, x509_uri, x509, None),
            ):
                plain, secure = Client(loop, server.uri, None), Client(loop, uri, dtls)
                timings = time_passes(
                    {"coap": plain.sequential(args.requests), "coaps": secure.sequential(args.requests)},
                    items=args.requests,
                    repeats=args.repeats,
                )
                plain.close()
                secure.close()
                comparisons.append(Comparison(f"sequential_{name}", timings["coap"], timings["coaps"], gate))
                firsts = time_passes(
                    {"coap": fresh_clients(loop, server.uri, None), "coaps": fresh_clients(loop, uri, dtls)},
                    items=FRESH_CLIENTS,
                    repeats=args.repeats,
                )
                comparisons.append(Comparison(f"first_request_{name}", firsts["coap"], firsts["coaps"], None))
        finally:
            psk_server.stop()
            x509_server.stop()
    loop.close()
    for c in comparisons:
        if c.name.startswith("first_request"):
            handshake_ms = 1000 / c.candidate.rate - 1000 / c.baseline.rate
            print(
                f"{c.name}: coaps {1000 / c.candidate.rate:.1f} ms, coap {1000 / c.baseline.rate:.1f} ms "
                f"-> handshake ~{handshake_ms:.1f} ms"
            )
    params = {"records": args.requests, "repeats": args.repeats, "fresh_clients": FRESH_CLIENTS}
    return finish(
        BENCHMARK,
        params,
        comparisons,
        args.results,
        "{name}: coaps keeps {ratio:.2f}x of plain CoAP's request rate (must be > {gate:g}x)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
