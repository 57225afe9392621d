"""The CoAP client side of the sink: one request per (record, statement), over a pool of source endpoints
per server.

A request is delivered when the server answers 2.xx. Every other outcome raises :class:`DeliveryError`
with the response code (or the exception) and whether resending could help. The requests are carried by the
sink's own exchange layer (``exchange.py``, message format ``wire.py``, DTLS ``dtls.py``), not by aiocoap's
(docs/delivery-engine.md, "Which library carries a request and why"); aiocoap's numbers (codes, transmission
parameters) and its URI composition for error messages are still used.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiocoap
import mode
from aiocoap.numbers import COAP_PORT, COAPS_PORT
from aiocoap.numbers.codes import Code
from aiocoap.util import hostportjoin
from mbedtls.tls import DTLSConfiguration

from streamapp.coap import exchange, tcp, wire
from streamapp.coap.dtls import DtlsLink, DtlsOptions
from streamapp.coap.endpoints import DEFAULT_EXCHANGE_LIFETIME_S, EndpointPool, MessageIdLedger
from streamapp.coap.exchange import (
    UNMATCHED_LINE_INTERVAL_S,
    BlockwiseError,
    ClientEndpoint,
    Exchange,
    Reset,
    Response,
    ResponseTimeout,
    RetransmitsExceeded,
)
from streamapp.coap.oscore import (
    OscoreError,
    ProtectedExchange,
    ProtectedTcpExchange,
    SecurityContext,
    close_contexts,
)
from streamapp.coap.request_options import RequestOptions
from streamapp.coap.tcp_tls import TCP_SCHEMES, TlsOptions
from streamapp.config.keys import default_of, default_seconds
from streamapp.errors import DeliveryError
from streamapp.logs import get_logger
from streamapp.records import Answer, RecordCoordinates

log = get_logger(__name__)

#: 4.xx codes that mean "try again later" rather than "this request is wrong".
RETRIABLE_CLIENT_ERRORS = frozenset({Code.REQUEST_ENTITY_INCOMPLETE, Code.TOO_MANY_REQUESTS})
#: The largest body sent in one message (block size 2 ** (6 + 4) = 1024 bytes, as aiocoap's); larger ones go
#: block-wise (RFC 7959 Block1).
ONE_BLOCK = 16 << wire.DEFAULT_SZX
#: Every code by its number (aiocoap's ``Code``: what ``send`` returns).
_CODES = tuple(Code(number) for number in range(256))
#: Statements' own servers with open endpoints at most; beyond it the least recently used idle one is closed
#: (docs/addressing.md, "Many servers").
MAX_OPEN_SERVERS = 256
#: How often idle statement servers are looked for.
IDLE_SWEEP_INTERVAL_S = 30.0
#: A UDP (or DTLS) endpoint of a server's pool, holding the Message-ID ledger the pool gave it.
_PoolEndpoint = ClientEndpoint[MessageIdLedger]
#: How long a TCP connection (and TLS handshake, and the server's CSM) may take to come up.
DEFAULT_CONNECT_TIMEOUT_S = default_seconds("connect.coap.handshake.timeout")


class Server:
    """One CoAP server: where its requests go, and its own source endpoints (window, DTLS sessions,
    Message-ID bookkeeping), opened on first use."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        parts = urlsplit(uri)
        self.origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self.base_path = tuple(unquote(seg) for seg in parts.path.split("/") if seg)
        scheme = parts.scheme.lower()
        self.secure = scheme == "coaps"
        #: CoAP over TCP or TLS (RFC 8323, ``tcp.py``): one connection (``link``) instead of endpoints.
        self.tcp = scheme in TCP_SCHEMES
        self.tls = scheme == "coaps+tcp"
        self.host = parts.hostname or ""
        self.port = parts.port or (COAPS_PORT if scheme.startswith("coaps") else COAP_PORT)
        #: The server as log lines name it.
        self.remote = hostportjoin(self.host, self.port)
        # The Uri-Host option the URI puts on a request, as aiocoap derives it: a host name, lower case;
        # none for an IP literal. (Uri-Port is never needed: the request goes to that port.)
        probe = aiocoap.Message(code=Code.PUT, uri=self.origin)
        #: The encoded options of this server's requests, per resource.
        self.options = wire.OptionCache(probe.opt.uri_host, self.base_path)
        self.pool: EndpointPool[_PoolEndpoint] | None = None
        self.link: tcp.TcpClient | None = None
        self.last_used = 0.0  # loop time it was last addressed (CoapSender._server)

    @property
    def idle(self) -> bool:
        return (self.pool is None or self.pool.idle) and (self.link is None or self.link.idle)


