"""The parsed form of a KCQL statement."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

#: Path prefixes that select from something other than the record value.
KEY, HEADER, META = "_key", "_header", "_"
META_FIELDS = ("topic", "partition", "offset", "timestamp")

#: Per-statement PROPERTIES(...) keys and the configuration keys whose rules (and defaults) they share.
STATEMENT_PROPERTIES = {
    "method": "connect.coap.method",
    "type": "connect.coap.message.type",
    "content.format": "connect.coap.content.format",
    "timeout": "connect.coap.request.timeout",
    "ack.timeout": "connect.coap.ack.timeout",
    "max.retransmit": "connect.coap.max.retransmit",
    "max.inflight": "connect.coap.max.inflight",
    "ordering": "connect.coap.ordering",
    "tombstone": "connect.coap.tombstone",
    "uri": "connect.coap.uri",
    "reply.topic": "connect.coap.reply.topic",
    "reply.on": "connect.coap.reply.on",
    "oscore.context": "connect.coap.oscore.context",
}


class Source(Enum):
    """Where a field path starts."""

    VALUE = "value"
    KEY = "key"
    HEADER = "header"
    META = "meta"


@dataclass(frozen=True)
class Field:
    """One entry of the SELECT list (or of IGNORE).

    ``path`` is the field path as written (``("a", "b")`` for ``a.b``, ``("_key", "id")`` for ``_key.id``);
    ``star`` marks ``*`` (empty path) or a path ending in ``.*`` (``a.b.*`` has path ``("a", "b")``).
    ``line``/``column`` locate the entry in the whole ``connect.coap.kcql`` text, for errors.
    """

    path: tuple[str, ...]
    alias: str | None = None
    star: bool = False
    line: int = 0
    column: int = 0

    @property
    def source(self) -> Source:
        head = self.path[0] if self.path else ""
        if head == KEY:
            return Source.KEY
        if head == HEADER:
            return Source.HEADER
        if head == META:
            return Source.META
        return Source.VALUE

    @property
    def inner_path(self) -> tuple[str, ...]:
        """The path inside its source (``_key.id`` -> ``("id",)``; a value path is unchanged)."""
        return self.path if self.source is Source.VALUE else self.path[1:]

    @property
    def output_name(self) -> str:
        """The JSON key this field is written under: its alias, else the last path segment."""
        if self.star:
            return "*"
        return self.alias if self.alias is not None else self.path[-1]

    def __str__(self) -> str:
        if self.star and not self.path:
            return "*"
        text = ".".join(_quote(p) for p in self.path)
        if self.star:
            return f"{text}.*"
        return f"{text} AS {_quote(self.alias)}" if self.alias is not None else text


@dataclass(frozen=True)
class Statement:
    """``INSERT INTO <resource> SELECT <fields> FROM <source> [IGNORE ...] [BATCH = n] [PROPERTIES(...)]``.

    ``index`` is 1-based. ``resource`` may hold ``{field}`` placeholders (see ``template``).
    ``properties`` are the statement's PROPERTIES as written, (key, value) pairs; they are validated
    against the configuration rules by ``streamapp.config.settings``.
    """

    index: int
    resource: str
    source: str
    fields: tuple[Field, ...]
    ignore: tuple[Field, ...] = ()
    batch: int | None = None
    properties: tuple[tuple[str, str], ...] = ()
    #: The resource as Uri-Path segments, each a sequence of literal text and ``{field}`` placeholders.
    #: A resource without placeholders has one literal part per segment.
    template: tuple[tuple[str | Field, ...], ...] = ()
    #: The statement's own server (``coap[s]://host[:port][/base]``) as a template: from a whole URI in the
    #: INSERT target or ``PROPERTIES(uri=...)``; empty = the worker's ``connect.coap.uri``.
    server: tuple[str | Field, ...] = ()
    #: Uri-Query options (``?a={x}&b=c`` in the target), one template each.
    query: tuple[tuple[str | Field, ...], ...] = ()
    text: str = ""

    @property
    def selects_all(self) -> bool:
        return any(f.star and not f.path for f in self.fields)

    @property
    def resource_segments(self) -> tuple[str, ...]:
        """The resource as CoAP Uri-Path segments (empty segments from '//' or a leading '/' dropped)."""
        return tuple(seg for seg in self.resource.split("/") if seg)

    @property
    def template_fields(self) -> tuple[Field, ...]:
        """The placeholders of the path, the server and the query."""
        pieces = (*self.template, self.server, *self.query)
        return tuple(part for piece in pieces for part in piece if isinstance(part, Field))

    @property
    def uses_key(self) -> bool:
        """Whether records' keys must be decoded for this statement."""
        return any(f.source is Source.KEY for f in (*self.fields, *self.ignore, *self.template_fields))

    def __str__(self) -> str:
        fields = ", ".join(str(f) for f in self.fields)
        text = f"INSERT INTO {_quote(self.resource, path=True)} SELECT {fields} FROM {_quote(self.source)}"
        if self.ignore:
            text += " IGNORE " + ", ".join(str(f) for f in self.ignore)
        if self.batch is not None:
            text += f" BATCH = {self.batch}"
        if self.properties:
            text += " PROPERTIES(" + ", ".join(f"{k}={_quote_value(v)}" for k, v in self.properties) + ")"
        return text


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_\-+/:{}]+")
_PLAIN_RESOURCE = re.compile(r"[A-Za-z0-9_\-+/:{}.~]+")


def _quote(name: str, path: bool = False) -> str:
    """Backtick a name that the grammar would not read back unquoted."""
    pattern = _PLAIN_RESOURCE if path else _PLAIN_NAME
    return name if pattern.fullmatch(name) else f"`{name}`"


def _quote_value(value: str) -> str:
    return value if _PLAIN_NAME.fullmatch(value) else f"'{value}'"
