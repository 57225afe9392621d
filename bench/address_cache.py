"""Memoised address helpers for aiocoap's UDP transport: the largest single cost of a request, when
aiocoap carried the sink's requests.

aiocoap's ``UDP6EndpointAddress`` answers ``is_multicast`` and ``is_multicast_locally`` by parsing the
address text with :mod:`ipaddress`, and does so two or three times per request (the message and token
managers ask before every send and for every response), about 13 % of a worker's CPU when profiled
(docs/delivery-engine.md, "Where the time goes"). The answers are pure functions of the address bytes, and
a sink talks to one server from a handful of sockets, so they are memoised here: the same functions, the
same results, computed once per distinct address. This changes no behaviour of aiocoap, only how often it
parses the same address.

It replaces aiocoap 0.4.17's private ``UDP6EndpointAddress._strip_v4mapped`` and the two properties, and
serves only ``bench_send``'s ``aiocoap_sender`` baseline (what the sink did before its own exchange layer):
no worker runs aiocoap's UDP transport, so it left the runtime package (``streamapp/patches/`` holds the
worker's patches). ``tests/unit/test_address_cache.py`` checks that it answers as aiocoap does.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from aiocoap.transports.udp6 import UDP6EndpointAddress

#: Distinct addresses remembered (a sink sees its server's few; a bound keeps it safe anyway).
CACHED_ADDRESSES = 4096

_installed = False


@functools.lru_cache(maxsize=CACHED_ADDRESSES)
def _multicast(plain_address: str) -> bool:
    return ipaddress.ip_address(plain_address.split("%", 1)[0]).is_multicast


def install() -> None:
    """Memoise aiocoap's address helpers (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    strip = UDP6EndpointAddress._strip_v4mapped
    # Replacing a method on the class is the point of this module: mypy refuses it by default.
    UDP6EndpointAddress._strip_v4mapped = staticmethod(  # type: ignore[method-assign]
        functools.lru_cache(maxsize=CACHED_ADDRESSES)(strip)
    )

    def is_multicast(self: Any) -> bool:
        return _multicast(self._plainaddress())

    def is_multicast_locally(self: Any) -> bool:
        return _multicast(self._plainaddress_local())

    # Properties replaced by properties: mypy sees a property as a method and refuses both assignments.
    UDP6EndpointAddress.is_multicast = property(is_multicast)  # type: ignore[method-assign,assignment]
    UDP6EndpointAddress.is_multicast_locally = property(  # type: ignore[method-assign,assignment]
        is_multicast_locally
    )