class CoapSender(mode.Service):
    """Sends the sink's requests to its server over a pool of source endpoints.

    ``window`` (``connect.coap.max.inflight``) bounds the exchanges in flight; each exchange has an
    endpoint of its own (:class:`~streamapp.coap.endpoints.EndpointPool` of
    :class:`~streamapp.coap.exchange.ClientEndpoint`: one UDP socket each, and for ``coaps://`` a DTLS
    session each), so that one exchange per endpoint (NSTART = 1) holds and no endpoint reuses a Message ID
    within EXCHANGE_LIFETIME. Which request goes when is the dispatcher's business
    (docs/delivery-engine.md); the sender only keeps these rules.

    :meth:`send` is a coroutine; :meth:`submit` does the same and returns a future at once (no task per
    request), for a caller that attaches done-callbacks.
    """

    def __init__(
        self,
        base_uri: str,
        options: RequestOptions | None = None,
        dtls: DtlsOptions | None = None,
        *,
        window: int = default_of("connect.coap.max.inflight"),
        lifetime_s: float = DEFAULT_EXCHANGE_LIFETIME_S,
        max_endpoints: int | None = None,
        tls: TlsOptions | None = None,
        tcp_connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        oscore: Mapping[str, SecurityContext] | None = None,
        **kwargs: Any,  # mode.Service's own: loop, beacon
    ) -> None:
        super().__init__(**kwargs)
        self._dtls = dtls
        self._tls = tls
        self._tcp_connect_timeout_s = tcp_connect_timeout_s
        #: OSCORE security contexts by the directory RequestOptions.oscore_context names (closed on stop).
        self._oscore = oscore or {}
        self.window = window
        self._lifetime_s = lifetime_s
        self._max_endpoints = max_endpoints
        self._accepting = False
        self._default = Server(base_uri)
        #: Statements' own servers (docs/addressing.md), each with its own endpoints, opened on first use.
        self._servers: dict[str, Server] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.default_options = options or RequestOptions()
        self._dtls_configuration: DTLSConfiguration | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def on_start(self) -> None:
        self._loop = asyncio.get_running_loop()
        log.info(
            "coap.sender_started",
            window=self.window,
            event_loop=type(asyncio.get_running_loop()).__module__,
        )
        self._accepting = True

    def _pool_of(self, server: Server) -> EndpointPool[_PoolEndpoint]:
        if server.pool is None:

            async def open_endpoint(ledger: MessageIdLedger) -> _PoolEndpoint:
                return await self._open_endpoint(server, ledger)

            server.pool = EndpointPool(
                open_endpoint,
                self.window,
                lifetime_s=self._lifetime_s,
                max_endpoints=self._max_endpoints,
            )
        return server.pool

    async def _open_endpoint(self, server: Server, ledger: MessageIdLedger) -> _PoolEndpoint:
        """A new source endpoint toward ``server``: a connected UDP socket (the address resolved now), or a
        DTLS link that handshakes on its first request."""
        endpoint = ClientEndpoint(ledger, server.remote, self._lifetime_s)
        if server.secure:
            assert self._dtls is not None  # submit() checks
            if self._dtls_configuration is None:
                self._dtls_configuration = self._dtls.configuration()
            endpoint.link = DtlsLink(endpoint, self._dtls, self._dtls_configuration, server.host, server.port)
        else:
            await exchange.connect_udp(endpoint, server.host, server.port)
        return endpoint

    def _link_of(self, server: Server) -> tcp.TcpClient:
        """The ``coap+tcp``/``coaps+tcp`` server's connection (opened by its first request)."""
        if server.link is None:
            server.link = tcp.TcpClient(
                server.host,
                server.port,
                server.origin,
                window=self.window,
                tls=self._tls if server.tls else None,
                connect_timeout_s=self._tcp_connect_timeout_s,
                loop=self._loop,
            )
        return server.link

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

    def _forget_server(self, uri: str, why: str) -> EndpointPool[_PoolEndpoint] | tcp.TcpClient | None:
        """Take ``uri`` out of the open servers at once (a request addressing it later gets a fresh one) and
        hand back its endpoints (or its TCP connection) for the caller to close."""
        server = self._servers.pop(uri)
        pool = server.pool if server.pool is not None else server.link
        server.pool = server.link = None
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
            link, server.link = server.link, None
            if link is not None:
                await link.close()
        close_contexts(self._oscore)

    @property
    def _pools(self) -> list[EndpointPool[_PoolEndpoint]]:
        return [s.pool for s in (self._default, *self._servers.values()) if s.pool is not None]

    @property
    def endpoints(self) -> int:
        """How many source endpoints (TCP connections too) are open, over every server."""
        links = (s.link for s in (self._default, *self._servers.values()) if s.link is not None)
        return sum(len(pool.endpoints) for pool in self._pools) + sum(link.connections for link in links)

    @property
    def message_ids(self) -> int:
        """Message IDs handed out so far, over every endpoint (block-wise continuations included)."""
        return sum(e.ledger.total for pool in self._pools for e in pool.endpoints)

    def _server(self, uri: str | None, where: RecordCoordinates, segments: tuple[str, ...]) -> Server:
        if uri is None:
            server = self._default
        else:
            server = self._servers.get(uri) or self._new_server(uri, where, "/".join(segments))
        if server.secure and self._dtls is None:
            raise DeliveryError(
                where,
                f"{server.uri} is a coaps:// server, and the worker has no DTLS credentials",
                resource="/".join(segments),
                retriable=False,
            )
        if server.tls and self._tls is None:
            raise DeliveryError(
                where,
                f"{server.uri} is a coaps+tcp:// server, and the worker has no TLS trust "
                "(connect.coap.truststore.path)",
                resource="/".join(segments),
                retriable=False,
            )
        # addressed now: a request follows at once
        assert self._loop is not None  # set when the service started, before submit() accepts requests
        server.last_used = self._loop.time()
        return server

    def _new_server(self, uri: str, where: RecordCoordinates, resource: str) -> Server:
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
        return server

    def resource_uri(
        self, segments: tuple[str, ...], server: str | None = None, query: tuple[str, ...] = ()
    ) -> str:
        target = self._default if server is None else Server(server)
        message = aiocoap.Message(
            code=Code.PUT, uri=target.origin, uri_path=target.base_path + segments, uri_query=query
        )
        uri: str = message.get_request_uri()  # aiocoap's method carries no annotations
        return uri

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
        answer = await self.submit(segments, payload, where, options, server=server, query=query)
        return _CODES[answer.code]

    def submit(
        self,
        segments: tuple[str, ...],
        payload: bytes,
        where: RecordCoordinates,
        options: RequestOptions | None = None,
        *,
        server: str | None = None,
        query: tuple[str, ...] = (),
    ) -> asyncio.Future[Answer]:
        """:meth:`send` without a coroutine: a future with the 2.xx :class:`Answer` or the DeliveryError
        (with the answer, when there was one). Cancelling it abandons the request (no more
        retransmissions; a late answer is unmatched)."""
        if not self._accepting:
            raise RuntimeError("CoapSender.send() before the service started")
        loop = self._loop
        assert loop is not None
        future = _Outcome(loop=loop)
        try:
            target = self._server(server, where, segments)
        except DeliveryError as exc:
            future.set_exception(exc)
            return future
        options = options or self.default_options
        if options.oscore_context is not None and options.oscore_context not in self._oscore:
            future.set_exception(
                DeliveryError(
                    where,
                    f"the worker holds no OSCORE security context {options.oscore_context}",
                    resource="/".join(segments),
                    retriable=False,
                )
            )
            return future
        if target.tcp:
            return self._submit_tcp(target, future, segments, payload, where, options, server, query)
        pool = target.pool or self._pool_of(target)
        request = _Request(
            self,
            target,
            pool,
            segments,
            payload,
            where,
            options,
            server,
            query,
            future,
        )
        future.request = request
        # A body of one block is one message (one Message ID); a larger one goes block-wise, one per block.
        ids = 1 + len(payload) // ONE_BLOCK if len(payload) > ONE_BLOCK else 1
        if options.oscore_context is not None:
            ids += 1  # room for the resend an OSCORE Echo challenge asks for (docs/oscore.md)
        endpoint = pool.take_nowait(ids)
        if endpoint is not None and not endpoint.stale:
            request.start(endpoint)
        else:
            # No free endpoint (open one, or wait for one), or its server's address is to be resolved again.
            request.task = loop.create_task(request.acquire(ids, endpoint))
        return future

    def _submit_tcp(
        self,
        target: Server,
        future: _Outcome,
        segments: tuple[str, ...],
        payload: bytes,
        where: RecordCoordinates,
        options: RequestOptions | None,
        server: str | None,
        query: tuple[str, ...],
    ) -> _Outcome:
        """:meth:`submit` to a ``coap+tcp``/``coaps+tcp`` server: the request goes on its connection
        (``tcp.py``), OSCORE-protected when the options name a context (``oscore.py``); the future settles as
        over UDP."""
        options = options or self.default_options
        request = _TcpRequest(self, target, None, segments, payload, where, options, server, query, future)
        future.request = request
        code = options.exchange_parameters[0]
        exchange: tcp.TcpExchange
        if options.oscore_context is not None:
            cache = target.options
            exchange = ProtectedTcpExchange(
                self._oscore[options.oscore_context],  # submit() checks
                code,
                cache.host,
                cache.base_path + segments,
                query,
                options.content_format,
                payload,
                options.response_timeout_s,
                request.done,
            )
        else:
            encoded, last = target.options.get(segments, query, options.content_format if payload else None)
            exchange = tcp.TcpExchange(code, encoded, last, payload, options.response_timeout_s, request.done)
        request.exchange = exchange
        (target.link or self._link_of(target)).start(exchange)
        return future

    def _no_answer(self, request: _Request, exc: BaseException) -> DeliveryError:
        """The DeliveryError of a request that got no final answer."""
        segments = request.segments
        resource = "/".join(segments)
        if isinstance(exc, OscoreError):
            code = None if exc.code is None else _CODES[exc.code]
            return DeliveryError(
                request.where,
                f"{self.resource_uri(segments, request.server, request.query)}: {exc}",
                resource=resource,
                code=None if code is None else code.dotted,
                retriable=exc.retriable,
            )
        if isinstance(exc, socket.gaierror):
            return DeliveryError(
                request.where,
                f"{request.target.uri}: the host cannot be resolved ({exc})",
                resource=resource,
                retriable=False,
            )
        why, cause = self._no_response(exc, segments, request.options, request.server, request.query)
        error = DeliveryError(request.where, why, resource=resource, retriable=True)
        error.__cause__ = cause
        return error

    def _answered(self, request: _Request, response: Response) -> Answer | DeliveryError:
        """A 2.xx answer, else its DeliveryError."""
        if 64 <= response.code < 96:  # 2.xx
            return Answer(response.code, response.payload, response.content_format)
        code = _CODES[response.code]
        retriable = code.class_ == 5 or code in RETRIABLE_CLIENT_ERRORS
        payload = response.payload
        detail = payload.decode("utf-8", "replace")[:200] if payload else ""
        return DeliveryError(
            request.where,
            f"{self.resource_uri(request.segments, request.server, request.query)} answered {code}"
            + (f": {detail}" if detail else ""),
            resource="/".join(request.segments),
            code=code.dotted,
            retriable=retriable,
            answer=Answer(response.code, payload, response.content_format),
        )

    def _no_response(
        self,
        exc: BaseException,
        segments: tuple[str, ...],
        options: RequestOptions,
        server: str | None,
        query: tuple[str, ...],
    ) -> tuple[str, BaseException | None]:
        """Why a request got no response, and the exception to keep as the cause."""
        uri = self.resource_uri(segments, server, query)
        if isinstance(exc, RetransmitsExceeded):
            return (
                f"no answer from {uri} to {options.max_retransmit + 1} transmissions of a confirmable "
                f"request (connect.coap.max.retransmit={options.max_retransmit}, "
                f"connect.coap.ack.timeout={options.ack_timeout_s * 1000:g} ms)"
            ), None
        if isinstance(exc, ResponseTimeout):
            return f"no response from {uri} within {options.response_timeout_s:g} s", None
        return f"request to {uri} failed: {type(exc).__name__}: {exc}", exc


