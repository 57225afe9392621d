"""Tests that need multicast, collected only inside the network namespace that
tests/e2e/test_discovery_e2e.py makes for them (``unshare -rn tests/netns/setup.sh``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from streamapp_harness.libcoap import LibcoapServer

IN_NAMESPACE_ENV = "STREAMAPP_IN_TEST_NETNS"
#: The namespace's one IPv4 address (setup.sh): the source of the multicast, so the server answers from it.
NAMESPACE_IPV4 = "10.203.0.1"

if os.environ.get(IN_NAMESPACE_ENV) != "1":
    # Outside the namespace a multicast would leave the machine: these tests are not collected there.
    collect_ignore_glob = ["test_*.py"]


def multicast_server(group: str, interface: str | None = None) -> LibcoapServer:
    """libcoap's server on every address, joined to ``group``; its answers to a multicast come after a
    random Leisure of up to 5 s (RFC 7252 §8.2)."""
    extra = ["-g", group, *(["-G", interface] if interface else [])]
    return LibcoapServer(extra_args=extra, every_address=True)


@pytest.fixture
def ip4_server() -> Iterator[LibcoapServer]:
    with multicast_server("224.0.1.187") as server:
        yield server


@pytest.fixture
def ip6_server() -> Iterator[LibcoapServer]:
    with multicast_server("ff05::fd", "v0") as server:
        yield server
