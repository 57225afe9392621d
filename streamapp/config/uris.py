"""What a configured CoAP server URI may say: its schemes (RFC 7252, RFC 8323 §8) and stream-reactor's
discovery host names, ``discoverIP4`` and ``discoverIP6``, with the multicast group each stands for.

Why in the configuration: these are words of the configuration language, read in three places that must
agree. ``keys.py`` checks ``connect.coap.uri`` with them (:func:`check_server_uri`), the engine refuses a
discovery host as a statement's own server (``engine/addressing.py``), and the client sends the multicast
(``streamapp/coap/discovery.py``). One table, below all three.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

#: The server URI schemes: CoAP over UDP and DTLS (RFC 7252), over TCP and TLS (RFC 8323 §8).
COAP_SCHEMES = ("coap", "coaps", "coap+tcp", "coaps+tcp")


@dataclass(frozen=True)
class Group:
    """The multicast group a discovery host name stands for."""

    name: str  # as stream-reactor spelled it
    family: socket.AddressFamily
    address: str


#: stream-reactor's CoapConstants: COAP_DISCOVER_IP4 / _IP6 and their addresses.
GROUPS = {
    "discoverip4": Group("discoverIP4", socket.AF_INET, "224.0.1.187"),
    "discoverip6": Group("discoverIP6", socket.AF_INET6, "ff05::fd"),
}


def discovery_group(uri: str) -> Group | None:
    """The group when the URI's host is ``discoverIP4``/``discoverIP6`` (any case), else None."""
    host = urlsplit(uri).hostname
    return GROUPS.get(host.lower()) if host else None


def check_server_uri(value: str) -> None:
    """``connect.coap.uri``'s rule: a CoAP scheme, a host, no query or fragment, a valid port; a discovery
    host only with ``coap://`` (a multicast is plain CoAP over UDP). ValueError says what is wrong."""
    parts = urlsplit(value)
    if parts.scheme not in COAP_SCHEMES:
        raise ValueError(f"expected a coap://, coaps://, coap+tcp:// or coaps+tcp:// URI, got {value!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {value!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"a query or fragment is not allowed in the base URI {value!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"bad port in {value!r}") from None
    group = discovery_group(value)
    if group is not None and parts.scheme == "coaps":
        raise ValueError(
            f"{group.name} finds the server by a plain-CoAP multicast, and DTLS has no multicast "
            "(RFC 7252 §9.1): name the coaps:// server"
        )
    if group is not None and parts.scheme != "coap":
        raise ValueError(
            f"{group.name} finds the server by a CoAP multicast over UDP, and TCP has no multicast: name the "
            f"{parts.scheme}:// server"
        )
