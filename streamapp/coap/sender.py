"""The CoAP client side of the sink: one aiocoap context, one request per (record, statement).

A request is delivered when the server answers 2.xx. Every other outcome raises :class:`DeliveryError`
with the response code (or the exception) and whether resending could help.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiocoap
import mode
from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import TransportTuning

from streamapp.coap.dtls import DtlsOptions, add_dtls_transport
from streamapp.errors import DeliveryError, RecordCoordinates

#: 4.xx codes that mean "try again later" rather than "this request is wrong".
RETRIABLE_CLIENT_ERRORS = frozenset({Code.REQUEST_ENTITY_INCOMPLETE, Code.TOO_MANY_REQUESTS})
#: The largest body aiocoap sends in one message (block size 2 ** (DEFAULT_BLOCK_SIZE_EXP + 4) = 1024 bytes).
ONE_BLOCK = 2 ** (TransportTuning.DEFAULT_BLOCK_SIZE_EXP + 4)


class Transmission(TransportTuning):
    """aiocoap's transport parameters with RFC 7252 ACK_TIMEOUT and MAX_RETRANSMIT as configured."""

    def __init__(self, reliability: bool, ack_timeout_s: float, max_retransmit: int) -> None:
        self.reliability = reliability
        self.ACK_TIMEOUT = ack_timeout_s
        self.MAX_RETRANSMIT = max_retransmit


@dataclass(frozen=True)
class RequestOptions:
    """How one statement's requests are made; defaults from settings, overridden by KCQL PROPERTIES."""

    method: str = "PUT"
    confirmable: bool = True
    content_format: int = 50
    #: The whole exchange, retransmissions included; None = MAX_TRANSMIT_WAIT of the transmission parameters.
    timeout_s: float | None = None
    #: RFC 7252 ACK_TIMEOUT: the first wait before a CON request is sent again (later waits double).
    ack_timeout_s: float = 2.0
    #: RFC 7252 MAX_RETRANSMIT: how many times a CON request is sent again before the exchange fails.
    max_retransmit: int = 4
    #: What a tombstone (null value) does: ``skip``, ``empty`` (a request with an empty body) or ``delete``.
    tombstone: str = "skip"
    #: Requests of this statement in flight at once (different resources only; one resource stays in order).
    max_inflight: int = 1

    def overridden(self, properties: tuple[tuple[str, str], ...]) -> RequestOptions:
        """These options with a statement's (already validated) PROPERTIES applied."""
        given = dict(properties)
        return replace(
            self,
            method=given.get("method", self.method).upper(),
            confirmable=given.get("type", "CON" if self.confirmable else "NON").upper() == "CON",
            content_format=int(given.get("content.format", self.content_format)),
            timeout_s=_seconds(given["timeout"]) if "timeout" in given else self.timeout_s,
            ack_timeout_s=_seconds(given["ack.timeout"]) if "ack.timeout" in given else self.ack_timeout_s,
            max_retransmit=int(given.get("max.retransmit", self.max_retransmit)),
            tombstone=given.get("tombstone", self.tombstone).lower(),
            max_inflight=int(given.get("max.inflight", self.max_inflight)),
        )

    @property
    def code(self) -> Code:
        return Code[self.method]

    @cached_property
    def tuning(self) -> Transmission:
        return Transmission(self.confirmable, self.ack_timeout_s, self.max_retransmit)

    @property
    def response_timeout_s(self) -> float:
        """How long one request may take: the configured timeout, else RFC 7252 MAX_TRANSMIT_WAIT (the
        time a CON sender keeps retransmitting and then waits for the last answer; 93 s by default), so the
        timeout never cuts CoAP's own retransmission short."""
        return self.timeout_s if self.timeout_s is not None else self.tuning.MAX_TRANSMIT_WAIT


def _seconds(milliseconds: str) -> float:
    return int(milliseconds) / 1000.0


