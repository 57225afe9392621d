"""The CoAP client side of the sink: one aiocoap context, one request per (record, statement).

A request is delivered when the server answers 2.xx. Every other outcome raises :class:`DeliveryError`
with the response code (or the exception) and whether resending could help.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import aiocoap
import mode
from aiocoap.numbers.codes import Code

from streamapp.errors import DeliveryError, RecordCoordinates

#: 4.xx codes that mean "try again later" rather than "this request is wrong".
RETRIABLE_CLIENT_ERRORS = frozenset({Code.REQUEST_ENTITY_INCOMPLETE, Code.TOO_MANY_REQUESTS})


@dataclass(frozen=True)
class RequestOptions:
    method: str = "PUT"
    confirmable: bool = True
    content_format: int = 50
    timeout_s: float = 30.0


class CoapSender(mode.Service):
    """Owns the aiocoap client context for the worker's lifetime."""

    def __init__(self, base_uri: str, options: RequestOptions, **kwargs: object) -> None:
        super().__init__(**kwargs)
        parts = urlsplit(base_uri)
        self.base_uri = base_uri
        self._origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._base_path = tuple(unquote(seg) for seg in parts.path.split("/") if seg)
        self._options = options
        self._code = Code.POST if options.method == "POST" else Code.PUT
        self._tuning = aiocoap.Reliable if options.confirmable else aiocoap.Unreliable
        self._context: aiocoap.Context | None = None

    async def on_start(self) -> None:
        # aiocoap logs every message at DEBUG; `faust worker` sets the root logger low, and building those
        # records costs ~12 % of throughput (DESIGN.md §8). Pin aiocoap's loggers.
        logging.getLogger("coap").setLevel(logging.INFO)
        self._context = await aiocoap.Context.create_client_context()

    async def on_stop(self) -> None:
        if self._context is not None:
            await self._context.shutdown()
            self._context = None

    def resource_uri(self, segments: tuple[str, ...]) -> str:
        message = aiocoap.Message(code=self._code, uri=self._origin, uri_path=self._base_path + segments)
        return message.get_request_uri()

    async def send(self, segments: tuple[str, ...], payload: bytes, where: RecordCoordinates) -> Code:
        """Send one request to ``<base uri>/<segments>``; return the 2.xx code or raise DeliveryError."""
        if self._context is None:
            raise RuntimeError("CoapSender.send() before the service started")
        message = aiocoap.Message(
            code=self._code,
            transport_tuning=self._tuning,
            payload=payload,
            content_format=self._options.content_format,
            uri=self._origin,
            uri_path=self._base_path + segments,
        )
        resource = "/".join(segments)
        request = self._context.request(message)
        try:
            response = await asyncio.wait_for(request.response, self._options.timeout_s)
        except TimeoutError:
            raise DeliveryError(
                where,
                f"no response from {self.resource_uri(segments)} within {self._options.timeout_s:g} s",
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
