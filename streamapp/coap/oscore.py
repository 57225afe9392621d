"""OSCORE (RFC 8613): requests protected end to end with a security context, through aiocoap's OSCORE.

Why aiocoap's: OSCORE is key derivation (HKDF), COSE Encrypt0 with AES-CCM, the option classes (what goes
inside the ciphertext, what stays outside), the compressed OSCORE option and the nonce rules. aiocoap
implements all of it, is interop-tested (the OSCORE plug tests), and keeps a security context on disk
with its sequence number persisted ahead (:class:`aiocoap.oscore.FilesystemSecurityContext`). Writing
that again by hand would be the riskiest code in the sink. What stays ours is the glue: a protected
request is just another *outer* message for the exchange layer (``exchange.py``), which keeps RFC 7252's
rules for it as for any other (Message IDs, retransmission of the same datagram, the deadline) over
whatever carries it (UDP, DTLS, or another link). So this module touches neither the wire nor the link.

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

Sequence numbers (RFC 8613 §7.2, §7.5, Appendix B.1.1): :class:`PersistentContext` is aiocoap's
``FilesystemSecurityContext``, which, before it hands out a sender sequence number, makes sure
``sequence.json`` holds a larger "next-to-send" (persisting in growing steps, 10 up to 10 000 ahead, fsynced
and renamed into place), and starts from the persisted value after a restart: so no number is used twice,
whatever kills the process. It also takes a ``lock`` file (flock, released by the kernel when the process
dies), so two processes never use one context. Two gaps of aiocoap 0.4.17 are closed here: the rename is
made durable by an fsync of the directory (a power cut could otherwise bring the old file back), and a
failed write no longer counts the step as persisted (aiocoap raised its in-memory mark before writing, so
the numbers after a failed write would have been used unpersisted).

No key material reaches a log line: this module logs none, aiocoap's own key tracing
(``aiocoap.cryptography``, DEBUG) is silenced, an error names files and fields, never values, and a context
has a ``repr`` without secrets.
"""

from __future__ import annotations

import binascii
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap import oscore
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.optiontypes import BlockOption

from streamapp.coap import wire
from streamapp.coap.exchange import BlockwiseError, Exchange, ExchangeError, Response
from streamapp.errors import ConfigError
from streamapp.logs import get_logger

log = get_logger(__name__)

#: The configuration key (and, as ``oscore.context``, the KCQL property) naming a context directory.
KEY = "connect.coap.oscore.context"
#: The files of a context directory (aiocoap's format).
SETTINGS_FILES = ("settings.json", "secret.json")
SEQUENCE_FILE = "sequence.json"
#: The fields every context needs, in settings.json or secret.json (plain, ``_hex`` or ``_ascii``).
REQUIRED_FIELDS = ("sender-id", "recipient-id", "secret")
KNOWN_FIELDS = (*REQUIRED_FIELDS, "salt", "id-context", "algorithm", "kdf-hashfun", "window")
#: The replay window a server keeps by default (RFC 8613 §7.4, aiocoap's and Californium's: 32): requests
#: that overtake an older one by more than this make the older one a "replay".
OSCORE_REPLAY_WINDOW = oscore.DEFAULT_WINDOWSIZE
#: RFC 8613 §7.2.1: sender sequence numbers stay below 2 ** 40.
MAX_SEQUENCE_NUMBER = oscore.MAX_SEQNO

UNAUTHORIZED = int(Code.UNAUTHORIZED)

# aiocoap traces nonces and plaintexts (and, with AIOCOAP_REVEAL_KEYS, keys) at DEBUG on this logger.
logging.getLogger("aiocoap.cryptography").setLevel(logging.WARNING)