class _Outcome(asyncio.Future[Answer]):
    """The future :meth:`CoapSender.submit` returns: cancelling it (the caller's task cancelled while it
    awaits it, too) abandons the request at once. (A subclass rather than a done-callback: that would cost
    every request one more callback through the loop.)"""

    request: _Request

    def cancel(self, msg: Any = None) -> bool:
        cancelled = super().cancel(msg)
        if cancelled:
            self.request.abandon()
        return cancelled


class _Request:
    """One request of :meth:`CoapSender.submit`, from taking an endpoint to settling its future."""

    __slots__ = (
        "endpoint",
        "exchange",
        "future",
        "options",
        "payload",
        "pool",
        "query",
        "segments",
        "sender",
        "server",
        "target",
        "task",
        "where",
    )

    future: _Outcome

    def __init__(
        self,
        sender: CoapSender,
        target: Server,
        pool: EndpointPool[_PoolEndpoint] | None,
        segments: tuple[str, ...],
        payload: bytes,
        where: RecordCoordinates,
        options: RequestOptions,
        server: str | None,
        query: tuple[str, ...],
        future: _Outcome,
    ) -> None:
        self.sender = sender
        self.target = target
        self.pool = pool
        self.segments = segments
        self.payload = payload
        self.where = where
        self.options = options
        self.server = server
        self.query = query
        self.future = future
        self.endpoint: _PoolEndpoint | None = None
        self.exchange: Exchange | tcp.TcpExchange | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def _udp_pool(self) -> EndpointPool[_PoolEndpoint]:
        """The pool of a UDP or DTLS request (a TCP request has none, and never takes an endpoint)."""
        assert self.pool is not None
        return self.pool

    async def acquire(self, ids: int, endpoint: _PoolEndpoint | None) -> None:
        """The slow path: wait for (or open) an endpoint, resolve the server again if due, then start."""
        pool = self._udp_pool
        try:
            if endpoint is None:
                endpoint = await pool.acquire(ids)
            if endpoint.stale:
                if self.target.secure:
                    endpoint.stale = False  # the DTLS link resolves again at its next handshake
                else:
                    await exchange.connect_udp(endpoint, self.target.host, self.target.port)
        except BaseException as exc:
            if endpoint is not None:
                pool.release(endpoint)
            if not self.future.done():
                if isinstance(exc, Exception):
                    self.future.set_exception(self.sender._no_answer(self, exc))
                else:
                    self.future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self.task = None
        if self.future.done():  # cancelled meanwhile
            pool.release(endpoint)
            return
        self.start(endpoint)

    def start(self, endpoint: _PoolEndpoint) -> None:
        self.endpoint = endpoint
        parameters = self.options.exchange_parameters
        code, confirmable, ack_timeout, random_factor, max_retransmit, timeout_s = parameters
        payload = self.payload
        context = self.options.oscore_context
        if context is not None:  # submit() checked that the sender holds it
            self.exchange = request = self._protected(
                self.sender._oscore[context], code, confirmable, parameters
            )
            endpoint.start(request)
            return
        # An empty body (a tombstone sent as DELETE or as an empty request) has no content format.
        encoded, last = self.target.options.get(
            self.segments, self.query, self.options.content_format if payload else None
        )
        self.exchange = request = Exchange(
            code,
            confirmable,
            encoded,
            last,
            payload,
            ack_timeout=ack_timeout,
            random_factor=random_factor,
            max_retransmit=max_retransmit,
            timeout_s=timeout_s,
            on_done=self.done,
        )
        endpoint.start(request)

    def _protected(
        self,
        context: SecurityContext,
        code: int,
        confirmable: bool,
        parameters: tuple[int, bool, float, float, int, float],
    ) -> Exchange:
        """The exchange of an OSCORE-protected request (``oscore.py``): the same request inside, another
        message outside."""
        _, _, ack_timeout, random_factor, max_retransmit, timeout_s = parameters
        cache = self.target.options
        return ProtectedExchange(
            context,
            code,
            confirmable,
            cache.host,
            cache.base_path + self.segments,
            self.query,
            self.options.content_format,
            self.payload,
            ack_timeout=ack_timeout,
            random_factor=random_factor,
            max_retransmit=max_retransmit,
            timeout_s=timeout_s,
            on_done=self.done,
        )

    def done(self, response: Response | None, exc: BaseException | None) -> None:
        """The exchange ended: the endpoint goes back to the pool, the future gets the outcome."""
        endpoint, self.endpoint = self.endpoint, None
        self.exchange = None
        if endpoint is not None:
            if exc is not None and not isinstance(exc, Reset | BlockwiseError | OscoreError):
                # No answer: the server's address is resolved again before the endpoint's next request.
                endpoint.forget_address()
            self._udp_pool.release(endpoint)
        future = self.future
        if future.done():
            return
        if exc is not None:
            future.set_exception(self.sender._no_answer(self, exc))
            return
        assert response is not None
        outcome = self.sender._answered(self, response)
        if isinstance(outcome, DeliveryError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def abandon(self) -> None:
        """The caller cancelled the future: the exchange stops (no more retransmissions) and its endpoint is
        free again."""
        if self.task is not None:
            self.task.cancel()
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is not None:
            exchange, self.exchange = self.exchange, None
            if isinstance(exchange, Exchange):  # always, with an endpoint (a TCP request has neither)
                endpoint.abort(exchange)
            self._udp_pool.release(endpoint)


class _TcpRequest(_Request):
    """A request over a ``coap+tcp``/``coaps+tcp`` connection: no endpoint of its own, and ``exchange`` is
    a :class:`~streamapp.coap.tcp.TcpExchange`."""

    __slots__ = ()

    def abandon(self) -> None:
        exchange, self.exchange = self.exchange, None
        if isinstance(exchange, tcp.TcpExchange) and exchange.client is not None:
            exchange.client.abandon(exchange)


__all__ = [
    "ONE_BLOCK",
    "RETRIABLE_CLIENT_ERRORS",
    "UNMATCHED_LINE_INTERVAL_S",
    "CoapSender",
    "Server",
]
