"""The CoAP client side of the sink: one aiocoap context, one request per (record, statement).

A request is delivered when the server answers 2.xx. Every other outcome raises :class:`DeliveryError`
with the response code (or the exception) and whether resending could help.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiocoap
import mode
from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import TransportTuning

from streamapp.coap import address_cache
from streamapp.coap.dtls import DtlsOptions, add_dtls_transport
from streamapp.coap.endpoints import DEFAULT_EXCHANGE_LIFETIME_S, Endpoint, EndpointPool
from streamapp.errors import DeliveryError
from streamapp.kcql.model import STATEMENT_PROPERTIES
from streamapp.keys import KEYS_BY_NAME, in_seconds
from streamapp.logs import get_logger
from streamapp.records import RecordCoordinates

log = get_logger("streamapp.coap")

#: 4.xx codes that mean "try again later" rather than "this request is wrong".
RETRIABLE_CLIENT_ERRORS = frozenset({Code.REQUEST_ENTITY_INCOMPLETE, Code.TOO_MANY_REQUESTS})
#: The largest body aiocoap sends in one message (block size 2 ** (DEFAULT_BLOCK_SIZE_EXP + 4) = 1024 bytes).
ONE_BLOCK = 2 ** (TransportTuning.DEFAULT_BLOCK_SIZE_EXP + 4)
#: Statements' own servers with open endpoints at most; beyond it the least recently used idle one is closed
#: (docs/addressing.md, "Many servers").
MAX_OPEN_SERVERS = 256
#: How often idle statement servers are looked for.
IDLE_SWEEP_INTERVAL_S = 30.0


class Transmission(TransportTuning):
    """aiocoap's transport parameters with RFC 7252 ACK_TIMEOUT and MAX_RETRANSMIT as configured."""

    def __init__(self, reliability: bool, ack_timeout_s: float, max_retransmit: int) -> None:
        self.reliability = reliability
        self.ACK_TIMEOUT = ack_timeout_s
        self.MAX_RETRANSMIT = max_retransmit


def _duration(key: str) -> tuple[str, Callable[[Any], Any]]:
    """A field from a duration key, in seconds."""
    return key, lambda milliseconds: in_seconds(key, milliseconds)


#: Each RequestOptions field from the one configuration key it comes from (KEYS in streamapp/keys.py
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

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> RequestOptions:
        """From resolved configuration values (``Settings.values``: key name -> parsed value)."""
        return cls(**{name: convert(values[key]) for name, (key, convert) in _FROM_KEY.items()})

    def overridden(self, properties: tuple[tuple[str, str], ...]) -> RequestOptions:
        """These options with a statement's PROPERTIES applied, each parsed as the key it overrides."""
        given = {STATEMENT_PROPERTIES[name]: text for name, text in properties}
        return replace(
            self,
            **{
                name: convert(KEYS_BY_NAME[key].parse(given[key]))
                for name, (key, convert) in _FROM_KEY.items()
                if key in given
            },
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
        time a CON sender keeps retransmitting and then waits for the last answer; 93 s by default) and one
        ACK_TIMEOUT more (95 s), so the timeout never cuts CoAP's own retransmission short: aiocoap gives
        up at MAX_TRANSMIT_WAIT itself when its random factor is the largest, and its error, naming the
        transmissions, must win that race."""
        if self.timeout_s is not None:
            return self.timeout_s
        return self.tuning.MAX_TRANSMIT_WAIT + self.ack_timeout_s


class Server:
    """One CoAP server: where its requests go, and its own source endpoints (window, DTLS sessions,
    Message-ID bookkeeping), opened on first use."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        parts = urlsplit(uri)
        self.origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self.base_path = tuple(unquote(seg) for seg in parts.path.split("/") if seg)
        #: The Uri-Host / Uri-Port options the URI puts on a request (none for an IP literal and the
        #: scheme's default port).
        probe = aiocoap.Message(code=Code.PUT, uri=self.origin)
        self.uri_options = {
            name: value
            for name, value in (("uri_host", probe.opt.uri_host), ("uri_port", probe.opt.uri_port))
            if value is not None
        }
        self.pool: EndpointPool | None = None
        self.last_used = 0.0  # loop time it was last addressed (CoapSender._server)

    @property
    def idle(self) -> bool:
        return self.pool is None or self.pool.idle