class OscoreError(ExchangeError):
    """A protected request ended without an authenticated final answer; the message says why.

    ``code`` is the response's code when a response came (an unprotected one's, or the inner 4.01 of a second
    Echo challenge), ``retriable`` whether resending the record can help.
    """

    def __init__(self, message: str, *, code: int | None = None, retriable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable


# -- the context directory -------------------------------------------------------------------------------


def check_context_directory(directory: str) -> None:
    """Read a context directory as the worker will, without taking its lock or writing: raises ValueError
    naming the file and the field that is wrong (never a value). An empty value is no context (valid)."""
    if not directory:
        return
    base = Path(directory)
    if not base.exists():
        raise ValueError(f"{directory}: no such directory (an OSCORE security context: settings.json, ...)")
    if not base.is_dir():
        raise ValueError(f"{directory} is not a directory (an OSCORE security context: settings.json, ...)")
    data = _read_fields(base)
    for field in REQUIRED_FIELDS:
        if field not in data:
            raise ValueError(
                f"{base / 'settings.json'} (or secret.json): {field} is missing "
                f"(as {field!r}, {field + '_hex'!r} or {field + '_ascii'!r})"
            )
    where = data["_files"]
    algorithm_name = data.get("algorithm", oscore.DEFAULT_ALGORITHM)
    algorithm = oscore.algorithms.get(algorithm_name) if isinstance(algorithm_name, str) else None
    if algorithm is None or not isinstance(algorithm, oscore.AeadAlgorithm):
        raise ValueError(f"{where['algorithm']}: algorithm is not an AEAD algorithm aiocoap knows")
    hashfun = data.get("kdf-hashfun", oscore.DEFAULT_HASHFUNCTION)
    if not isinstance(hashfun, str) or hashfun not in oscore.hashfunctions:
        raise ValueError(
            f"{where['kdf-hashfun']}: kdf-hashfun is not one of {', '.join(oscore.hashfunctions)}"
        )
    window = data.get("window", oscore.DEFAULT_WINDOWSIZE)
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"{where['window']}: window is not a positive integer")
    for field in ("sender-id", "recipient-id", "secret", "salt", "id-context"):
        if field in data and not isinstance(data[field], bytes):
            raise ValueError(f"{where[field]}: {field} must be given as {field}_hex or {field}_ascii")
    longest = algorithm.iv_bytes - 6  # RFC 8613 §5.2: the ID must fit the nonce
    for field in ("sender-id", "recipient-id"):
        if len(data[field]) > longest:
            raise ValueError(f"{where[field]}: {field} is longer than {longest} bytes ({algorithm_name})")
    if data["sender-id"] == data["recipient-id"]:
        # The two endpoints would derive the same key and could use the same nonces (RFC 8613 §3.3).
        raise ValueError(f"{where['sender-id']}: sender-id and recipient-id are the same")
    if not data["secret"]:
        raise ValueError(f"{where['secret']}: secret is empty")
    _check_sequence_file(base / SEQUENCE_FILE)
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(
            f"{directory}: the worker cannot write here (it keeps {SEQUENCE_FILE}, the persisted sequence "
            "number, and a lock file in the directory: RFC 8613 §7.5)"
        )


def _read_fields(base: Path) -> dict[str, Any]:
    """The fields of settings.json and secret.json (``_hex``/``_ascii`` decoded), and under ``_files`` the
    file each came from (for error messages)."""
    data: dict[str, Any] = {}
    files: dict[str, str] = {}
    present = [base / name for name in SETTINGS_FILES if (base / name).exists()]
    if not present:
        raise ValueError(f"{base}: neither settings.json nor secret.json is there")
    for path in present:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
            raise ValueError(f"{path}: cannot be read ({why})") from None
        try:
            content = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
        if not isinstance(content, dict):
            raise ValueError(f"{path}: not a JSON object")
        for raw_name, value in content.items():
            name = raw_name
            if raw_name.endswith("_hex"):
                name = raw_name[: -len("_hex")]
                try:
                    value = binascii.unhexlify(value)
                except (binascii.Error, TypeError, ValueError):
                    raise ValueError(f"{path}: {raw_name} is not hexadecimal") from None
            elif raw_name.endswith("_ascii"):
                name = raw_name[: -len("_ascii")]
                try:
                    value = value.encode("ascii")
                except (AttributeError, UnicodeEncodeError):
                    raise ValueError(f"{path}: {raw_name} is not ASCII text") from None
            if name not in KNOWN_FIELDS:
                raise ValueError(f"{path}: unknown field {raw_name!r} (known: {', '.join(KNOWN_FIELDS)})")
            if name in data:
                raise ValueError(f"{path}: {name} is given twice (in settings.json and secret.json, say)")
            data[name] = value
            files[name] = str(path)
    for name in KNOWN_FIELDS:
        files.setdefault(name, str(present[0]))
    data["_files"] = files
    return data


def _check_sequence_file(path: Path) -> None:
    if not path.exists():
        return
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({type(exc).__name__})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    following = content.get("next-to-send") if isinstance(content, dict) else None
    if (
        not isinstance(following, int)
        or isinstance(following, bool)
        or not 0 <= following <= MAX_SEQUENCE_NUMBER
    ):
        raise ValueError(f"{path}: next-to-send is not a sequence number (0 .. 2^40 - 1)")
    received = content.get("received")
    if received != "unknown" and not (
        isinstance(received, dict)
        and isinstance(received.get("index"), int)
        and isinstance(received.get("bitfield"), int)
    ):
        raise ValueError(f'{path}: received is neither "unknown" nor a replay window')


