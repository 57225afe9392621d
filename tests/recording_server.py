"""A CoAP server for tests that accepts any request on any path and records it.

:class:`RecordingCoapServer` runs an aiocoap server context in its own thread with its own event loop, so it
can be used from synchronous tests and from async tests alike (the test's loop never serves CoAP itself,
which keeps a blocked or busy test loop from distorting what the sink under test sees).

Usage::

    with RecordingCoapServer() as server:
        ...  # point the sink at server.uri
        server.wait_for_count(3, timeout=10)
        assert [r.payload for r in server.requests_for("/sensors/a")] == [b"1", b"2", b"3"]

``RecordingCoapServer(transport="tcp")`` serves CoAP over TCP instead (RFC 8323, aiocoap's ``tcpserver``,
``coap+tcp://``), ``transport="tls"`` over TLS with the given server ``ssl_context`` (``tlsserver``,
``coaps+tcp://``); :meth:`restart` stops and starts it on the same port, its records kept, and
:meth:`drop_connections` cuts every TCP connection (a reset, no CoAP word) and goes on serving.

Each request's time at the server is kept too (:attr:`RecordingCoapServer.exchanges`): when it arrived, when
its answer was handed back to aiocoap, and both as positions in one event order, so a test can tell exactly
which requests were outstanding together (e.g. that one partition never had two at once).
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Literal

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code

from streamapp_harness.process import free_udp_tcp_ports
from tests.threaded_server import ThreadedServer

__all__ = ["Exchange", "Recorded", "RecordingCoapServer"]

_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it (block-wise transfers are reassembled into one record).

    ``path`` is absolute with a leading slash (``coap://h:p/a/b`` -> ``"/a/b"``, the root -> ``"/"``);
    ``method`` is ``"PUT"``/``"POST"``/...; ``mtype`` is ``"CON"`` or ``"NON"``; ``query`` holds the
    Uri-Query options in order.
    """

    method: str
    path: str
    payload: bytes
    content_format: int | None
    mtype: str
    query: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request's stay at the server: ``request`` as recorded, ``arrived``/``answered`` in
    ``time.monotonic()`` seconds, and ``opened``/``closed`` as positions in the server's single order of
    arrivals and answers (strictly increasing, so ``a.closed < b.opened`` means that b arrived after a was
    answered, whatever the clock resolution). ``answered``/``closed`` are None while it is being answered.

    "Answered" is when the server's handler returned the response to aiocoap (after any :meth:`set_delay`),
    which sends it at once: a client cannot have seen the answer earlier.
    """

    request: Recorded
    arrived: float
    opened: int
    answered: float | None
    closed: int | None


class _Timing:
    """Mutable per-request bookkeeping behind :class:`Exchange` (compact: there may be ~100 000)."""

    __slots__ = ("answered", "arrived", "closed", "opened")

    def __init__(self, arrived: float, opened: int) -> None:
        self.arrived = arrived
        self.opened = opened
        self.answered: float | None = None
        self.closed: int | None = None


@dataclass(frozen=True)
class _Override:
    code: Code
    when: Callable[[bytes], bool] | None
    times: int | None
    payload: bytes = b""
    content_format: int | None = None


def _normalize(path: str | Iterable[str]) -> str:
    """``"a/b"``, ``"/a/b"`` and ``("a", "b")`` all name ``"/a/b"``."""
    if not isinstance(path, str):
        return "/" + "/".join(path)
    return "/" + path.lstrip("/")


class _CatchAllResource(resource.Resource, resource.PathCapable):
    """Serves every path: as the context's root site it sees the full, unstripped Uri-Path.

    aiocoap's ``Site`` can only dispatch to fixed paths or to sub-sites below a non-empty prefix, so a
    catch-all for the whole tree is simplest as a root resource that overrides ``render`` (which
    ``resource.Resource`` otherwise dispatches to ``render_<method>``). ``PathCapable`` marks that it parses
    ``uri_path`` itself, should it ever be mounted into a ``Site``.
    """

    def __init__(self, server: RecordingCoapServer) -> None:
        super().__init__()
        self._server = server

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        response, delay, timing = self._server._handle(request)
        self._server._begin()
        try:
            if delay > 0:
                await asyncio.sleep(delay)  # a deliberately slow server, see set_delay()
            return response
        finally:
            self._server._end(timing)


class RecordingCoapServer(ThreadedServer):
    """aiocoap server on 127.0.0.1 (UDP only) that records every request in arrival order.

    Default answers: PUT/POST (and any other non-GET/DELETE method) -> 2.04 Changed; DELETE -> 2.02 Deleted;
    GET -> 2.05 with the last payload PUT/POSTed to that path (with its content format), 4.04 if none.
    :meth:`set_response` overrides the answer for one path (all methods), optionally only for payloads
    matching ``when`` and/or for the next ``times`` matching requests; :meth:`set_delay` slows every answer.
    A request is recorded (and ``wait_for_count`` woken) when it arrives, before any delay.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        startup_timeout: float = 10.0,
        transport: Literal["udp", "tcp", "tls"] = "udp",
        ssl_context: ssl.SSLContext | None = None,
        host: str = _HOST,
    ) -> None:
        """``port=0`` (default) lets the OS pick a free port at bind time, so there is no race for it (over
        TCP a free port is looked for: aiocoap takes 0 for its default port). ``host``: the host the URI
        names (``localhost`` for a TLS certificate's name; the server listens on 127.0.0.1 either way)."""
        super().__init__(startup_timeout)
        if (transport == "tls") != (ssl_context is not None):
            raise ValueError("transport='tls' and ssl_context go together")
        self._transport = transport
        self._ssl_context = ssl_context
        self._uri_host = host
        self._requested_port = port
        self._port: int | None = None
        self._cond = threading.Condition()
        self._requests: list[Recorded] = []
        #: Parallel to ``_requests``: when each arrived and was answered.
        self._timings: list[_Timing] = []
        self._events = itertools.count()
        self._overrides: dict[str, _Override] = {}
        self._delay = 0.0
        self._active = 0
        self._max_active = 0
        self._stored: dict[str, tuple[bytes, int | None]] = {}
        self._context: aiocoap.Context | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("RecordingCoapServer is not started")
        return self._port

    @property
    def uri(self) -> str:
        """``"coap://127.0.0.1:P"`` (no trailing slash); ``coap+tcp://`` or ``coaps+tcp://`` over TCP, TLS."""
        scheme = {"udp": "coap", "tcp": "coap+tcp", "tls": "coaps+tcp"}[self._transport]
        return f"{scheme}://{self._uri_host}:{self.port}"

    def restart(self) -> None:
        """Stop (closing every connection) and start again on the same port; the records stay."""
        self.stop()
        self.start()

    thread_name = "recording-coap-server"

    async def _open(self) -> None:
        self._context, self._port = await self._create_context()

    def _root_site(self) -> resource.Resource:
        """The resource every request goes to (a subclass may put a wrapper in front of it)."""
        return _CatchAllResource(self)

    async def _create_context(self) -> tuple[aiocoap.Context, int]:
        if self._transport != "udp":
            return await self._create_tcp_context()
        # udp6 only: the default server transports would also open TCP/TLS/WebSocket listeners.
        context = await aiocoap.Context.create_server_context(
            self._root_site(), bind=(_HOST, self._requested_port), transports=["udp6"]
        )
        # With port 0 the kernel chose the port at bind(); aiocoap (0.4.17) exposes it only via the transport.
        message_interface = context.request_interfaces[0].token_interface.message_interface
        port = int(message_interface._local_port())
        if port == 0:
            raise RuntimeError("aiocoap did not report the bound port")
        return context, port

    async def _create_tcp_context(self) -> tuple[aiocoap.Context, int]:
        if not self._requested_port:
            self._requested_port = free_udp_tcp_ports(2)
        port = self._requested_port
        # aiocoap binds its TLS server on the given port + 1 (its default ports 5683/5684).
        bind_port = port - 1 if self._transport == "tls" else port
        context = await aiocoap.Context.create_server_context(
            self._root_site(),
            bind=(_HOST, bind_port),
            transports=["tcpserver" if self._transport == "tcp" else "tlsserver"],
            _ssl_context=self._ssl_context,
        )
        return context, port

    async def _close(self) -> None:
        """Shut the context down; recorded requests stay readable. Over TCP every connection is closed too
        (aiocoap sends Release and leaves them open, as a stopped process would not)."""
        context, self._context = self._context, None
        if context is not None:
            interfaces = [getattr(i, "token_interface", None) for i in context.request_interfaces]
            for interface in interfaces:
                pool = getattr(interface, "_pool", None)
                if isinstance(pool, set):
                    # aiocoap 0.4.17 pools a connection before its TLS handshake and cannot name (repr) one
                    # whose handshake failed, which breaks its shutdown: those are dropped first.
                    pool.difference_update([c for c in pool if not hasattr(c, "_remote_hostinfo")])
            await context.shutdown()
            for interface in interfaces:
                for connection in list(getattr(interface, "_pool", ())):
                    if connection._transport is not None:
                        connection._transport.close()

    def drop_connections(self) -> int:
        """Over TCP or TLS: reset every open connection (as a crashed peer or a dead network path would:
        no Release, no Abort) and go on serving; returns how many were dropped."""
        if self._transport == "udp":
            raise RuntimeError("drop_connections() is for transport='tcp' or 'tls'")
        return self._call(self._drop_connections(), 10.0)

    async def _drop_connections(self) -> int:
        context = self._context
        dropped = 0
        for interface in context.request_interfaces if context is not None else ():
            for connection in list(getattr(getattr(interface, "token_interface", None), "_pool", ())):
                transport = getattr(connection, "_transport", None)
                if transport is not None:
                    transport.abort()
                    dropped += 1
        return dropped

    # -- configuration (thread-safe) -------------------------------------------------------------------------

    def set_response(
        self,
        path: str,
        code: Code | int,
        *,
        when: Callable[[bytes], bool] | None = None,
        times: int | None = None,
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> None:
        """Answer requests to ``path`` with ``code`` (e.g. ``Code.NOT_FOUND``) and ``payload`` (with the
        Content-Format option when ``content_format`` is given).

        ``when``: only requests whose payload satisfies it get ``code`` (it runs in the server thread; if it
        raises, the request is answered 5.00). ``times=n``: only the next ``n`` such requests, then the
        default answers resume (handy for "fail twice, then succeed" retry tests). Replaces any earlier
        override for ``path``.
        """
        if times is not None and times < 1:
            raise ValueError("times must be >= 1")
        with self._cond:
            self._overrides[_normalize(path)] = _Override(Code(code), when, times, payload, content_format)

    def clear_response(self, path: str) -> None:
        with self._cond:
            self._overrides.pop(_normalize(path), None)

    @property
    def max_concurrent(self) -> int:
        """The most requests that were being answered at the same time (see :meth:`set_delay`)."""
        with self._cond:
            return self._max_active

    def _begin(self) -> None:
        with self._cond:
            self._active += 1
            self._max_active = max(self._max_active, self._active)

    def _end(self, timing: _Timing) -> None:
        with self._cond:
            self._active -= 1
            timing.answered = time.monotonic()
            timing.closed = next(self._events)
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        """Requests being answered right now (arrived, answer not yet handed back)."""
        with self._cond:
            return self._active

    def set_delay(self, seconds: float) -> None:
        """Hold every answer back by ``seconds`` (0: at once); requests are still served concurrently."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        with self._cond:
            self._delay = float(seconds)

    def clear(self) -> None:
        """Forget recorded requests and stored payloads (overrides stay)."""
        with self._cond:
            self._requests.clear()
            self._timings.clear()
            self._stored.clear()

    # -- inspection (thread-safe) ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """Snapshot copy of all requests so far, in arrival order."""
        with self._cond:
            return list(self._requests)

    @property
    def count(self) -> int:
        """How many requests are recorded (cheaper than ``len(requests)``, which copies them)."""
        with self._cond:
            return len(self._requests)

    def requests_from(self, start: int) -> list[Recorded]:
        """Requests from index ``start`` on, in arrival order: for reading a long log incrementally."""
        with self._cond:
            return self._requests[start:]

    @property
    def exchanges(self) -> list[Exchange]:
        """Snapshot of every request with its arrival and answer times, in arrival order."""
        return self.exchanges_from(0)

    def exchanges_from(self, start: int) -> list[Exchange]:
        """:attr:`exchanges` from index ``start`` on."""
        with self._cond:
            return [
                Exchange(request, t.arrived, t.opened, t.answered, t.closed)
                for request, t in zip(self._requests[start:], self._timings[start:], strict=True)
            ]

    def requests_for(self, path: str) -> list[Recorded]:
        """Requests to ``path`` (leading slash optional), in arrival order."""
        wanted = _normalize(path)
        with self._cond:
            return [r for r in self._requests if r.path == wanted]

    def wait_for_count(self, n: int, timeout: float) -> list[Recorded]:
        """Block until at least ``n`` requests are recorded; return the snapshot, else ``TimeoutError``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {n} CoAP requests (got {len(self._requests)})"
                )
            return list(self._requests)

    # -- request handling (runs in the server thread) --------------------------------------------------------

    def _handle(self, request: aiocoap.Message) -> tuple[aiocoap.Message, float, _Timing]:
        """Record ``request`` and decide the answer; returns it with the delay to apply before sending and
        the request's timing entry (for :meth:`_end`)."""
        method = str(request.code)
        path = _normalize(request.opt.uri_path)
        content_format = request.opt.content_format
        cf = int(content_format) if content_format is not None else None
        record = Recorded(
            method=method,
            path=path,
            payload=bytes(request.payload),
            content_format=cf,
            mtype=str(request.mtype),
            query=tuple(request.opt.uri_query),
        )
        with self._cond:
            timing = _Timing(time.monotonic(), next(self._events))
            self._requests.append(record)
            self._timings.append(timing)
            self._cond.notify_all()
            delay = self._delay
            override = self._overrides.get(path)
            try:
                matches = override is not None and (override.when is None or override.when(record.payload))
            except BaseException:
                # aiocoap answers 5.00 at once: the request is answered now.
                timing.answered, timing.closed = time.monotonic(), next(self._events)
                raise
            if override is not None and matches:
                if override.times is not None:
                    if override.times <= 1:
                        del self._overrides[path]
                    else:
                        self._overrides[path] = replace(override, times=override.times - 1)
                answer = aiocoap.Message(code=override.code, payload=override.payload)
                if override.content_format is not None:
                    answer.opt.content_format = override.content_format
                return answer, delay, timing
            if request.code == Code.GET:
                stored = self._stored.get(path)
                response = (
                    aiocoap.Message(code=Code.NOT_FOUND)
                    if stored is None
                    else aiocoap.Message(code=Code.CONTENT, payload=stored[0], content_format=stored[1])
                )
            elif request.code == Code.DELETE:
                self._stored.pop(path, None)
                response = aiocoap.Message(code=Code.DELETED)
            else:
                self._stored[path] = (record.payload, cf)
                response = aiocoap.Message(code=Code.CHANGED)
        return response, delay, timing
