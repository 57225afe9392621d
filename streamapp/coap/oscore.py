"""OSCORE (RFC 8613): requests protected end to end with a security context, through aiocoap's OSCORE.

Why aiocoap's: OSCORE is key derivation (HKDF), COSE Encrypt0 with AES-CCM, the option classes (what goes
inside the ciphertext, what stays outside), the compressed OSCORE option and the nonce rules. aiocoap
implements all of it, is interop-tested (the OSCORE plug tests), and keeps a security context on disk
with its sequence number persisted ahead (:class:`aiocoap.oscore.FilesystemSecurityContext`). Writing
that again by hand would be the riskiest code in the sink. What stays ours is the glue: a protected
request is just another *outer* message for the exchange layer (``exchange.py``), which keeps RFC 7252's
rules for it as for any other (Message IDs, retransmission of the same datagram, the deadline) over
whatever carries it (UDP, DTLS, or another link), or for ``tcp.py``, which keeps RFC 8323's (one connection,
matching by token, a dropped connection re-opened). So this module touches no link, and of the message
formats only puts the outer message into TCP's (``tcp_wire.py``) for ``tcp.py``.

How one request goes (:class:`ProtectedExchange`, an :class:`~streamapp.coap.exchange.Exchange`):

1. The *inner* request is an :class:`aiocoap.Message`: the configured method, Uri-Host (a host name only),
   Uri-Path, Content-Format, Uri-Query, the payload and, for a body over one block, Block1/Size1 as inner
   options (RFC 8613 §4.1.3.4.1: the body is split *before* protection, each block its own protected
   request; this is what aiocoap's client does and what aiocoap's server reassembles).
2. ``protect()`` gives the outer message (POST, Uri-Host, the OSCORE option, the ciphertext as payload)
   and the request identifiers (kid, Partial IV) that bind the response to it (§7.1). Its options are
   encoded with aiocoap's encoder and handed to the exchange as the message's options.
3. The response is matched by token as always; its OSCORE option (``wire.Incoming.oscore``) and payload
   go to ``unprotect()`` with the request identifiers. The *inner* code, payload, Content-Format and Block1
   are what the exchange goes on with (2.31 Continue, 4.13, the final answer), and what the record's
   :class:`~streamapp.records.Answer` carries.
4. An inner 4.01 Unauthorized with an Echo option (RFC 8613 Appendix B.1.2, RFC 9175 §2.4: a server that
   lost its replay window asks for proof of freshness) makes the exchange send the same request once more
   with that Echo value, as a new protected message (a new sequence number); a second such answer ends the
   request. Nothing else is resent.
5. Every other failure ends the request with :class:`OscoreError` (a ``DeliveryError`` for the policy, see
   ``sender.py``): a response without OSCORE (the server's unprotected error, "Security context not found",
   "Replay detected", "Decryption failed": §8.2, §7.4, unauthenticated, so never taken as delivery), a
   response that fails verification (§8.4: the client stops processing it), a context that is exhausted
   (§7.2.1) or whose sequence number cannot be persisted (§7.5).

Over CoAP over TCP or TLS (RFC 8323, ``coap+tcp://``, ``coaps+tcp://``) the same request goes as a
:class:`ProtectedTcpExchange`, a :class:`~streamapp.coap.tcp.TcpExchange` with the same steps: the outer
message is the same (OSCORE binds neither a Message ID nor a type, which RFC 8323 has not, nor the token), in
the TCP message format; its inner Block1 blocks are as large as the peer's Max-Message-Size allows (up to
1024 bytes: the whole body in one message when it fits, as for plain requests over TCP). One rule differs:
over UDP a retransmission repeats the protected datagram (the server's message layer recognises it by its
Message ID before OSCORE sees it), while over TCP nothing is ever sent twice as it was. A request whose
connection dropped unanswered starts again on the next one protected anew (a new sequence number for each of
its messages): the old protected message again would be a replay the server refuses (§7.4).

Sequence numbers (RFC 8613 §7.2, §7.5, Appendix B.1.1): ``PersistentContext`` is aiocoap's
``FilesystemSecurityContext``, which, before it hands out a sender sequence number, makes sure
``sequence.json`` holds a larger "next-to-send" (persisting in growing steps, 10 up to 10 000 ahead, fsynced
and renamed into place), and starts from the persisted value after a restart: so no number is used twice,
whatever kills the process. It also takes a ``lock`` file (flock, released by the kernel when the process
dies), so two processes never use one context. Two gaps of aiocoap 0.4.17 are closed (by extending its
private methods, so the class lives in ``streamapp/patches/aiocoap.py``): the rename is made durable by an
fsync of the directory (a power cut could otherwise bring the old file back), and a failed write no longer
counts the step as persisted (aiocoap raised its in-memory mark before writing, so the numbers after a
failed write would have been used unpersisted).

No key material reaches a log line: this module logs none, aiocoap's own key tracing
(``aiocoap.cryptography``, DEBUG; the name is checked in ``streamapp/patches/aiocoap.py``) is silenced,
an error names files and fields, never values, and a context has a ``repr`` without secrets.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiocoap
from aiocoap import oscore
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.optiontypes import BlockOption

from streamapp.coap import tcp_wire, wire
from streamapp.coap.exchange import BlockwiseError, Exchange, ExchangeError, Response
from streamapp.coap.tcp import MAX_SZX, TcpExchange
from streamapp.config.oscore_context import check_context_directory
from streamapp.errors import ConfigError
from streamapp.logs import get_logger
from streamapp.patches.aiocoap import KEY_TRACING_LOGGER, PersistentContext

log = get_logger(__name__)

#: The configuration key (and, as ``oscore.context``, the KCQL property) naming a context directory.
KEY = "connect.coap.oscore.context"
#: The replay window a server keeps by default (RFC 8613 §7.4, aiocoap's and Californium's: 32): requests
#: that overtake an older one by more than this make the older one a "replay".
OSCORE_REPLAY_WINDOW = oscore.DEFAULT_WINDOWSIZE

UNAUTHORIZED = int(Code.UNAUTHORIZED)
#: The longest Partial IV (RFC 8613 §6.1: up to 5 bytes, for sequence numbers up to 2^40 - 1).
LONGEST_PARTIAL_IV = 5

# aiocoap traces nonces and plaintexts (and, with AIOCOAP_REVEAL_KEYS, keys) at DEBUG on this logger.
logging.getLogger(KEY_TRACING_LOGGER).setLevel(logging.WARNING)


def _code_of(message: aiocoap.Message) -> int:
    """A message's code as a number (aiocoap types a message's code as optional; every message here has
    one: protect() and unprotect() set it)."""
    assert message.code is not None
    return int(message.code)


class OscoreError(ExchangeError):
    """A protected request ended without an authenticated final answer; the message says why.

    ``code`` is the response's code when a response came (an unprotected one's, or the inner 4.01 of a second
    Echo challenge), ``retriable`` whether resending the record can help.
    """

    def __init__(self, message: str, *, code: int | None = None, retriable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable


class SecurityContext:
    """One context directory, opened once per worker (its lock held until :meth:`close`)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        try:
            self.context = PersistentContext(directory)
        except Exception as exc:  # filelock.Timeout, LoadError, OSError, JSON errors
            raise ConfigError(KEY, _why_not_opened(directory, exc)) from None
        self.closed = False
        self._overheads: dict[str | None, int] = {}

    def __repr__(self) -> str:
        return f"<SecurityContext {self.directory}>"

    @property
    def next_sequence_number(self) -> int:
        return int(self.context.sender_sequence_number)

    def protect(self, inner: aiocoap.Message) -> tuple[aiocoap.Message, oscore.RequestIdentifiers]:
        """The outer message of ``inner`` and its request identifiers; OscoreError if no sequence number can
        be had (the context is exhausted, or its next step cannot be persisted)."""
        if self.closed:
            raise OscoreError(
                "the OSCORE security context is closed (the worker is stopping)", retriable=True
            )
        try:
            protected: tuple[aiocoap.Message, oscore.RequestIdentifiers] = self.context.protect(inner)
        except oscore.ContextUnavailable:
            raise OscoreError(
                f"the OSCORE security context {self.directory} is exhausted (sender sequence numbers reach "
                "2^40 - 1, RFC 8613 §7.2.1): provision a new one"
            ) from None
        except OSError as exc:
            raise OscoreError(
                f"the OSCORE sequence number could not be persisted in {self.directory} ({exc.strerror}); "
                "nothing was sent (RFC 8613 §7.5)",
                retriable=True,
            ) from None
        return protected

    def protection_overhead(self, host: str | None) -> int:
        """At most how many bytes protecting a request adds to its plaintext (inner code, options, payload
        marker and payload): the outer Uri-Host and OSCORE options, the OSCORE option with the longest
        Partial IV, and the AEAD tag. For sizing a message to a peer's limit before a sequence number is spent
        on it (``ProtectedTcpExchange``)."""
        overhead = self._overheads.get(host)
        if overhead is None:
            context = self.context
            id_context = context.id_context
            longest_option = (
                1  # the flag byte
                + LONGEST_PARTIAL_IV
                + (1 + len(id_context) if id_context is not None else 0)
                + len(context.sender_id)
            )
            outer_options = wire.encode_options(host, (), None, ()) + wire.option(
                wire.URI_HOST if host is not None else 0, wire.OSCORE, bytes(longest_option)
            )
            overhead = self._overheads[host] = len(outer_options) + context.alg_aead.tag_bytes
        return overhead

    def unprotect(
        self, code: int, oscore_option: bytes | None, payload: bytes, request_id: oscore.RequestIdentifiers
    ) -> aiocoap.Message:
        """The inner response of an outer one (its ``code``, OSCORE option and ``payload``, whatever message
        format carried it), verified; raises OscoreError when it is unprotected or fails verification."""
        if oscore_option is None:
            detail = payload.decode("utf-8", "replace")[:200]
            raise OscoreError(
                f"the server answered {Code(code)} without OSCORE protection"
                + (f" ({detail})" if detail else "")
                + ": an unprotected answer is not authenticated and is no delivery (RFC 8613 §8.2, §8.4)",
                code=code,
            )
        outer = aiocoap.Message(code=code, payload=payload)
        outer.opt.oscore = oscore_option
        outer.direction = aiocoap.message.Direction.INCOMING
        inner: aiocoap.Message
        try:
            inner, _ = self.context.unprotect(outer, request_id)
        except Exception as exc:  # ProtectionInvalid, cryptography's InvalidTag, a broken CBOR structure
            raise OscoreError(
                f"the server's {Code(code)} response failed OSCORE verification "
                f"({type(exc).__name__}: {exc}): it was discarded (RFC 8613 §8.4); check that the server "
                f"holds the mirror of {self.directory}"
            ) from None
        return inner

    def close(self) -> None:
        """Write back the next sequence number exactly and release the lock (a stopped worker)."""
        if self.closed:
            return
        self.closed = True
        self.context.release()


