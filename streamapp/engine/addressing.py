"""Where a record's request goes beyond its Uri-Path: its statement's own server and its Uri-Query options,
each rendered from the statement's templates (docs/addressing.md).

A statement names its server with a whole URI as its INSERT target (``INSERT INTO
'coaps://{site}.gw.example:5684/ps/{id}'``) or with ``PROPERTIES(uri='coaps://{site}.gw.example')``; a
statement without one uses ``connect.coap.uri``. ``?a={x}&b=c`` in the target gives one Uri-Query option per
part. A rendered server must be a ``coap://`` or ``coaps://`` URI whose host is a host name or an IP
literal: anything else (a value with ``/``, ``@``, spaces, an empty label) is a ``SelectError`` for that
record, so it goes to the error policy and no request is sent anywhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from streamapp.config.uris import COAP_SCHEMES, GROUPS
from streamapp.errors import SelectError
from streamapp.kcql import Statement
from streamapp.kcql.model import Field
from streamapp.kcql.selector import Getter, field_getter, placeholder_text
from streamapp.records import Record

ServerRenderer = Callable[[Record], str | None]
QueryRenderer = Callable[[Record], tuple[str, ...]]

#: Characters that end a URI's authority or change its meaning: not allowed in a server placeholder's value.
_URI_DELIMITERS = re.compile(r"[/?#@\[\]\\\s]")
#: RFC 1123 host names: labels of letters, digits and inner hyphens, dot-separated.
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def compile_server(statement: Statement) -> ServerRenderer:
    """The statement's server URI for a record, or None for the worker's ``connect.coap.uri``."""
    if not statement.server:
        return lambda record: None
    parts = _compiled(statement.server)
    if not any(isinstance(part, tuple) for part in parts):
        fixed = "".join(str(part) for part in parts)
        check_server(fixed, None)
        return lambda record: fixed

    def render(record: Record) -> str:
        texts = []
        for part in parts:
            if isinstance(part, str):
                texts.append(part)
                continue
            text = placeholder_text(record, *part)
            if _URI_DELIMITERS.search(text):
                # It would move the request to another host, path or user: never sent anywhere.
                raise SelectError(
                    record.where,
                    f"server placeholder {{{'.'.join(part[0].path)}}}: {text!r} cannot be part of a host",
                )
            texts.append(text)
        uri = "".join(texts)
        check_server(uri, record)
        return uri

    return render


def compile_query(statement: Statement) -> QueryRenderer:
    """The statement's Uri-Query options for a record (one per ``?``/``&`` part of the target)."""
    if not statement.query:
        return lambda record: ()
    options = [_compiled(option) for option in statement.query]

    def render(record: Record) -> tuple[str, ...]:
        return tuple(
            "".join(part if isinstance(part, str) else placeholder_text(record, *part) for part in option)
            for option in options
        )

    return render


def check_server(uri: str, record: Record | None) -> None:
    """``uri`` must be ``coap[s]://host[:port][/path]`` with a real host; else a SelectError (or, for a fixed
    server, a ValueError at start)."""
    problem = _server_problem(uri)
    if problem is None:
        return
    if record is None:
        raise ValueError(problem)
    raise SelectError(record.where, problem)


def _server_problem(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return f"server {uri!r}: not a valid URI (bad port?)"
    if parts.scheme.lower() not in COAP_SCHEMES:
        return f"server {uri!r}: expected coap://, coaps://, coap+tcp:// or coaps+tcp://"
    if parts.username is not None or parts.query or parts.fragment:
        return f"server {uri!r}: a user, query or fragment cannot be part of the server"
    host = parts.hostname or ""
    if host.lower() in GROUPS:
        return f"server {uri!r}: {host} (multicast discovery) is for connect.coap.uri only"
    if port == 0:
        return f"server {uri!r}: port 0"
    if not host:
        return f"server {uri!r}: no host"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if _HOST_NAME.fullmatch(host) is None:
        return f"server {uri!r}: {host!r} cannot be a host name"
    return None


def _compiled(template: tuple[str | Field, ...]) -> list[str | tuple[Field, Getter]]:
    return [(part, field_getter(part)) if isinstance(part, Field) else part for part in template]
