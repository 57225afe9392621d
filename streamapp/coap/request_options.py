"""How one statement's requests are made (:class:`RequestOptions`): the configuration's request keys,
overridden by a statement's KCQL ``PROPERTIES``, and the RFC 7252 transmission parameters they give.

Why a module of its own: the options are a value that several parts read and none owns. They are made from
the configuration's keys (``from_values``, ``overridden``), the engine's routes carry them per statement
(``engine/pipeline.py``, ``engine/dispatch.py``), and the client obeys them (``sender.py``; ``endpoints.py``
keeps Message IDs for the longest exchange lifetime they give). Here they need only the keys and KCQL's
property names, so the engine names them without importing the client, and ``endpoints.py`` without
importing ``sender.py``, which imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import TransportTuning

from streamapp.config.keys import KEYS_BY_NAME, in_seconds
from streamapp.kcql.model import STATEMENT_PROPERTIES


class Transmission(TransportTuning):
    """aiocoap's transport parameters with RFC 7252 ACK_TIMEOUT and MAX_RETRANSMIT as configured."""

    def __init__(self, reliability: bool, ack_timeout_s: float, max_retransmit: int) -> None:
        self.reliability = reliability
        self.ACK_TIMEOUT = ack_timeout_s
        self.MAX_RETRANSMIT = max_retransmit


def _duration(key: str) -> tuple[str, Callable[[Any], Any]]:
    """A field from a duration key, in seconds."""
    return key, lambda milliseconds: in_seconds(key, milliseconds)


#: Each RequestOptions field from the one configuration key it comes from (KEYS in streamapp/config/keys.py
#: holds the key's type, default and doc; a KCQL PROPERTIES name maps to the same key).
_FROM_KEY: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "method": ("connect.coap.method", str),
    "confirmable": ("connect.coap.message.type", lambda v: v == "CON"),
    "content_format": ("connect.coap.content.format", int),
    "timeout_s": _duration("connect.coap.request.timeout"),
    "ack_timeout_s": _duration("connect.coap.ack.timeout"),
    "max_retransmit": ("connect.coap.max.retransmit", int),
    "tombstone": ("connect.coap.tombstone", str),
    "max_inflight": ("connect.coap.max.inflight", int),
    "ordered": ("connect.coap.ordering", lambda v: v == "partition"),
    "reply_topic": ("connect.coap.reply.topic", lambda v: v),
    "reply_on": ("connect.coap.reply.on", str),
    "oscore_context": ("connect.coap.oscore.context", lambda v: v or None),
}
_DEFAULT = {name: convert(KEYS_BY_NAME[key].default) for name, (key, convert) in _FROM_KEY.items()}


@dataclass(frozen=True)
class RequestOptions:
    """How one statement's requests are made: the configuration's keys, overridden by KCQL PROPERTIES.
    The defaults are those of ``KEYS``."""

    method: str = _DEFAULT["method"]
    confirmable: bool = _DEFAULT["confirmable"]
    content_format: int = _DEFAULT["content_format"]
    #: The whole exchange, retransmissions included; None: see ``response_timeout_s``.
    timeout_s: float | None = _DEFAULT["timeout_s"]
    #: RFC 7252 ACK_TIMEOUT: the first wait before a CON request is sent again (later waits double).
    ack_timeout_s: float = _DEFAULT["ack_timeout_s"]
    #: RFC 7252 MAX_RETRANSMIT: how many times a CON request is sent again before the exchange fails.
    max_retransmit: int = _DEFAULT["max_retransmit"]
    #: What a tombstone (null value) does: ``skip``, ``empty`` (a request with an empty body) or ``delete``.
    tombstone: str = _DEFAULT["tombstone"]
    #: The most requests of this statement in flight at once (within the worker's window).
    max_inflight: int = _DEFAULT["max_inflight"]
    #: One partition's records reach one resource in offset order (``connect.coap.ordering=partition``).
    ordered: bool = _DEFAULT["ordered"]
    #: Where the responses go back to Kafka (None: nowhere) and which of them: all, success, failure.
    reply_topic: str | None = _DEFAULT["reply_topic"]
    reply_on: str = _DEFAULT["reply_on"]
    #: The OSCORE security context directory that protects the requests (None: none; docs/oscore.md).
    oscore_context: str | None = _DEFAULT["oscore_context"]

    def replies_to(self, success: bool) -> str | None:
        """The reply topic of a response that succeeded (or not), or None when it gets no reply."""
        if self.reply_topic is None or self.reply_on == ("failure" if success else "success"):
            return None
        return self.reply_topic

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> RequestOptions:
        """From resolved configuration values (``Settings.values``: key name -> parsed value)."""
        return cls(**{name: convert(values[key]) for name, (key, convert) in _FROM_KEY.items()})

    def overridden(self, properties: tuple[tuple[str, str], ...]) -> RequestOptions:
        """These options with a statement's PROPERTIES applied, each parsed as the key it overrides."""
        given = {STATEMENT_PROPERTIES[name]: text for name, text in properties}
        changes = {
            name: convert(KEYS_BY_NAME[key].parse(given[key]))
            for name, (key, convert) in _FROM_KEY.items()
            if key in given
        }
        if "connect.coap.uri" in given and "connect.coap.oscore.context" not in given:
            # The worker's context is the worker's server's: a statement's own server has its own or none.
            changes["oscore_context"] = None
        return replace(self, **changes)

    @property
    def code(self) -> Code:
        return Code[self.method]

    @cached_property
    def exchange_parameters(self) -> tuple[int, bool, float, float, int, float]:
        """What ``exchange.Exchange`` takes, worked out once: the method's code, CON or NON, ACK_TIMEOUT,
        ACK_RANDOM_FACTOR, MAX_RETRANSMIT and the response timeout."""
        return (
            int(self.code),
            self.confirmable,
            self.ack_timeout_s,
            self.tuning.ACK_RANDOM_FACTOR,
            self.max_retransmit,
            self.response_timeout_s,
        )

    @cached_property
    def tuning(self) -> Transmission:
        return Transmission(self.confirmable, self.ack_timeout_s, self.max_retransmit)

    @property
    def response_timeout_s(self) -> float:
        """How long one request may take: the configured timeout, else RFC 7252 MAX_TRANSMIT_WAIT (the
        time a CON sender keeps retransmitting and then waits for the last answer; 93 s by default) and one
        ACK_TIMEOUT more (95 s), so the timeout never cuts CoAP's own retransmission short: the exchange
        gives up at MAX_TRANSMIT_WAIT itself when its random factor is the largest, and its error, naming
        the transmissions, must win that race."""
        if self.timeout_s is not None:
            return self.timeout_s
        transmit_wait: float = self.tuning.MAX_TRANSMIT_WAIT  # aiocoap's properties carry no annotations
        return transmit_wait + self.ack_timeout_s


__all__ = ["RequestOptions", "Transmission"]
