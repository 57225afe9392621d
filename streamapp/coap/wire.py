"""The CoAP message format (RFC 7252 §3) for the sink's own exchange layer: requests encoded, responses
decoded, by hand and only as far as a sink needs.

aiocoap builds a ``Message`` with an ``Options`` object per request and encodes it option by option: about a
fifth of its CPU per request (docs/delivery-engine.md, "Where the time goes"). A sink sends the same few
options again and again: Uri-Host (for a host name), Uri-Path, Content-Format and Uri-Query of one resource.
:class:`OptionCache` encodes them once per (server, path, query, Content-Format) and keeps the bytes
(a bounded cache); a request is then its 4-byte header, its token, those bytes, the Block1/Size1 options of
a block-wise transfer (RFC 7959; numbers 27 and 60 come after every option above, so they are appended) and
the payload. The bytes are exactly what aiocoap encodes for the same message (tests/unit/coap/test_wire.py
compares them).

Decoding reads the header, the token, the two block options (Block1 27, Block2 23), the Content-Format
(12, for a reply record), the OSCORE option (9, for ``oscore.py``) and the payload, and skips every other
option. A datagram that breaks the
format (version other than 1, a token longer than 8 bytes, a truncated option, the reserved nibble 15, a
payload marker before an empty payload) is :data:`None`: the caller drops it, as aiocoap drops what it
cannot parse. Unknown options, critical ones too, are skipped as aiocoap does (it keeps them opaque and
never rejects a response for one).
"""

from __future__ import annotations

from typing import NamedTuple

#: Message types (RFC 7252 §3).
CON, NON, ACK, RST = 0, 1, 2, 3
#: Codes the exchange layer looks at (class << 5 | detail).
EMPTY = 0x00
CONTINUE = 0x5F  # 2.31, RFC 7959
REQUEST_ENTITY_TOO_LARGE = 0x8D  # 4.13
#: Option numbers (RFC 7252 §5.10, RFC 7959 §2.1).
URI_HOST, URI_PORT, URI_PATH, CONTENT_FORMAT, URI_QUERY = 3, 7, 11, 12, 15
OSCORE = 9  # RFC 8613 §2
BLOCK2, BLOCK1, SIZE1 = 23, 27, 60
#: The block size the sink starts a block-wise transfer with: 2 ** (6 + 4) = 1024 bytes, as aiocoap.
DEFAULT_SZX = 6
#: Distinct (server, path, query, Content-Format) encodings kept; the oldest is dropped past this.
CACHED_OPTIONS = 4096


def option(previous: int, number: int, value: bytes) -> bytes:
    """One option after option ``previous``: delta and length nibbles with their extended bytes (§3.1)."""
    delta = number - previous
    length = len(value)
    head = bytearray(1)
    for shift, field in ((4, delta), (0, length)):
        if field < 13:
            head[0] |= field << shift
        elif field < 269:
            head[0] |= 13 << shift
            head.append(field - 13)
        else:
            head[0] |= 14 << shift
            head += (field - 269).to_bytes(2, "big")
    return bytes(head) + value


def uint(value: int) -> bytes:
    """An unsigned integer option value in as few bytes as it needs (zero is empty, §3.2)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def block_value(number: int, more: bool, szx: int) -> int:
    """A Block1/Block2 option value (RFC 7959 §2.2): NUM, M and SZX."""
    return number << 4 | more << 3 | szx


def encode_options(
    host: str | None, path: tuple[str, ...], content_format: int | None, query: tuple[str, ...]
) -> bytes:
    """Uri-Host, Uri-Path, Content-Format and Uri-Query, in option-number order."""
    out = []
    previous = 0
    if host is not None:
        out.append(option(previous, URI_HOST, host.encode()))
        previous = URI_HOST
    for segment in path:
        out.append(option(previous, URI_PATH, segment.encode()))
        previous = URI_PATH
    if content_format is not None:
        out.append(option(previous, CONTENT_FORMAT, uint(content_format)))
        previous = CONTENT_FORMAT
    for item in query:
        out.append(option(previous, URI_QUERY, item.encode()))
        previous = URI_QUERY
    return b"".join(out)


def last_option(
    host: str | None, path: tuple[str, ...], content_format: int | None, query: tuple[str, ...]
) -> int:
    """The number of the last option :func:`encode_options` writes (0: none)."""
    if query:
        return URI_QUERY
    if content_format is not None:
        return CONTENT_FORMAT
    if path:
        return URI_PATH
    return URI_HOST if host is not None else 0


class OptionCache:
    """The encoded options of one server's requests, per (resource, query, Content-Format), cached."""

    __slots__ = ("_cache", "base_path", "host")

    def __init__(self, host: str | None, base_path: tuple[str, ...] = ()) -> None:
        #: The Uri-Host option's value (a host name, lower case), or None for an IP literal.
        self.host = host
        #: The server URI's own path, before every resource's segments.
        self.base_path = base_path
        self._cache: dict[tuple[tuple[str, ...], tuple[str, ...], int | None], tuple[bytes, int]] = {}

    def get(
        self, segments: tuple[str, ...], query: tuple[str, ...], content_format: int | None
    ) -> tuple[bytes, int]:
        """The options' bytes and the number of the last one, for the resource ``base_path + segments``."""
        key = (segments, query, content_format)
        found = self._cache.get(key)
        if found is None:
            path = self.base_path + segments
            found = (
                encode_options(self.host, path, content_format, query),
                last_option(self.host, path, content_format, query),
            )
            cache = self._cache
            if len(cache) >= CACHED_OPTIONS:
                del cache[next(iter(cache))]
            cache[key] = found
        return found


