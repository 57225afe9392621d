"""Tests that need multicast, collected only inside the network namespace that
tests/e2e/test_discovery_e2e.py makes for them (``unshare -rn tests/netns/setup.sh``)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from streamapp_harness.peers import free_port, wait_until

IN_NAMESPACE_ENV = "STREAMAPP_IN_TEST_NETNS"
#: The namespace's one IPv4 address (setup.sh): the source of the multicast, so the server answers from it.
NAMESPACE_IPV4 = "10.203.0.1"

if os.environ.get(IN_NAMESPACE_ENV) != "1":
    # Outside the namespace a multicast would leave the machine: these tests are not collected there.
    collect_ignore_glob = ["test_*.py"]


class MulticastServer:
    """libcoap's server on every address (so a multicast reaches it, and ``localhost`` whichever family it
    resolves to), joined to ``group``, with dynamic resources; its answers to a multicast come after a
    random Leisure of up to 5 s (RFC 7252 §8.2)."""

    def __init__(self, group: str | None, interface: str | None = None, port: int | None = None) -> None:
        self.port = port or free_port("udp")
        argv = ["coap-server-notls", "-p", str(self.port), "-d", "100"]
        if group:
            argv += ["-g", group]
        if interface:
            argv += ["-G", interface]
        self._proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.get("/") is not None, timeout=10, what="coap-server-notls to answer")

    def get(self, path: str) -> bytes | None:
        """The payload of a unicast GET over loopback, or None when nothing answers (yet)."""
        result = subprocess.run(
            ["coap-client-notls", "-B", "1", "-m", "get", f"coap://127.0.0.1:{self.port}{path}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return result.stdout if result.stdout else None

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)


@pytest.fixture
def ip4_server() -> Iterator[MulticastServer]:
    server = MulticastServer("224.0.1.187")
    yield server
    server.stop()


@pytest.fixture
def ip6_server() -> Iterator[MulticastServer]:
    server = MulticastServer("ff05::fd", "v0")
    yield server
    server.stop()