class CoapSender(mode.Service):
    """Sends the sink's requests to its server over a pool of source endpoints.

    ``window`` (``connect.coap.max.inflight``) bounds the exchanges in flight; each exchange has an
    endpoint of its own (:class:`~streamapp.coap.endpoints.EndpointPool`: one aiocoap client context and
    UDP socket each, and for ``coaps://`` a DTLS session each), so that aiocoap's one confirmable exchange
    per remote (NSTART = 1) holds per endpoint and no endpoint reuses a Message ID within
    EXCHANGE_LIFETIME. Which request goes when is the dispatcher's business (docs/delivery-engine.md); the
    sender only keeps these rules. aiocoap is not forked; it is touched in two documented places: the
    ledger wraps each message manager's ID counter, and ``address_cache`` memoises its address helpers.
    """

    def __init__(
        self,
        base_uri: str,
        options: RequestOptions | None = None,
        dtls: DtlsOptions | None = None,
        *,
        window: int = _DEFAULT["max_inflight"],
        lifetime_s: float = DEFAULT_EXCHANGE_LIFETIME_S,
        max_endpoints: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self._dtls = dtls
        self.window = window
        self._lifetime_s = lifetime_s
        self._max_endpoints = max_endpoints
        self._accepting = False
        self._default = Server(base_uri)
        #: Statements' own servers (docs/addressing.md), each with its own endpoints, opened on first use.
        self._servers: dict[str, Server] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.default_options = options or RequestOptions()

    async def on_start(self) -> None:
        # aiocoap logs every message at DEBUG; `faust worker` sets the root logger low, and building those
        # records costs ~12 % of throughput (docs/delivery-engine.md). Pin aiocoap's loggers.
        address_cache.install()
        coap_log = logging.getLogger("coap")
        coap_log.setLevel(logging.INFO)
        if not any(isinstance(f, UnmatchedResponses) for f in coap_log.filters):
            coap_log.addFilter(UnmatchedResponses())
        log.info(
            "coap.sender_started",
            window=self.window,
            event_loop=type(asyncio.get_running_loop()).__module__,
        )
        self._accepting = True

    def _pool_of(self, server: Server) -> EndpointPool:
        if server.pool is None:
            server.pool = EndpointPool(
                self._create_context,
                self.window,
                lifetime_s=self._lifetime_s,
                max_endpoints=self._max_endpoints,
            )
        return server.pool

    async def _create_context(self) -> aiocoap.Context:
        context = await aiocoap.Context.create_client_context(transports=["udp6"])
        if self._dtls is not None:
            await add_dtls_transport(context, self._dtls)
        return context

    @mode.Service.timer(IDLE_SWEEP_INTERVAL_S)
    async def _sweep_idle_servers(self) -> None:
        await self.close_idle_servers()

    async def close_idle_servers(self) -> None:
        """A statement server unused for EXCHANGE_LIFETIME has no Message ID live and no answer due: its
        endpoints (sockets, DTLS sessions) are closed, and opened afresh if it is addressed again."""
        idle_since = asyncio.get_running_loop().time() - self._lifetime_s
        for uri, server in list(self._servers.items()):
            if server.last_used <= idle_since and server.idle:
                pool = self._forget_server(uri, why="idle for EXCHANGE_LIFETIME")
                if pool is not None:
                    await pool.close()

    def _forget_server(self, uri: str, why: str) -> EndpointPool | None:
        """Take ``uri`` out of the open servers at once (a request addressing it later gets a fresh one) and
        hand back its endpoints for the caller to close."""
        server = self._servers.pop(uri)
        pool, server.pool = server.pool, None
        log.info("coap.server_closed", server=uri, why=why, open_servers=len(self._servers))
        return pool

    def _make_room_for_a_server(self) -> None:
        """At :data:`MAX_OPEN_SERVERS`, close the least recently used servers with nothing in flight."""
        idle = sorted((s.last_used, uri) for uri, s in self._servers.items() if s.idle)
        for _, uri in idle[: len(self._servers) - MAX_OPEN_SERVERS + 1]:
            pool = self._forget_server(uri, why=f"{MAX_OPEN_SERVERS} servers are open")
            if pool is not None:
                task = asyncio.ensure_future(pool.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def on_stop(self) -> None:
        self._accepting = False
        if self._closing:
            await asyncio.wait(self._closing, timeout=2.0)
        for server in (self._default, *self._servers.values()):
            pool, server.pool = server.pool, None
            if pool is not None:
                await pool.close()

    @property
    def _pools(self) -> list[EndpointPool]:
        return [s.pool for s in (self._default, *self._servers.values()) if s.pool is not None]

    @property
    def endpoints(self) -> int:
        """How many source endpoints are open, over every server."""
        return sum(len(pool.endpoints) for pool in self._pools)

    @property
    def message_ids(self) -> int:
        """Message IDs handed out so far, over every endpoint (block-wise continuations included)."""
        return sum(e.ledger.total for pool in self._pools for e in pool.endpoints)

    def _server(self, uri: str | None, where: RecordCoordinates, resource: str) -> Server:
        if uri is None:
            return self._default
        server = self._servers.get(uri)
        if server is None:
            if uri.lower().startswith("coaps:") and self._dtls is None:
                raise DeliveryError(
                    where,
                    f"{uri} is a coaps:// server, and the worker has no DTLS credentials",
                    resource=resource,
                    retriable=False,
                )
            if len(self._servers) >= MAX_OPEN_SERVERS:
                self._make_room_for_a_server()
            server = self._servers[uri] = Server(uri)
        server.last_used = asyncio.get_running_loop().time()  # addressed now: a request follows at once
        return server

    def resource_uri(
        self, segments: tuple[str, ...], server: str | None = None, query: tuple[str, ...] = ()
    ) -> str:
        target = self._default if server is None else Server(server)
        message = aiocoap.Message(
            code=Code.PUT, uri=target.origin, uri_path=target.base_path + segments, uri_query=query
        )
        return message.get_request_uri()

    async def send(
        self,
        segments: tuple[str, ...],
        payload: bytes,
        where: RecordCoordinates,
        options: RequestOptions | None = None,
        *,
        server: str | None = None,
        query: tuple[str, ...] = (),
    ) -> Code:
        """Send one request to ``<server or base uri>/<segments>?<query>``; return the 2.xx code or raise
        DeliveryError."""
        if not self._accepting:
            raise RuntimeError("CoapSender.send() before the service started")
        target = self._server(server, where, "/".join(segments))
        pool = self._pool_of(target)
        options = options or self.default_options
        # A body of one block is one message (one Message ID); a larger one goes block-wise, one per block.
        blockwise = len(payload) > ONE_BLOCK
        endpoint: Endpoint | None = await pool.acquire(1 + len(payload) // ONE_BLOCK if blockwise else 1)
        try:
            message = self._message(target, options, payload, segments, query, endpoint.remote)
            try:
                # aiocoap's blockwise wrapper costs a repr of every message; only a larger body needs it.
                exchange = endpoint.context.request(message, handle_blockwise=blockwise).response
                async with asyncio.timeout(options.response_timeout_s):  # one timer; wait_for costs a task
                    response = await exchange
            except BaseException as exc:
                # Any failure (cancellation too) retires the endpoint, and with it the address it resolved
                # and the exchange aiocoap would go on retransmitting (docs/delivery-engine.md).
                pool.retire(endpoint)
                endpoint = None
                if isinstance(exc, aiocoap.error.ResolutionError):
                    raise DeliveryError(
                        where,
                        f"{target.uri}: the host cannot be resolved ({exc})",
                        resource="/".join(segments),
                        retriable=False,
                    ) from None
                if isinstance(exc, TimeoutError | aiocoap.error.Error):
                    why, cause = self._no_response(exc, segments, options, server, query)
                    raise DeliveryError(where, why, resource="/".join(segments), retriable=True) from cause
                raise
            endpoint.remote = message.remote
        finally:
            if endpoint is not None:
                pool.release(endpoint)
        code = response.code
        if code.is_successful():
            return code
        retriable = code.class_ == 5 or code in RETRIABLE_CLIENT_ERRORS
        detail = response.payload.decode("utf-8", "replace")[:200] if response.payload else ""
        raise DeliveryError(
            where,
            f"{self.resource_uri(segments, server, query)} answered {code}"
            + (f": {detail}" if detail else ""),
            resource="/".join(segments),
            code=code.dotted,
            retriable=retriable,
        )

    @staticmethod
    def _message(
        target: Server,
        options: RequestOptions,
        payload: bytes,
        segments: tuple[str, ...],
        query: tuple[str, ...],
        remote: Any,
    ) -> aiocoap.Message:
        """The request. With the endpoint's server address known (its last answered request), the URI is
        not parsed again: the message gets that remote and the Uri-Host/Uri-Port options the URI gave
        (``Server.uri_options``); else aiocoap resolves the URI. aiocoap's own ``recognize_remote`` check
        still runs, so a renewed coaps session is resolved anew.
        Any failure forgets the address (see send)."""
        # An empty body (a tombstone sent as DELETE or as an empty request) has no content format.
        content_format = options.content_format if payload else None
        path = target.base_path + segments
        if remote is None:
            return aiocoap.Message(
                code=options.code,
                transport_tuning=options.tuning,
                payload=payload,
                content_format=content_format,
                uri=target.origin,
                uri_path=path,
                uri_query=query,
            )
        message = aiocoap.Message(
            code=options.code,
            transport_tuning=options.tuning,
            payload=payload,
            content_format=content_format,
            uri_path=path,
            uri_query=query,
            **target.uri_options,
        )
        message.remote = remote
        return message

    def _no_response(
        self,
        exc: BaseException,
        segments: tuple[str, ...],
        options: RequestOptions,
        server: str | None,
        query: tuple[str, ...],
    ) -> tuple[str, BaseException | None]:
        """Why a request got no response, and the exception to keep as the cause (aiocoap's own errors)."""
        uri = self.resource_uri(segments, server, query)
        if isinstance(exc, aiocoap.error.ConRetransmitsExceeded):
            return (
                f"no answer from {uri} to {options.max_retransmit + 1} transmissions of a confirmable "
                f"request (connect.coap.max.retransmit={options.max_retransmit}, "
                f"connect.coap.ack.timeout={options.ack_timeout_s * 1000:g} ms)"
            ), None
        if isinstance(exc, aiocoap.error.Error):
            return f"request to {uri} failed: {type(exc).__name__}: {exc}", exc
        return f"no response from {uri} within {options.response_timeout_s:g} s", None


#: At most one ``coap.unmatched_response`` line this often; the line counts those left out since the last.
UNMATCHED_LINE_INTERVAL_S = 10.0


class UnmatchedResponses(logging.Filter):
    """Turns aiocoap's INFO "could not be matched to any request" into a WARNING with the details.

    A response that matches no request is a server answering a request we gave up on, or answering a
    reused Message ID with the cached response of an earlier request (RFC 7252 4.4): worth seeing.
    """

    def __init__(self) -> None:
        super().__init__()
        self._last_line: float | None = None
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg.startswith("Response %r could not be matched")):
            return True
        # Anybody can send datagrams to a source port: a flood of them must not become a flood of lines.
        now = time.monotonic()
        if self._last_line is not None and now - self._last_line < UNMATCHED_LINE_INTERVAL_S:
            self._suppressed += 1
            return False
        suppressed, self._suppressed, self._last_line = self._suppressed, 0, now
        response = record.args[0] if isinstance(record.args, tuple) and record.args else None
        log.warning(
            "coap.unmatched_response",
            suppressed_since_last_line=suppressed,
            remote=str(getattr(response, "remote", None)),
            mid=getattr(response, "mid", None),
            token=getattr(getattr(response, "token", b""), "hex", lambda: "")(),
            code=str(getattr(response, "code", None)),
            why="a response that matches no request in flight (late, or the server took a reused "
            "Message ID for a repetition)",
        )
        return False