def block_options(previous: int, block1: int, size1: int | None) -> bytes:
    """Block1 (and on a transfer's first block Size1, the body's size) after option ``previous``."""
    encoded = option(previous, BLOCK1, uint(block1))
    if size1 is not None:
        encoded += option(BLOCK1, SIZE1, uint(size1))
    return encoded


def encode(mtype: int, code: int, mid: int, token: bytes, options: bytes, payload: bytes) -> bytes:
    """One message: header, token, encoded options, payload marker and payload (none when empty)."""
    header = bytes((0x40 | mtype << 4 | len(token), code, mid >> 8, mid & 0xFF))
    if payload:
        return header + token + options + b"\xff" + payload
    return header + token + options


def empty(mtype: int, mid: int) -> bytes:
    """An empty ACK or RST echoing ``mid`` (§4.2, §4.3)."""
    return bytes((0x40 | mtype << 4, EMPTY, mid >> 8, mid & 0xFF))


class Incoming(NamedTuple):
    """A decoded datagram: what matching needs, the block options (None when absent) and the payload."""

    mtype: int
    code: int
    mid: int
    token: bytes
    block1: int | None
    block2: int | None
    payload: bytes
    #: The Content-Format option (§5.10.3) of a response, for its reply record; None when absent.
    content_format: int | None = None
    #: The OSCORE option's value (RFC 8613 §2; often empty in a response), None when absent: ``oscore.py``.
    oscore: bytes | None = None


def decode(data: bytes) -> Incoming | None:
    """The message in ``data``, or None when it breaks the format (see the module docstring)."""
    size = len(data)
    if size < 4:
        return None
    first = data[0]
    if first >> 6 != 1:
        return None
    tkl = first & 0x0F
    if tkl > 8:
        return None
    position = 4 + tkl
    if position > size:
        return None
    mtype = first >> 4 & 0x03
    code = data[1]
    mid = data[2] << 8 | data[3]
    token = data[4:position]
    block1 = block2 = content_format = None
    oscore = None
    number = 0
    while position < size:
        head = data[position]
        position += 1
        if head == 0xFF:
            if position == size:
                return None  # a payload marker must be followed by a payload (§3)
            return Incoming(mtype, code, mid, token, block1, block2, data[position:], content_format, oscore)
        delta = head >> 4
        length = head & 0x0F
        if delta >= 13:
            if delta == 13:
                if position >= size:
                    return None
                delta = data[position] + 13
                position += 1
            elif delta == 14:
                if position + 1 >= size:
                    return None
                delta = (data[position] << 8 | data[position + 1]) + 269
                position += 2
            else:
                return None
        if length >= 13:
            if length == 13:
                if position >= size:
                    return None
                length = data[position] + 13
                position += 1
            elif length == 14:
                if position + 1 >= size:
                    return None
                length = (data[position] << 8 | data[position + 1]) + 269
                position += 2
            else:
                return None
        end = position + length
        if end > size:
            return None
        number += delta
        if number in (BLOCK1, BLOCK2, CONTENT_FORMAT):
            value = int.from_bytes(data[position:end], "big")
            if number == BLOCK1:
                block1 = value
            elif number == BLOCK2:
                block2 = value
            else:
                content_format = value
        elif number == OSCORE:
            oscore = data[position:end]
        position = end
    return Incoming(mtype, code, mid, token, block1, block2, b"", content_format, oscore)
