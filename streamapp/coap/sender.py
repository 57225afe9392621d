"""The CoAP client side of the sink: one aiocoap context, one request per (record, statement).

A request is delivered when the server answers 2.xx. Every other outcome raises :class:`DeliveryError`
with the response code (or the exception) and whether resending could help.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit, urlunsplit

import aiocoap
import mode
from aiocoap.numbers.codes import Code

from streamapp.coap.dtls import DtlsOptions, add_dtls_transport
from streamapp.errors import DeliveryError, RecordCoordinates

#: 4.xx codes that mean "try again later" rather than "this request is wrong".
RETRIABLE_CLIENT_ERRORS = frozenset({Code.REQUEST_ENTITY_INCOMPLETE, Code.TOO_MANY_REQUESTS})


@dataclass(frozen=True)
class RequestOptions:
    """How one statement's requests are made; defaults from settings, overridden by KCQL PROPERTIES."""

    method: str = "PUT"
    confirmable: bool = True
    content_format: int = 50
    timeout_s: float = 30.0
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
            timeout_s=int(given["timeout"]) / 1000.0 if "timeout" in given else self.timeout_s,
            tombstone=given.get("tombstone", self.tombstone).lower(),
            max_inflight=int(given.get("max.inflight", self.max_inflight)),
        )

    @property
    def code(self) -> Code:
        return Code[self.method]

    @property
    def tuning(self) -> type[aiocoap.Reliable] | type[aiocoap.Unreliable]:
        return aiocoap.Reliable if self.confirmable else aiocoap.Unreliable


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

    async def on_stop(self) -> None:
        lanes, self._lanes = self._lanes, []
        for context in lanes:
            await context.shutdown()

    def _lane(self, segments: tuple[str, ...]) -> aiocoap.Context:
        if not self._lanes:
            raise RuntimeError("CoapSender.send() before the service started")
        if len(self._lanes) == 1:
            return self._lanes[0]
        return self._lanes[zlib.crc32("/".join(segments).encode()) % len(self._lanes)]

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
        context = self._lane(segments)
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
        resource = "/".join(segments)
        try:
            async with self._slots:
                response = await asyncio.wait_for(context.request(message).response, options.timeout_s)
        except TimeoutError:
            raise DeliveryError(
                where,
                f"no response from {self.resource_uri(segments)} within {options.timeout_s:g} s",
                resource=resource,
                retriable=True,
            ) from None
        except aiocoap.error.Error as exc:
            raise DeliveryError(
                where,
                f"request to {self.resource_uri(segments)} failed: {type(exc).__name__}: {exc}",
                resource=resource,
                retriable=True,
            ) from exc
        code = response.code
        if code.is_successful():
            return code
        retriable = code.class_ == 5 or code in RETRIABLE_CLIENT_ERRORS
        detail = response.payload.decode("utf-8", "replace")[:200] if response.payload else ""
        raise DeliveryError(
            where,
            f"{self.resource_uri(segments)} answered {code}" + (f": {detail}" if detail else ""),
            resource=resource,
            code=code.dotted,
            retriable=retriable,
        )
