"""The CoAP-over-TCP message format (RFC 8323 §3.2) and its signaling messages (§5), by hand, for
``tcp.py``.

Why a second format: over a reliable transport CoAP has no Message ID and no type (TCP orders, retransmits and
de-duplicates), and the 4-byte header of RFC 7252 becomes a variable one that carries the message's length::

    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |  Len  |  TKL  | Extended Length (0, 8, 16 or 32 bits) ...
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |      Code     | Token (TKL bytes) ...  Options ... 0xFF Payload ...

``Len`` is the length of the options, the payload marker and the payload (not of the header, code or token):
0-12 as it is; 13, 14 and 15 say that an 8-, 16- or 32-bit extended length follows, holding the length
minus 13, 269 and 65 805. The options are encoded exactly as in RFC 7252 (``wire.option``), so a request's
option bytes come from the same ``wire.OptionCache`` as over UDP. The encoding is byte-identical to aiocoap's
``transports/tcp.py`` (``_serialize``), and the length reading to its ``_extract_message_size``
(tests/unit/coap/test_tcp_wire.py compares them).

Signaling messages (class 7, §5) reuse the format; their option numbers mean something per signaling code
(§5.2): CSM 7.01 carries Max-Message-Size (2) and Block-Wise-Transfer (4), Ping 7.02 and Pong 7.03 Custody
(2), Release 7.04 Alternative-Address (2) and Hold-Off (4), Abort 7.05 Bad-CSM-Option (2). As everywhere in
CoAP, odd option numbers are critical (§5.2).
"""

from __future__ import annotations

from typing import NamedTuple

from streamapp.coap import wire

#: Signaling codes (RFC 8323 §5.1, class 7).
CSM, PING, PONG, RELEASE, ABORT = 0xE1, 0xE2, 0xE3, 0xE4, 0xE5
#: Signaling option numbers (§5.3.1, §5.3.2, §5.4.1, §5.5.1, §5.5.2, §5.6.1).
MAX_MESSAGE_SIZE, BLOCK_WISE_TRANSFER = 2, 4
CUSTODY = 2
ALTERNATIVE_ADDRESS, HOLD_OFF = 2, 4
BAD_CSM_OPTION = 2
#: The Max-Message-Size a peer has until its CSM says otherwise (§5.3.1).
DEFAULT_MAX_MESSAGE_SIZE = 1152
#: The largest header: Len/TKL, a 32-bit extended length, the code.
MAX_HEADER = 6


def length_field(length: int) -> tuple[int, bytes]:
    """The Len nibble and the extended length bytes for ``length`` bytes of options and payload."""
    if length < 13:
        return length, b""
    if length < 269:
        return 13, (length - 13).to_bytes(1, "big")
    if length < 65805:
        return 14, (length - 269).to_bytes(2, "big")
    return 15, (length - 65805).to_bytes(4, "big")


def encode(code: int, token: bytes, options: bytes, payload: bytes = b"") -> bytes:
    """One message: Len/TKL, extended length, code, token, options, payload marker and payload (none when
    the payload is empty)."""
    length = len(options) + (len(payload) + 1 if payload else 0)
    nibble, extended = length_field(length)
    head = bytes((nibble << 4 | len(token),)) + extended + bytes((code,)) + token + options
    if payload:
        return head + b"\xff" + payload
    return head


def message_size(token_length: int, options_length: int, payload_length: int) -> int:
    """The size of a message with these parts, as :func:`encode` writes it (without building it)."""
    length = options_length + (payload_length + 1 if payload_length else 0)
    return 2 + len(length_field(length)[1]) + token_length + length


def frame_size(buffer: bytes | bytearray | memoryview, start: int = 0) -> int | None:
    """The whole size of the message that starts at ``buffer[start]`` (header, code, token, options and
    payload), or None while its length is not complete yet. TKL is not checked here (``decode`` does)."""
    available = len(buffer) - start
    if available < 1:
        return None
    first = buffer[start]
    nibble = first >> 4
    tkl = first & 0x0F
    if nibble < 13:
        return 2 + tkl + nibble
    extended = (1, 2, 4)[nibble - 13]
    if available < 1 + extended:
        return None
    length = int.from_bytes(buffer[start + 1 : start + 1 + extended], "big") + (13, 269, 65805)[nibble - 13]
    return 2 + extended + tkl + length


