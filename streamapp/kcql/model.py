"""The parsed form of a KCQL statement."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """One entry of the SELECT list.

    ``path`` is the field path (``("a", "b")`` for ``a.b``); ``star`` marks ``*`` (with an empty path).
    ``column`` is the 1-based column of the entry in the whole ``connect.coap.kcql`` text, for errors.
    """

    path: tuple[str, ...]
    alias: str | None = None
    star: bool = False
    line: int = 0
    column: int = 0

    @property
    def output_name(self) -> str:
        """The JSON key this field is written under: its alias, else the last path segment."""
        if self.star:
            return "*"
        return self.alias if self.alias is not None else self.path[-1]

    def __str__(self) -> str:
        if self.star:
            return "*"
        text = ".".join(_quote(p) for p in self.path)
        return f"{text} AS {_quote(self.alias)}" if self.alias is not None else text


@dataclass(frozen=True)
class Statement:
    """``INSERT INTO <resource> SELECT <fields> FROM <source>``; ``index`` is 1-based."""

    index: int
    resource: str
    source: str
    fields: tuple[Field, ...]
    text: str = ""

    @property
    def selects_all(self) -> bool:
        return any(f.star for f in self.fields)

    @property
    def resource_segments(self) -> tuple[str, ...]:
        """The resource as CoAP Uri-Path segments (empty segments from '//' or a leading '/' dropped)."""
        return tuple(seg for seg in self.resource.split("/") if seg)

    def __str__(self) -> str:
        fields = ", ".join(str(f) for f in self.fields)
        return f"INSERT INTO {_quote(self.resource, path=True)} SELECT {fields} FROM {_quote(self.source)}"


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_\-+/:{}]+")
_PLAIN_RESOURCE = re.compile(r"[A-Za-z0-9_\-+/:{}.~]+")


def _quote(name: str, path: bool = False) -> str:
    """Backtick a name that the grammar would not read back unquoted."""
    pattern = _PLAIN_RESOURCE if path else _PLAIN_NAME
    return name if pattern.fullmatch(name) else f"`{name}`"
