"""A minimal raw-UDP CoAP responder for the end-to-end benchmark, run as its own process.

``python -m bench.coap_responder [--port P] [--port-file PATH] [--delay-ms D]``

It parses only what it needs of RFC 7252: the fixed header (version, type, token length, code, message ID),
the token, and the Uri-Path options (to count resources); the payload is kept only to count distinct
bodies. Only PUT and POST count as deliveries; a GET or DELETE (stream-reactor's connector asks for
``/.well-known/core`` when it starts and DELETEs its resource when it stops) is answered and counted apart.
Every request is answered with 2.04 Changed: a CON request with a piggybacked ACK (same message ID,
same token), a NON request with a NON response (a new message ID, same token); after ``--delay-ms``
(``loop.call_later``; 0 answers at once, in the datagram callback). An empty CON (a CoAP ping) gets a RST;
ACKs and RSTs from clients are ignored.

Message de-duplication (RFC 7252 §4.4/§4.5): a request whose (client address, client port, message ID) was
seen within EXCHANGE_LIFETIME (247 s) is a duplicate: it is not counted as a delivery, and gets the cached
answer again (nothing, if the original is still waiting for its delay: the answer is on its way). A client
that wraps its 16-bit message IDs to the same endpoint within 247 s (more than 65 536 requests) therefore
sees its requests counted as duplicates, as a real RFC 7252 server would drop them.

Status: a datagram holding exactly ``STATS`` (it cannot be a CoAP message: 5 bytes, token length 3) is
answered with one JSON object (see :meth:`Responder.stats`). Times are ``time.monotonic_ns()`` of this
process; only differences mean anything. Binds 127.0.0.1 only and answers only datagrams from 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

LOCALHOST = "127.0.0.1"
#: RFC 7252 §4.8.2 EXCHANGE_LIFETIME with the default transmission parameters, in ns.
EXCHANGE_LIFETIME_NS = 247 * 1_000_000_000
STATS_REQUEST = b"STATS"
#: Client endpoints listed one by one in the STATS answer (~45 bytes each; a datagram holds 65 507).
MAX_CLIENTS_LISTED = 1000

CON, NON, ACK, RST = 0, 1, 2, 3
CHANGED = 0x44  # 2.04
POST, PUT = 0x02, 0x03
URI_PATH = 11
PAYLOAD_MARKER = 0xFF

Address = tuple[str, int]


class Malformed(ValueError):
    """Not a well-formed CoAP message (RFC 7252 §3): ignored (and counted)."""


def parse_options(data: bytes, start: int) -> tuple[list[bytes], int]:
    """The Uri-Path segments in ``data[start:]`` and the offset of the payload (len(data) if none)."""
    segments: list[bytes] = []
    number = 0
    i = start
    end = len(data)
    while i < end:
        byte = data[i]
        if byte == PAYLOAD_MARKER:
            if i + 1 == end:
                raise Malformed("payload marker followed by no payload")
            return segments, i + 1
        i += 1
        delta, length = byte >> 4, byte & 0x0F
        if delta == 15 or length == 15:
            raise Malformed("reserved option nibble 15")
        if delta == 13:
            delta = data[i] + 13
            i += 1
        elif delta == 14:
            delta = int.from_bytes(data[i : i + 2], "big") + 269
            i += 2
        if length == 13:
            length = data[i] + 13
            i += 1
        elif length == 14:
            length = int.from_bytes(data[i : i + 2], "big") + 269
            i += 2
        if i + length > end:
            raise Malformed("option runs past the end of the datagram")
        number += delta
        if number == URI_PATH:
            segments.append(data[i : i + length])
        i += length
    return segments, end


class Responder(asyncio.DatagramProtocol):
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.transport: asyncio.DatagramTransport | None = None
        self._loop = asyncio.get_running_loop()
        #: (endpoint, MID) -> the answer sent, or None while it waits for its delay.
        self._seen: dict[tuple[Address, int], bytes | None] = {}
        #: (expiry ns, key) in arrival order, so expired entries are dropped from the front.
        self._expiry: collections.deque[tuple[int, tuple[Address, int]]] = collections.deque()
        self._next_mid = int.from_bytes(os.urandom(2), "big")
        self.deliveries = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.pending = 0
        self.max_pending = 0
        self.duplicates = 0
        self.con = 0
        self.non = 0
        self.pings = 0
        self.ignored = 0
        self.other_methods = 0
        self.malformed = 0
        self.foreign = 0
        #: Per client endpoint: [unique deliveries, first ns, last ns].
        self.clients: dict[Address, list[int]] = {}
        self.resources: set[bytes] = set()
        self.payloads: set[bytes] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        now = time.monotonic_ns()
        if addr[0] != LOCALHOST:
            self.foreign += 1  # never answer anything but loopback
            return
        if data == STATS_REQUEST:
            self._send(json.dumps(self.stats(now)).encode(), addr)
            return
        try:
            self._handle(data, addr, now)
        except (Malformed, IndexError):
            self.malformed += 1

    def _handle(self, data: bytes, addr: Address, now: int) -> None:
        if len(data) < 4:
            raise Malformed("shorter than the 4-byte header")
        first, code = data[0], data[1]
        version, mtype, tkl = first >> 6, (first >> 4) & 0x03, first & 0x0F
        if version != 1 or tkl > 8:
            raise Malformed(f"version {version}, token length {tkl}")
        mid = int.from_bytes(data[2:4], "big")
        token = data[4 : 4 + tkl]
        if len(token) != tkl:
            raise Malformed("datagram ends inside the token")
        if mtype in (ACK, RST):
            self.ignored += 1
            return
        if code == 0:  # empty message: a CON is a ping (answered with RST), a NON means nothing
            if mtype == CON:
                self.pings += 1
                self._send(bytes((0x70, 0, data[2], data[3])), addr)
            else:
                self.ignored += 1
            return
        if code >> 5 != 0:  # a response or a reserved class sent to us: not a request
            self.ignored += 1
            return
        self._expire(now)
        key = (addr, mid)
        if key in self._seen:
            self.duplicates += 1
            cached = self._seen[key]
            if cached is not None:
                self._send(cached, addr)
            return
        segments, payload_at = parse_options(data, 4 + tkl)
        if mtype == CON:
            self.con += 1
            answer = bytes((0x60 | tkl, CHANGED, data[2], data[3])) + token
        else:
            self.non += 1
            self._next_mid = (self._next_mid + 1) & 0xFFFF
            answer = bytes((0x50 | tkl, CHANGED)) + self._next_mid.to_bytes(2, "big") + token
        self._expiry.append((now + EXCHANGE_LIFETIME_NS, key))
        if code not in (PUT, POST):
            self.other_methods += 1  # answered below, but no record was delivered
            self._seen[key] = answer
            self._send(answer, addr)
            return
        self.deliveries += 1
        if self.first_ns is None:
            self.first_ns = now
        self.last_ns = now
        client = self.clients.get(addr)
        if client is None:
            self.clients[addr] = [1, now, now]
        else:
            client[0] += 1
            client[2] = now
        self.resources.add(b"/".join(segments))
        self.payloads.add(data[payload_at:])
        if self.delay_s <= 0:
            self._seen[key] = answer
            self._send(answer, addr)
            self.max_pending = max(self.max_pending, 1)
            return
        self._seen[key] = None
        self.pending += 1
        self.max_pending = max(self.max_pending, self.pending)
        self._loop.call_later(self.delay_s, self._answer, key, answer)

    def _answer(self, key: tuple[Address, int], answer: bytes) -> None:
        self.pending -= 1
        if key in self._seen:  # always, unless the delay exceeds EXCHANGE_LIFETIME
            self._seen[key] = answer
        self._send(answer, key[0])

    def _expire(self, now: int) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, key = expiry.popleft()
            self._seen.pop(key, None)

    def _send(self, data: bytes, addr: Address) -> None:
        if self.transport is not None and addr[0] == LOCALHOST:
            self.transport.sendto(data, addr)

    def stats(self, now: int | None = None) -> dict[str, Any]:
        """Counters so far. ``deliveries``: unique (endpoint, MID) requests; ``distinct_payloads``: distinct
        request bodies among them (fewer than ``deliveries`` when a record was sent again under a new MID);
        ``span_ns``: last minus first unique delivery; ``clients``: per client port, [port, deliveries, first
        ns, last ns] (the first ``MAX_CLIENTS_LISTED``, so the answer fits a datagram)."""
        now = time.monotonic_ns() if now is None else now
        span = None if self.first_ns is None or self.last_ns is None else self.last_ns - self.first_ns
        return {
            "deliveries": self.deliveries,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "span_ns": span,
            "now_ns": now,
            "pending": self.pending,
            "max_pending": self.max_pending,
            "endpoints": len(self.clients),
            "resources": len(self.resources),
            "distinct_payloads": len(self.payloads),
            "duplicates": self.duplicates,
            "con": self.con,
            "non": self.non,
            "pings": self.pings,
            "ignored": self.ignored,
            "other_methods": self.other_methods,
            "malformed": self.malformed,
            "foreign": self.foreign,
            "delay_ms": self.delay_s * 1000,
            "clients": [[addr[1], *counts] for addr, counts in self.clients.items()][:MAX_CLIENTS_LISTED],
        }


async def serve(port: int, delay_s: float, port_file: Path | None) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Many clients sending at once on loopback: room for bursts (the kernel caps it at rmem_max).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind((LOCALHOST, port))
    transport, _protocol = await loop.create_datagram_endpoint(lambda: Responder(delay_s), sock=sock)
    bound = transport.get_extra_info("sockname")[1]
    if port_file is not None:
        # Written once bound, atomically: the reader polls for the file and finds a complete port number.
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(f"{bound}\n", encoding="ascii")
        os.replace(tmp, port_file)
    print(f"coap_responder listening on {LOCALHOST}:{bound}, delay {delay_s * 1000:g} ms", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.coap_responder", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, default=0, help="UDP port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay before each answer (0: at once)")
    args = parser.parse_args(argv)
    if args.delay_ms < 0:
        parser.error("--delay-ms must not be negative")
    asyncio.run(serve(args.port, args.delay_ms / 1000.0, args.port_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