class CoapSender(mode.Service):
    """Owns the aiocoap client contexts for the worker's lifetime.

    ``max_inflight`` (``connect.coap.max.inflight``) bounds the exchanges in flight to the server. aiocoap
    keeps one confirmable exchange per remote (NSTART = 1, hard-coded in its message manager), so more than
    one needs more than one remote: the sender opens ``max_inflight`` client contexts ("lanes", each its own
    UDP socket and, for coaps, its own DTLS session) and sends each resource's requests on one lane, chosen
    by the resource, so one resource's requests never overtake each other while different resources go in
    parallel. No aiocoap code is changed.
    """

    def __init__(
        self,
        base_uri: str,
        options: RequestOptions | None = None,
        dtls: DtlsOptions | None = None,
        *,
        max_inflight: int = 1,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self._dtls = dtls
        self.max_inflight = max_inflight
        self._slots = asyncio.Semaphore(max_inflight)
        self._lanes: list[aiocoap.Context] = []
        #: Per lane, the server's address as aiocoap resolved it for the last delivered request (see send).
        self._remotes: list[Any] = []
        parts = urlsplit(base_uri)
        self.base_uri = base_uri
        self._origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._base_path = tuple(unquote(seg) for seg in parts.path.split("/") if seg)
        self.default_options = options or RequestOptions()

    async def on_start(self) -> None:
        # aiocoap logs every message at DEBUG; `faust worker` sets the root logger low, and building those
        # records costs ~12 % of throughput (DESIGN.md §8). Pin aiocoap's loggers.
        logging.getLogger("coap").setLevel(logging.INFO)
        for _ in range(self.max_inflight):
            context = await aiocoap.Context.create_client_context(transports=["udp6"])
            if self._dtls is not None:
                await add_dtls_transport(context, self._dtls)
            self._lanes.append(context)
            self._remotes.append(None)

    async def on_stop(self) -> None:
        lanes, self._lanes, self._remotes = self._lanes, [], []
        for context in lanes:
            await context.shutdown()

    def _lane(self, segments: tuple[str, ...]) -> int:
        if not self._lanes:
            raise RuntimeError("CoapSender.send() before the service started")
        if len(self._lanes) == 1:
            return 0
        return zlib.crc32("/".join(segments).encode()) % len(self._lanes)

    def resource_uri(self, segments: tuple[str, ...]) -> str:
        message = aiocoap.Message(code=Code.PUT, uri=self._origin, uri_path=self._base_path + segments)
        return message.get_request_uri()

    async def send(
        self,
        segments: tuple[str, ...],
        payload: bytes,
        where: RecordCoordinates,
        options: RequestOptions | None = None,
    ) -> Code:
        """Send one request to ``<base uri>/<segments>``; return the 2.xx code or raise DeliveryError."""
        lane = self._lane(segments)
        context = self._lanes[lane]
        options = options or self.default_options
        message = aiocoap.Message(
            code=options.code,
            transport_tuning=options.tuning,
            payload=payload,
            # An empty body (a tombstone sent as DELETE or as an empty request) has no content format.
            content_format=options.content_format if payload else None,
            uri=self._origin,
            uri_path=self._base_path + segments,
        )
        # aiocoap resolves a coap:// URI on every request (getaddrinfo in a thread, plus a socket to check the
        # route: ~25 % of the CPU of a request, DESIGN.md §8). The address it found for the last delivered
        # request is reused; aiocoap still checks that the lane's transport recognises it and resolves
        # again if not (a coaps session that was renewed). Any failure forgets it, so a moved server is
        # found again.
        if self._remotes[lane] is not None:
            message.remote = self._remotes[lane]
        try:
            async with self._slots:
                # aiocoap's blockwise wrapper costs a repr of every message (DESIGN.md §8); only a body larger
                # than one block needs it.
                blockwise = len(payload) > ONE_BLOCK
                exchange = context.request(message, handle_blockwise=blockwise).response
                response = await asyncio.wait_for(exchange, options.response_timeout_s)
        except BaseException as exc:
            self._remotes[lane] = None  # any failure (cancellation too) forgets the address
            if isinstance(exc, TimeoutError | aiocoap.error.Error):
                why, cause = self._no_response(exc, segments, options)
                raise DeliveryError(where, why, resource="/".join(segments), retriable=True) from cause
            raise
        self._remotes[lane] = message.remote
        code = response.code
        if code.is_successful():
            return code
        retriable = code.class_ == 5 or code in RETRIABLE_CLIENT_ERRORS
        detail = response.payload.decode("utf-8", "replace")[:200] if response.payload else ""
        raise DeliveryError(
            where,
            f"{self.resource_uri(segments)} answered {code}" + (f": {detail}" if detail else ""),
            resource="/".join(segments),
            code=code.dotted,
            retriable=retriable,
        )

    def _no_response(
        self, exc: BaseException, segments: tuple[str, ...], options: RequestOptions
    ) -> tuple[str, BaseException | None]:
        """Why a request got no response, and the exception to keep as the cause (aiocoap's own errors)."""
        uri = self.resource_uri(segments)
        if isinstance(exc, aiocoap.error.ConRetransmitsExceeded):
            return (
                f"no answer from {uri} to {options.max_retransmit + 1} transmissions of a confirmable "
                f"request (connect.coap.max.retransmit={options.max_retransmit}, "
                f"connect.coap.ack.timeout={options.ack_timeout_s * 1000:g} ms)"
            ), None
        if isinstance(exc, aiocoap.error.Error):
            return f"request to {uri} failed: {type(exc).__name__}: {exc}", exc
        return f"no response from {uri} within {options.response_timeout_s:g} s", None
