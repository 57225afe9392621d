"""Fake senders for the delivery engine's tests (``streamapp.engine.interfaces.Sender``): no socket, every
request recorded as a CoAP server would see it, answered as the test says.

- :class:`FakeSender` answers each request at once (or after :meth:`FakeSender.set_delay`), 2.04 unless
  :meth:`FakeSender.set_response` says otherwise for a path (with a payload and a Content-Format if it
  says so); a non-2.xx answer raises the :class:`~streamapp.errors.DeliveryError` CoapSender would raise
  (the code, whether resending helps, and the answer).
- :class:`HeldSender` holds every request until the test completes it (``held``), in any order.

The requests are :class:`tests.recording_server.Recorded`, the same shape the real recording server keeps,
so an engine test reads the same whichever it runs against.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiocoap.numbers.codes import Code

from streamapp.coap.sender import RETRIABLE_CLIENT_ERRORS
from streamapp.errors import DeliveryError
from streamapp.records import Answer, RecordCoordinates
from tests.recording_server import Recorded

#: The base URI the fakes pretend to send to (it appears in error texts only).
FAKE_URI = "coap://fake"


def recorded(segments: tuple[str, ...], payload: bytes, options: Any, query: tuple[str, ...]) -> Recorded:
    """A request as a server would record it."""
    return Recorded(
        method=options.method,
        path="/" + "/".join(segments),
        payload=payload,
        content_format=options.content_format if payload else None,
        mtype="CON" if options.confirmable else "NON",
        query=tuple(query),
    )


def refused(where: RecordCoordinates, path: str, code: Code, answer: Answer | None = None) -> DeliveryError:
    """What CoapSender raises for a non-2.xx answer."""
    return DeliveryError(
        where,
        f"{FAKE_URI}{path} answered {code}",
        resource=path.lstrip("/"),
        code=code.dotted,
        retriable=code.class_ == 5 or code in RETRIABLE_CLIENT_ERRORS,
        answer=answer or Answer(int(code), b""),
    )


@dataclass
class _Override:
    code: Code
    when: Callable[[bytes], bool] | None
    times: int | None
    payload: bytes = b""
    content_format: int | None = None


class _Submits:
    """``submit`` (what the engine calls) as a task around ``send``."""

    async def send(self, *args: Any, **kwargs: Any) -> Code:
        raise NotImplementedError

    def answer_to(self, path: str, code: Code) -> Answer:
        """The whole answer to a 2.xx request to ``path`` (only the code, unless a subclass says more)."""
        return Answer(int(code), b"")

    def resource_uri(
        self, segments: tuple[str, ...], server: str | None = None, query: tuple[str, ...] = ()
    ) -> str:
        return (server or FAKE_URI) + "/" + "/".join(segments) + ("?" + "&".join(query) if query else "")

    async def _answered(self, segments: tuple[str, ...], *args: Any, **kwargs: Any) -> Answer:
        code = await self.send(segments, *args, **kwargs)
        return self.answer_to("/" + "/".join(segments), code)

    def submit(
        self,
        segments: tuple[str, ...],
        payload: bytes,
        where: RecordCoordinates,
        options: Any,
        *,
        server: str | None = None,
        query: tuple[str, ...] = (),
    ) -> asyncio.Future[Answer]:
        return asyncio.ensure_future(
            self._answered(segments, payload, where, options, server=server, query=query)
        )


class FakeSender(_Submits):
    """Answers every request itself (see the module doc)."""

    def __init__(self, window: int = 1) -> None:
        self.window = window
        self.requests: list[Recorded] = []
        self.max_concurrent = 0
        self._concurrent = 0
        self._delay_s = 0.0
        self._overrides: dict[str, _Override] = {}
        #: The last answer an override gave per path (its payload and Content-Format).
        self._answers: dict[str, Answer] = {}

    def set_response(
        self,
        path: str,
        code: Code,
        *,
        when: Callable[[bytes], bool] | None = None,
        times: int | None = None,
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> None:
        """Answer requests to ``path`` with ``code`` (only those whose body satisfies ``when``; only the next
        ``times`` of them), and this payload and Content-Format."""
        self._overrides["/" + path.lstrip("/")] = _Override(code, when, times, payload, content_format)

    def answer_to(self, path: str, code: Code) -> Answer:
        return self._answers.get(path) or Answer(int(code), b"")

    def set_delay(self, seconds: float) -> None:
        """Answer each request this long after it arrived (so requests overlap as on a real link)."""
        self._delay_s = seconds

    def requests_for(self, path: str) -> list[Recorded]:
        wanted = "/" + path.lstrip("/")
        return [r for r in self.requests if r.path == wanted]

    def bodies(self, path: str) -> list[Any]:
        return [json.loads(r.payload) for r in self.requests_for(path)]

    def _answer(self, request: Recorded) -> Code:
        override = self._overrides.get(request.path)
        if override is None or (override.when is not None and not override.when(request.payload)):
            self._answers.pop(request.path, None)
            return Code.CHANGED
        self._answers[request.path] = Answer(int(override.code), override.payload, override.content_format)
        if override.times is not None:
            override.times -= 1
            if override.times == 0:
                del self._overrides[request.path]
        return override.code

    async def send(
        self,
        segments: tuple[str, ...],
        payload: bytes,
        where: RecordCoordinates,
        options: Any,
        *,
        server: str | None = None,
        query: tuple[str, ...] = (),
    ) -> Code:
        request = recorded(segments, payload, options, query)
        self.requests.append(request)
        self._concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self._concurrent)
        try:
            if self._delay_s:
                await asyncio.sleep(self._delay_s)  # the fake server's answer time
            code = self._answer(request)
        finally:
            self._concurrent -= 1
        if not code.is_successful():
            raise refused(where, request.path, code, self.answer_to(request.path, code))
        return code


class HeldSender(_Submits):
    """Every request waits until the test completes it: ``held`` entries are (segments, bodies, future,
    where); set the future to True (2.04) or False (5.03)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.held: list[tuple[tuple[str, ...], list[dict], asyncio.Future[bool], RecordCoordinates]] = []
        self.max_in_flight = 0
        self.sent: list[tuple[tuple[str, ...], list[dict]]] = []

    async def send(
        self,
        segments: tuple[str, ...],
        payload: bytes,
        where: RecordCoordinates,
        options: Any,
        *,
        server: str | None = None,
        query: tuple[str, ...] = (),
    ) -> Code:
        bodies = json.loads(payload)
        bodies = bodies if isinstance(bodies, list) else [bodies]
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry = (segments, bodies, future, where)
        self.held.append(entry)
        self.sent.append((segments, bodies))
        self.max_in_flight = max(self.max_in_flight, len(self.held))
        try:
            ok = await future
        finally:
            self.held.remove(entry)
        if not ok:
            raise refused(where, "/" + "/".join(segments), Code.SERVICE_UNAVAILABLE)
        return Code.CHANGED