class Message(NamedTuple):
    """A decoded message: code, token, every option in order as (number, value), and the payload."""

    code: int
    token: bytes
    options: tuple[tuple[int, bytes], ...]
    payload: bytes

    def option(self, number: int) -> bytes | None:
        """The first value of option ``number``, or None."""
        for found, value in self.options:
            if found == number:
                return value
        return None

    def uint(self, number: int) -> int | None:
        """Option ``number`` as an unsigned integer, or None when absent."""
        value = self.option(number)
        return None if value is None else int.from_bytes(value, "big")


def decode(frame: bytes) -> Message | None:
    """The message that is exactly ``frame`` (as ``frame_size`` measured it), or None when it breaks the
    format: a TKL of 9-15 (§3.2), a truncated option, the reserved nibble 15, a payload marker with no
    payload (RFC 7252 §3), or a length that does not match."""
    size = frame_size(frame)
    if size is None or size != len(frame):
        return None
    first = frame[0]
    tkl = first & 0x0F
    if tkl > 8:
        return None
    nibble = first >> 4
    position = 1 + ((0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4)[nibble])
    code = frame[position]
    position += 1
    token = frame[position : position + tkl]
    position += tkl
    options: list[tuple[int, bytes]] = []
    number = 0
    end_of_frame = len(frame)
    while position < end_of_frame:
        head = frame[position]
        position += 1
        if head == 0xFF:
            if position == end_of_frame:
                return None
            return Message(code, token, tuple(options), frame[position:])
        fields = []
        for field in (head >> 4, head & 0x0F):
            if field == 13:
                if position >= end_of_frame:
                    return None
                field = frame[position] + 13
                position += 1
            elif field == 14:
                if position + 1 >= end_of_frame:
                    return None
                field = (frame[position] << 8 | frame[position + 1]) + 269
                position += 2
            elif field == 15:
                return None
            fields.append(field)
        delta, length = fields
        end = position + length
        if end > end_of_frame:
            return None
        number += delta
        options.append((number, frame[position:end]))
        position = end
    return Message(code, token, tuple(options), b"")


def encode_options(options: list[tuple[int, bytes]]) -> bytes:
    """Options given in number order, as RFC 7252 §3.1 encodes them."""
    out = []
    previous = 0
    for number, value in options:
        out.append(wire.option(previous, number, value))
        previous = number
    return b"".join(out)


def csm(max_message_size: int, block_wise: bool = False) -> bytes:
    """A CSM (7.01, §5.3) announcing the largest message we take and (if so) block-wise support."""
    options = [(MAX_MESSAGE_SIZE, wire.uint(max_message_size))]
    if block_wise:
        options.append((BLOCK_WISE_TRANSFER, b""))
    return encode(CSM, b"", encode_options(options))


def ping(token: bytes) -> bytes:
    """A Ping (7.02, §5.4) without Custody."""
    return encode(PING, token, b"")


def pong(token: bytes, custody: bool = False) -> bytes:
    """The Pong (7.03) to a Ping with ``token``: the same token, and Custody if the Ping asked for it."""
    return encode(PONG, token, encode_options([(CUSTODY, b"")]) if custody else b"")


def release(hold_off_s: int | None = None) -> bytes:
    """A Release (7.04, §5.5), optionally with Hold-Off."""
    return encode(RELEASE, b"", encode_options([(HOLD_OFF, wire.uint(hold_off_s))]) if hold_off_s else b"")


def abort(diagnostic: str, bad_csm_option: int | None = None) -> bytes:
    """An Abort (7.05, §5.6) with a diagnostic payload (UTF-8, for people) and, for a CSM option we do not
    understand, Bad-CSM-Option."""
    options = (
        encode_options([(BAD_CSM_OPTION, wire.uint(bad_csm_option))]) if bad_csm_option is not None else b""
    )
    return encode(ABORT, b"", options, diagnostic.encode("utf-8"))


def critical(number: int) -> bool:
    """Odd option numbers are critical (RFC 7252 §5.4.1, RFC 8323 §5.2 for signaling options)."""
    return bool(number & 1)