def _why_not_opened(directory: str, exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "Timeout":  # filelock
        return (
            f"{os.path.join(directory, 'lock')}: the security context is in use by another process (a "
            "context belongs to one worker: two would reuse each other's sequence numbers, RFC 8613 §7.2)"
        )
    if isinstance(exc, KeyError):
        return f"{directory}: a field is missing: {exc.args[0]}"
    if isinstance(exc, OSError):
        return f"{exc.filename or directory}: {exc.strerror}"
    return f"{directory}: {exc}"


def open_contexts(directories: Iterable[str | None]) -> dict[str, SecurityContext]:
    """Every context directory named (by the worker's key and by statements' PROPERTIES), opened once each:
    a directory named twice (two spellings too) is one context with one sequence number."""
    by_path: dict[str, SecurityContext] = {}
    opened: dict[str, SecurityContext] = {}
    for directory in directories:
        if not directory or directory in opened:
            continue
        try:
            check_context_directory(directory)
        except ValueError as exc:
            for context in by_path.values():
                context.close()
            raise ConfigError(KEY, str(exc)) from None
        real = os.path.realpath(directory)
        if real not in by_path:
            by_path[real] = SecurityContext(directory)
        opened[directory] = by_path[real]
    return opened


def close_contexts(contexts: Mapping[str, SecurityContext]) -> None:
    for context in {id(c): c for c in contexts.values()}.values():
        context.close()


# -- the protected exchange ------------------------------------------------------------------------------


def _block_value(option: Any) -> int | None:
    """aiocoap's Block1 tuple as the option's integer value (what ``Exchange`` reads)."""
    if option is None:
        return None
    return wire.block_value(option.block_number, bool(option.more), option.size_exponent)


def _inner_request(
    code: int,
    host: str | None,
    path: tuple[str, ...],
    query: tuple[str, ...],
    content_format: int | None,
    payload: bytes,
    block1: Any,
    size1: int | None,
    echo: bytes | None,
) -> aiocoap.Message:
    """The request as the server's resource sees it: what ``protect()`` splits into the inner message (class
    E: Uri-Path, Content-Format, Uri-Query, Block1, Size1, Echo, the payload) and the outer one (Uri-Host)."""
    inner = aiocoap.Message(code=Code(code), payload=payload)
    options = inner.opt
    if host is not None:
        options.uri_host = host
    options.uri_path = path
    if payload and content_format is not None:
        options.content_format = content_format
    if query:
        options.uri_query = query
    if block1 is not None:
        options.block1 = block1
    if size1 is not None:
        options.size1 = size1
    if echo is not None:
        options.echo = echo
    return inner


def _echo_asked(inner: aiocoap.Message) -> bytes | None:
    """The Echo value of an inner 4.01 Unauthorized that asks for proof of freshness (RFC 8613 Appendix
    B.1.2, RFC 9175 §2.4), else None."""
    echo = inner.opt.echo
    if _code_of(inner) == UNAUTHORIZED and echo is not None:
        return bytes(echo)
    return None


def _echo_asked_again() -> OscoreError:
    return OscoreError(
        "the server answered 4.01 Unauthorized with an Echo option again, to the request that carried its "
        "Echo value (RFC 9175 §2.4): given up",
        code=UNAUTHORIZED,
    )


def _log_echo_resend(server: str | None) -> None:
    log.info(
        "coap.oscore_echo",
        server=server,
        why="the server asked for freshness (4.01 with Echo): the request is sent once more with it",
    )


class ProtectedExchange(Exchange):
    """An :class:`Exchange` whose every message is OSCORE-protected: the inner request is kept, each message
    (each block, an Echo resend) is protected afresh, each response unprotected before the exchange reads
    it. Retransmissions repeat the protected datagram as it was (same Message ID, same sequence number)."""

    __slots__ = (
        "_context",
        "_echoed",
        "_inner_code",
        "_request_id",
        "_resend",
        "content_format",
        "host",
        "path",
        "query",
    )

    def __init__(
        self,
        context: SecurityContext,
        code: int,
        confirmable: bool,
        host: str | None,
        path: tuple[str, ...],
        query: tuple[str, ...],
        content_format: int | None,
        payload: bytes,
        *,
        ack_timeout: float,
        random_factor: float,
        max_retransmit: int,
        timeout_s: float,
        on_done: Callable[[Response | None, BaseException | None], None],
    ) -> None:
        super().__init__(
            int(Code.POST),
            confirmable,
            b"",
            0,
            payload,
            ack_timeout=ack_timeout,
            random_factor=random_factor,
            max_retransmit=max_retransmit,
            timeout_s=timeout_s,
            on_done=on_done,
        )
        self._context = context
        self._inner_code = code
        self.host = host
        self.path = path
        self.query = query
        self.content_format = content_format
        self._request_id: oscore.RequestIdentifiers | None = None
        self._echoed = False
        #: How to send the message in flight again as a new one (for an Echo challenge).
        self._resend: Callable[[bytes | None], None] = self._send_whole

    # -- sending -------------------------------------------------------------------------------------------

    def begin(self, endpoint: Any) -> None:
        self.endpoint = endpoint
        self._deadline = endpoint.loop.time() + self.timeout_s
        if len(self.payload) > 16 << self._szx:
            self._send_block(0)
        else:
            self._send_whole(None)

    def _send_whole(self, echo: bytes | None) -> None:
        self._resend = self._send_whole
        self._send_protected(self.payload, None, None, echo)

    def _send_block(self, number: int) -> None:
        """Block ``number`` of the body as inner Block1 (RFC 8613 §4.1.3.4.1), Size1 on the first."""
        size = 16 << self._szx
        start = number * size
        payload = self.payload
        if start >= len(payload):
            self.fail(BlockwiseError(f"no block {number} in {len(payload)} bytes at the server's block size"))
            return
        chunk = payload[start : start + size]
        more = start + size < len(payload)
        szx = self._szx
        self._block = (number, more, szx)
        block1 = BlockOption.BlockwiseTuple(number, more, szx)
        size1 = len(payload) if number == 0 else None
        self._resend = lambda echo: self._send_protected(chunk, block1, size1, echo)
        self._send_protected(chunk, block1, size1, None)

    def _send_protected(self, payload: bytes, block1: Any, size1: int | None, echo: bytes | None) -> None:
        inner = _inner_request(
            self._inner_code,
            self.host,
            self.path,
            self.query,
            self.content_format,
            payload,
            block1,
            size1,
            echo,
        )
        try:
            outer, self._request_id = self._context.protect(inner)
        except OscoreError as exc:
            self.fail(exc)
            return
        assert outer.code is not None  # aiocoap types a message's code as optional; protect() sets it
        self.code = _code_of(outer)
        self._send(outer.opt.encode(), outer.payload)

    # -- receiving -----------------------------------------------------------------------------------------

    def answered(self, message: wire.Incoming) -> None:
        """Unprotect the response, answer an Echo challenge once, and go on with the inner response."""
        request_id = self._request_id
        assert request_id is not None
        try:
            inner = self._context.unprotect(message.code, message.oscore, message.payload, request_id)
        except OscoreError as exc:
            self.fail(exc)
            return
        echo = _echo_asked(inner)
        if echo is not None:
            if self._echoed:
                self.fail(_echo_asked_again())
                return
            # RFC 8613 Appendix B.1.2: the server's replay window is being rebuilt; the same request once more
            # with the Echo value proves it fresh. A new protected message: new ID, token, sequence number.
            self._echoed = True
            endpoint = self.endpoint
            _log_echo_resend(endpoint.remote if endpoint is not None else None)
            self._resend(echo)
            return
        content_format = inner.opt.content_format
        super().answered(
            wire.Incoming(
                message.mtype,
                _code_of(inner),
                message.mid,
                message.token,
                _block_value(inner.opt.block1),
                _block_value(inner.opt.block2),
                bytes(inner.payload),
                None if content_format is None else int(content_format),
            )
        )


#: Room kept in every protected message over TCP for the inner options one message of a request may add to
#: its resource's: Block1 (5 bytes with its header), Size1 (6) and an Echo (RFC 9175 §2.2.1: up to 40 bytes,
#: 43 with its header), so that each block, and its resend with an Echo, fits the peer's Max-Message-Size.
_INNER_RESERVE = 5 + 6 + 43


class ProtectedTcpExchange(TcpExchange):
    """A :class:`~streamapp.coap.tcp.TcpExchange` whose every message is OSCORE-protected, as
    :class:`ProtectedExchange` is over UDP: the inner request is kept, each message is protected when it is
    put on a connection (the body, each inner Block1 block, the Echo resend, and everything again after a
    dropped connection: :meth:`restart`), each response unprotected before the exchange reads it.

    Nothing protected is ever sent twice (see the module docstring): a message's bytes are built for the
    token and connection they go on, from the inner request, with a new sequence number each time.

    Block-wise (RFC 8613 §4.1.3.4.1, RFC 8323 §6): the body is split *before* protection, inner Block1 and
    Size1, each block its own protected request, as over UDP; the blocks are as large as the peer's
    Max-Message-Size allows for the *protected* message (its outer options and tag, the inner options and
    room for Block1, Size1 and an Echo counted), at most 1024 bytes, and the whole body goes in one message
    when that fits, as plain requests over TCP do."""

    __slots__ = (
        "_context",
        "_echoed",
        "_inner_code",
        "_max_size",
        "_request_id",
        "_resend",
        "content_format",
        "host",
        "path",
        "query",
    )

    def __init__(
        self,
        context: SecurityContext,
        code: int,
        host: str | None,
        path: tuple[str, ...],
        query: tuple[str, ...],
        content_format: int | None,
        payload: bytes,
        timeout_s: float,
        on_done: Callable[[Response | None, BaseException | None], None],
    ) -> None:
        super().__init__(int(Code.POST), b"", 0, payload, timeout_s, on_done)
        self._context = context
        self._inner_code = code
        self.host = host
        self.path = path
        self.query = query
        self.content_format = content_format
        self._request_id: oscore.RequestIdentifiers | None = None
        self._echoed = False
        #: The peer's Max-Message-Size on the connection the request is on.
        self._max_size = tcp_wire.DEFAULT_MAX_MESSAGE_SIZE
        #: How to build the message in flight again, with a new token and the server's Echo value.
        self._resend: Callable[[bytes, bytes], bytes | None] = self._whole

    def restart(self) -> None:
        """Its connection dropped unanswered: it starts again on the next one, every message protected anew
        (nothing of the old connection is kept: not the request identifiers, not an Echo answered there)."""
        super().restart()
        self._request_id = None
        self._echoed = False

    # -- sending -------------------------------------------------------------------------------------------

    def first_message(self, token: bytes, max_size: int) -> bytes | None:
        """Its first message on a connection whose peer takes at most ``max_size`` bytes, protected: the
        whole body when it fits, else inner block 0 of the largest block size that does."""
        self._max_size = max_size
        room = max_size - self._fixed_size(len(token))
        if len(self.payload) <= room:
            self._block = None
            self._resend = self._whole
            return self._whole(token, None)
        szx = MAX_SZX
        while szx >= 0 and 16 << szx > room:
            szx -= 1
        if szx < 0:
            self.fail(
                BlockwiseError(
                    f"the server's Max-Message-Size of {max_size} bytes leaves no room for the protected "
                    f"request's options, its OSCORE option and tag, and a 16-byte block"
                )
            )
            return None
        self._szx = szx
        return self.block_message(token, 0)

    def block_message(self, token: bytes, number: int) -> bytes | None:
        """Inner block ``number`` at the current block size, protected (RFC 8613 §4.1.3.4.1); Size1 on the
        first."""
        size = 16 << self._szx
        start = number * size
        payload = self.payload
        if start >= len(payload):
            self.fail(BlockwiseError(f"no block {number} in {len(payload)} bytes at the server's block size"))
            return None
        chunk = payload[start : start + size]
        more = start + size < len(payload)
        self._block = (number, more, self._szx)
        block1 = BlockOption.BlockwiseTuple(number, more, self._szx)
        size1 = len(payload) if number == 0 else None
        self._resend = lambda token, echo: self._protected(token, chunk, block1, size1, echo)
        return self._protected(token, chunk, block1, size1, None)

    def _whole(self, token: bytes, echo: bytes | None) -> bytes | None:
        return self._protected(token, self.payload, None, None, echo)

    def _fixed_size(self, token_length: int) -> int:
        """At most how many bytes a protected message of this request takes besides its chunk of the body:
        the largest header, the token, the outer options and tag, the payload marker, and the plaintext's
        inner code, options (with room for Block1, Size1 and an Echo) and payload marker."""
        inner_options = wire.encode_options(
            None, self.path, self.content_format if self.payload else None, self.query
        )
        return (
            tcp_wire.MAX_HEADER
            + token_length
            + self._context.protection_overhead(self.host)
            + 1  # the outer payload marker
            + 1  # the inner code
            + len(inner_options)
            + _INNER_RESERVE
            + 1  # the inner payload marker
        )

    def _protected(
        self, token: bytes, payload: bytes, block1: Any, size1: int | None, echo: bytes | None
    ) -> bytes | None:
        """One message of the request, protected with a new sequence number, in the TCP format; None (and
        the request failed) when no sequence number can be had or the message would not fit."""
        inner = _inner_request(
            self._inner_code,
            self.host,
            self.path,
            self.query,
            self.content_format,
            payload,
            block1,
            size1,
            echo,
        )
        try:
            outer, self._request_id = self._context.protect(inner)
        except OscoreError as exc:
            self.fail(exc)
            return None
        data = tcp_wire.encode(_code_of(outer), token, outer.opt.encode(), outer.payload)
        if len(data) > self._max_size:  # only an Echo longer than RFC 9175 allows gets here
            self.fail(
                BlockwiseError(
                    f"the protected message of {len(data)} bytes does not fit the server's Max-Message-Size "
                    f"of {self._max_size} bytes"
                )
            )
            return None
        return data

    # -- receiving -----------------------------------------------------------------------------------------

    def answered(self, message: tcp_wire.Message) -> None:
        """Unprotect the response, answer an Echo challenge once, and go on with the inner response."""
        request_id = self._request_id
        assert request_id is not None
        try:
            inner = self._context.unprotect(
                message.code, message.option(wire.OSCORE), message.payload, request_id
            )
        except OscoreError as exc:
            self.fail(exc)
            return
        echo = _echo_asked(inner)
        if echo is not None:
            if self._echoed:
                self.fail(_echo_asked_again())
                return
            # RFC 8613 Appendix B.1.2, as over UDP: the same message once more with the Echo value, protected
            # anew (new token, new sequence number), on the connection that carried the challenge.
            self._echoed = True
            client, connection = self.client, self.connection
            assert connection is not None
            _log_echo_resend(client.remote if client is not None else None)
            resend = self._resend
            connection.send_next(self, lambda token: resend(token, echo))
            return
        options = []
        content_format = inner.opt.content_format
        if content_format is not None:
            options.append((wire.CONTENT_FORMAT, wire.uint(int(content_format))))
        block1 = _block_value(inner.opt.block1)
        if block1 is not None:
            options.append((wire.BLOCK1, wire.uint(block1)))
        super().answered(
            tcp_wire.Message(_code_of(inner), message.token, tuple(options), bytes(inner.payload))
        )


#: Options a sink's protected request may carry inside (class E) and outside (class U), RFC 8613 §4.1.
INNER_OPTIONS = (
    OptionNumber.URI_PATH,
    OptionNumber.CONTENT_FORMAT,
    OptionNumber.URI_QUERY,
    OptionNumber.BLOCK1,
    OptionNumber.SIZE1,
    OptionNumber.ECHO,
)
OUTER_OPTIONS = (OptionNumber.URI_HOST, OptionNumber.OSCORE)

__all__ = [
    "KEY",
    "OscoreError",
    "ProtectedExchange",
    "ProtectedTcpExchange",
    "SecurityContext",
    "close_contexts",
    "open_contexts",
]