class PersistentContext(oscore.FilesystemSecurityContext):
    """aiocoap's file-backed context with the two §7.5 gaps closed (see the module docstring)."""

    def __repr__(self) -> str:
        return f"<OSCORE context {self.basedir}>"

    def _store(self) -> None:
        super()._store()
        directory = os.open(self.basedir, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename of sequence.json survives a power cut
        finally:
            os.close(directory)

    def post_seqnoincrease(self) -> None:
        persisted, step = self.sequence_number_persisted, self.sequence_number_chunksize
        try:
            super().post_seqnoincrease()
        except BaseException:
            # Not persisted: the next number tries again (and nothing was handed out for this one).
            self.sequence_number_persisted, self.sequence_number_chunksize = persisted, step
            raise


class SecurityContext:
    """One context directory, opened once per worker (its lock held until :meth:`close`)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        try:
            self.context = PersistentContext(directory)
        except Exception as exc:  # filelock.Timeout, LoadError, OSError, JSON errors
            raise ConfigError(KEY, _why_not_opened(directory, exc)) from None
        self.closed = False

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

    def unprotect(self, response: wire.Incoming, request_id: oscore.RequestIdentifiers) -> aiocoap.Message:
        """The inner response, verified; raises OscoreError when it is unprotected or fails verification."""
        if response.oscore is None:
            detail = response.payload.decode("utf-8", "replace")[:200]
            raise OscoreError(
                f"the server answered {Code(response.code)} without OSCORE protection"
                + (f" ({detail})" if detail else "")
                + ": an unprotected answer is not authenticated and is no delivery (RFC 8613 §8.2, §8.4)",
                code=response.code,
            )
        outer = aiocoap.Message(code=response.code, payload=response.payload)
        outer.opt.oscore = response.oscore
        outer.direction = aiocoap.message.Direction.INCOMING
        inner: aiocoap.Message
        try:
            inner, _ = self.context.unprotect(outer, request_id)
        except Exception as exc:  # ProtectionInvalid, cryptography's InvalidTag, a broken CBOR structure
            raise OscoreError(
                f"the server's {Code(response.code)} response failed OSCORE verification "
                f"({type(exc).__name__}: {exc}): it was discarded (RFC 8613 §8.4); check that the server "
                f"holds the mirror of {self.directory}"
            ) from None
        return inner

    def close(self) -> None:
        """Write back the next sequence number exactly and release the lock (a stopped worker)."""
        if self.closed:
            return
        self.closed = True
        if self.context.lockfile is not None:
            self.context._destroy()


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
        inner = aiocoap.Message(code=Code(self._inner_code), payload=payload)
        options = inner.opt
        if self.host is not None:
            options.uri_host = self.host
        options.uri_path = self.path
        if payload and self.content_format is not None:
            options.content_format = self.content_format
        if self.query:
            options.uri_query = self.query
        if block1 is not None:
            options.block1 = block1
        if size1 is not None:
            options.size1 = size1
        if echo is not None:
            options.echo = echo
        try:
            outer, self._request_id = self._context.protect(inner)
        except OscoreError as exc:
            self.fail(exc)
            return
        assert outer.code is not None  # aiocoap types a message's code as optional; protect() sets it
        self.code = int(outer.code)
        self._send(outer.opt.encode(), outer.payload)

    # -- receiving -----------------------------------------------------------------------------------------

    def answered(self, message: wire.Incoming) -> None:
        """Unprotect the response, answer an Echo challenge once, and go on with the inner response."""
        request_id = self._request_id
        assert request_id is not None
        try:
            inner = self._context.unprotect(message, request_id)
        except OscoreError as exc:
            self.fail(exc)
            return
        assert inner.code is not None  # as in _send_protected: the inner response unprotect() gives has one
        code = int(inner.code)
        echo = inner.opt.echo
        if code == UNAUTHORIZED and echo is not None:
            if self._echoed:
                self.fail(
                    OscoreError(
                        "the server answered 4.01 Unauthorized with an Echo option again, to the request "
                        "that carried its Echo value (RFC 9175 §2.4): given up",
                        code=code,
                    )
                )
                return
            # RFC 8613 Appendix B.1.2: the server's replay window is being rebuilt; the same request once more
            # with the Echo value proves it fresh. A new protected message: new ID, token, sequence number.
            self._echoed = True
            endpoint = self.endpoint
            log.info(
                "coap.oscore_echo",
                server=endpoint.remote if endpoint is not None else None,
                why="the server asked for freshness (4.01 with Echo): the request is sent once more with it",
            )
            self._resend(bytes(echo))
            return
        content_format = inner.opt.content_format
        super().answered(
            wire.Incoming(
                message.mtype,
                code,
                message.mid,
                message.token,
                _block_value(inner.opt.block1),
                _block_value(inner.opt.block2),
                bytes(inner.payload),
                None if content_format is None else int(content_format),
            )
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
    "PersistentContext",
    "ProtectedExchange",
    "SecurityContext",
    "check_context_directory",
    "close_contexts",
    "open_contexts",
]
