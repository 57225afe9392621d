"""The seams of the delivery engine: what it needs from the layers below and beside it, declared here so
that the engine depends on these and not on their implementations (as aiocoap's ``interfaces.py`` declares
its layers).

- :class:`Sender` carries one request to a CoAP server and says how it ended. ``CoapSender``
  (``streamapp/coap/sender.py``) is the one the worker uses; the engine tests use fakes that succeed, fail
  or hold each request (``tests/fakes.py``), with no socket.
- :data:`Ack` acks one record's token (Faust's ``Stream.ack`` for the record's event).
- :data:`Commit` commits what was acked (Faust's ``Consumer.commit``): the engine asks for a commit when
  partitions are revoked and when it stops, and the app hands it in, so the engine never reaches into Faust.
- :data:`Produce` writes one record to a Kafka topic and returns once the broker has it (the app's
  producer): the dead-letter topic and the reply topics.

Nothing here calls up: the engine is handed these when it is built (``streamapp/app.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from streamapp.records import Answer, RecordCoordinates

#: Acks one record's token (its Faust event): ``Stream.ack``.
Ack = Callable[[Any], Awaitable[object]]

#: Commits what was acked: ``Consumer.commit``.
Commit = Callable[[], Awaitable[object]]

#: ``(topic, key, value, headers) -> awaitable`` that completes when the broker has the record.
Produce = Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[Any]]


class Sender(Protocol):
    """Carries requests: :meth:`submit` puts one on the wire and returns a future that ends with the 2.xx
    :class:`~streamapp.records.Answer`, or with :class:`~streamapp.errors.DeliveryError` (saying whether
    sending again could help, and holding the answer when there was one).
    Cancelling the future abandons the request. The engine attaches a callback to it: no task per
    request."""

    #: Requests in flight per server at most (``connect.coap.max.inflight``).
    window: int

    def submit(
        self,
        segments: tuple[str, ...],
        payload: bytes,
        where: RecordCoordinates,
        options: Any,
        *,
        server: str | None = None,
        query: tuple[str, ...] = (),
    ) -> asyncio.Future[Answer]: ...

    def resource_uri(
        self, segments: tuple[str, ...], server: str | None = None, query: tuple[str, ...] = ()
    ) -> str:
        """The full URI a request with these segments, server and query goes to (for a reply's header)."""
        ...
