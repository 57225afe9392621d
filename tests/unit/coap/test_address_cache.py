"""The memoised aiocoap address helpers of ``bench/address_cache.py`` (bench_send's aiocoap baseline) answer
exactly as aiocoap's own do."""

from __future__ import annotations

import ipaddress

from aiocoap.transports.udp6 import UDP6EndpointAddress

from bench import address_cache


class Interface:
    """aiocoap keeps a weak reference to the transport; nothing else is used here."""


ADDRESSES = ["::ffff:127.0.0.1", "::1", "ff02::fd", "::ffff:224.0.1.187", "2001:db8::7", "::ffff:192.0.2.7"]


def test_memoised_answers_equal_the_plain_ones() -> None:
    interface = Interface()
    expected = {}
    for text in ADDRESSES:
        address = UDP6EndpointAddress((text, 5683, 0, 0), interface)
        plain = address._plainaddress()
        expected[text] = (plain, ipaddress.ip_address(plain).is_multicast)
    address_cache.install()
    address_cache.install()  # idempotent
    for text in ADDRESSES:
        address = UDP6EndpointAddress((text, 5683, 0, 0), interface)
        assert (address._plainaddress(), address.is_multicast) == expected[text]
    assert expected["ff02::fd"][1] and expected["::ffff:224.0.1.187"] == ("224.0.1.187", True)
    assert expected["::ffff:127.0.0.1"] == ("127.0.0.1", False)
