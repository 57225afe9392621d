"""``coap://discoverIP4:5683`` and ``discoverIP6``: find the CoAP server by multicast at start.

stream-reactor's CoAP Sink took these two host names to mean "ask All-CoAP-Nodes for
``/.well-known/core`` and use the server that answers". Here the worker sends one Non-confirmable
``GET /.well-known/core`` (RFC 7252 §8.1: a multicast request is NON) to 224.0.1.187 or ff05::fd
(RFC 7252 §12.8) on the URI's port, takes the first 2.05 answer that carries its token, and uses that
server's address for the rest of its life. A server delays a multicast answer by up to its Leisure
(RFC 7252 §8.2, 5 s by default), so the wait is longer than that. The word is never looked up in DNS.
Why at start and not per request: docs/configuration.md, "discoverIP4 and discoverIP6". The two words and
the group each stands for are the configuration's (``streamapp/config/uris.py``), which checks them too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

from streamapp.config.settings import Settings
from streamapp.config.uris import discovery_group

#: Longer than the default Leisure (RFC 7252 §8.2: 5 s) a server may wait before it answers a multicast.
DISCOVERY_WAIT_S = 7.0
WELL_KNOWN_CORE = (".well-known", "core")
#: The source ``check``, the stats and the start-up line give a discovered ``connect.coap.uri``.
DISCOVERED_FROM = "discovered from"


class DiscoveryFailed(Exception):
    """No server answered, or the multicast request could not be sent. The text names what was tried."""


def describe(uri: str) -> str:
    """How the server of ``uri`` is found, for ``check`` and the start-up line."""
    group = discovery_group(uri)
    assert group is not None
    return (
        f"the server is found at start: a multicast GET /.well-known/core to {group.address} port "
        f"{_port(uri)}, the first server to answer within {DISCOVERY_WAIT_S:g} s"
    )


def discovered_uri(uri: str, address: tuple[Any, ...]) -> str:
    """``uri`` with its discovery host replaced by the answering server's address (IPv6 link-local
    addresses keep their interface, ``[fe80::1%eth0]``, as aiocoap reads it)."""
    parts = urlsplit(uri)
    host, port = address[0], address[1]
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if ip.version == 6:
        scope = address[3] if len(address) > 3 else 0
        if scope and "%" not in host:
            host = f"{host}%{socket.if_indextoname(scope)}"
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, "", ""))


def find_server(settings: Settings) -> Settings:
    """The settings with the discovered server as ``connect.coap.uri``; unchanged for any other host.
    Runs before the worker's event loop exists. Raises :class:`DiscoveryFailed`."""
    if discovery_group(settings.uri) is None:
        return settings
    found = asyncio.run(discover(settings.uri))
    return settings.with_server(found, f"{DISCOVERED_FROM} {settings.uri}")


async def discover(uri: str, *, wait_s: float = DISCOVERY_WAIT_S) -> str:
    """Send the multicast request for ``uri``'s group and return the URI of the first server to answer."""
    group = discovery_group(uri)
    assert group is not None, uri
    port = _port(uri)
    token, mid = os.urandom(8), int.from_bytes(os.urandom(2))
    request = aiocoap.Message(code=Code.GET, uri_path=WELL_KNOWN_CORE)
    # Set by hand: no message manager numbers this one request (RFC 7252 §8.1: a multicast is NON).
    request.mtype, request.mid, request.token = Type.NON, mid, token
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[tuple[Any, ...]] = loop.create_future()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Answers(token, answered), family=group.family, local_addr=(_any(group.family), 0)
        )
    except OSError as exc:
        raise DiscoveryFailed(f"cannot open a UDP socket for discovery: {exc.strerror or exc}") from None
    try:
        sock = transport.get_extra_info("socket")
        if group.family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)  # a server on this host answers
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
        try:
            transport.sendto(request.encode(), (group.address, port))
        except OSError as exc:
            raise DiscoveryFailed(
                f"cannot send to {group.address} port {port}: {exc.strerror or exc} (is there a multicast "
                "route on this host?)"
            ) from None
        try:
            address = await asyncio.wait_for(answered, wait_s)
        except TimeoutError:
            raise DiscoveryFailed(
                f"no CoAP server answered a multicast GET /.well-known/core to {group.address} port {port} "
                f"within {wait_s:g} s"
            ) from None
    finally:
        transport.close()
    return discovered_uri(uri, address)


class _Answers(asyncio.DatagramProtocol):
    """Takes the first 2.05 Content that carries the request's token; everything else is not an answer."""

    def __init__(self, token: bytes, answered: asyncio.Future[tuple[Any, ...]]) -> None:
        self._token = token
        self._answered = answered

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            message = aiocoap.Message.decode(data)
        except Exception:
            return
        if message.token == self._token and message.code == Code.CONTENT and not self._answered.done():
            self._answered.set_result(addr)

    def error_received(self, exc: Exception) -> None:  # ICMP for a multicast send: not an answer
        return


def _port(uri: str) -> int:
    parts = urlsplit(uri)
    return parts.port or aiocoap.COAP_PORT


def _any(family: socket.AddressFamily) -> str:
    return "0.0.0.0" if family == socket.AF_INET else "::"
