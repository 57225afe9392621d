"""The CoAP client side of the sink: one aiocoap context, one request per (record, statement).

A request is delivered when the server answers 2.xx. Every other outcome raises :class:`DeliveryError`
with the response code (or the exception) and whether resending could help.
"""

from __future__ import annotations

import asyncio
import logging
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
        )

    @property
    def code(self) -> Code:
        return Code[self.method]

    @property
    def tuning(self) -> type[aiocoap.Reliable] | type[aiocoap.Unreliable]:
        return aiocoap.Reliable if self.confirmable else aiocoap.Unreliable


class CoapSender(mode.Service):
    """Owns the aiocoap client context for the worker's lifetime."""

    def __init__(
        self,
        base_uri: str,
        options: RequestOptions | None = None,
        dtls: DtlsOptions | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self._dtls = dtls
        parts = urlsplit(base_uri)
        self.base_uri = base_uri
        self._origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._base_path = tuple(unquote(seg) for seg in parts.path.split("/") if seg)
        self.default_options = options or RequestOptions()
        self._context: aiocoap.Context | None = None

    async def on_start(self) -> None:
        # aiocoap logs every message at DEBUG; `faust worker` sets the root logger low, and building those
        # records costs ~12 % of throughput (DESIGN.md §8). Pin aiocoap's loggers.
        logging.getLogger("coap").setLevel(logging.INFO)
        if self._dtls is None:
            self._context = await aiocoap.Context.create_client_context()
        else:
            self._context = await aiocoap.Context.create_client_context(transports=["udp6"])
            await add_dtls_transport(self._context, self._dtls)

    async def on_stop(self) -> None:
        if self._context is not None:
            await self._context.shutdown()
            self._context = None

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
        if self._context is None:
            raise RuntimeError("CoapSender.send() before the service started")
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
        request = self._context.request(message)
        try:
            response = await asyncio.wait_for(request.response, options.timeout_s)
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
