"""Parse ``connect.coap.kcql`` with the lark grammar in ``kcql.lark``.

Statements are split on ``;`` outside backticks and quotes first, so that every error names its statement
number; line and column are positions in the whole ``connect.coap.kcql`` text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import cast

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.tree import Meta

from streamapp.errors import KcqlError
from streamapp.kcql.model import HEADER, META, META_FIELDS, STATEMENT_PROPERTIES, Field, Source, Statement

#: Validates one PROPERTIES value: ``(key, value)``; raises ValueError with a message.
PropertyValidator = Callable[[str, str], None]

#: How terminals are named in error messages.
_TERMINAL_TEXT = {
    "INSERT": "INSERT",
    "INTO": "INTO",
    "SELECT": "SELECT",
    "FROM": "FROM",
    "AS": "AS",
    "IGNORE": "IGNORE",
    "BATCH": "BATCH",
    "PROPERTIES": "PROPERTIES",
    "INT": "a number",
    "EQUAL": "'='",
    "LPAR": "'('",
    "RPAR": "')'",
    "STAR": "'*'",
    "COMMA": "','",
    "DOT": "'.'",
    "IDENT": "a field name",
    "RESOURCE": "a resource path",
    "TOPIC": "a topic name",
    "BACKTICKED": "a `quoted` name",
    "QUOTED": "a 'quoted' name",
    "$END": "the end of the statement",
}


@dataclass(frozen=True)
class StatementText:
    """One statement's text and where it starts in the whole KCQL string."""

    index: int
    text: str
    offset: int


@cache
def _parser() -> Lark:
    grammar = files("streamapp.kcql").joinpath("kcql.lark").read_text(encoding="utf-8")
    return Lark(grammar, start="statement", parser="lalr", lexer="contextual", propagate_positions=True)


def split_statements(kcql: str) -> list[StatementText]:
    """Split on ``;`` outside backticks and single quotes; blank statements are dropped.

    An unterminated quote is reported here, pointing at the opening quote.
    """
    pieces: list[StatementText] = []
    start = 0
    quote: str | None = None
    quote_at = 0
    index = 0
    for pos, char in enumerate(kcql):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "`'":
            quote, quote_at = char, pos
        elif char == ";":
            if kcql[start:pos].strip():
                index += 1
                pieces.append(StatementText(index, kcql[start:pos], start))
            start = pos + 1
    if quote is not None:
        line, column = _line_column(kcql, quote_at)
        raise KcqlError(
            f"unterminated {quote} quote", statement=index + 1, line=line, column=column, text=kcql[start:]
        )
    if kcql[start:].strip():
        pieces.append(StatementText(index + 1, kcql[start:], start))
    return pieces


def parse_kcql(kcql: str, validate_property: PropertyValidator | None = None) -> tuple[Statement, ...]:
    """Parse every statement; raise :class:`KcqlError` for the first bad one.

    ``validate_property`` checks each PROPERTIES value (the settings module passes the rules of the
    configuration key each property overrides), so a bad value is reported at its column.
    """
    return tuple(parse_statement(piece, kcql, validate_property) for piece in split_statements(kcql))


def parse_statement(
    piece: StatementText, whole: str, validate_property: PropertyValidator | None = None
) -> Statement:
    # Parse the statement padded to its real position so lark's line/column are positions in ``whole``.
    padded = "".join(c if c == "\n" else " " for c in whole[: piece.offset]) + piece.text
    try:
        tree = _parser().parse(padded)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, piece, padded) from None
    try:
        statement = _ToStatement(piece, validate_property).transform(tree)
    except VisitError as exc:  # lark wraps what the transformer raises
        if isinstance(exc.orig_exc, KcqlError):
            raise exc.orig_exc from None
        raise
    _check_semantics(statement, piece)
    return statement


def _syntax_error(exc: UnexpectedInput, piece: StatementText, padded: str) -> KcqlError:
    if isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
        # The LALR parser reports a statement that ends too early as an unexpected ``$END`` token.
        line, column = _line_column(padded, len(padded.rstrip()))
        found = "end of statement"
        expected = _expected(exc.expected)
    elif isinstance(exc, UnexpectedToken):
        line, column = exc.line, exc.column
        found = repr(str(exc.token))
        expected = _expected(exc.accepts or exc.expected)
    elif isinstance(exc, UnexpectedCharacters):
        line, column = exc.line, exc.column
        # lark declares ``pos_in_stream = None`` on the base class; UnexpectedCharacters always sets it to
        # the lexer's position.
        found = repr(_word_at(padded, cast(int, exc.pos_in_stream)))
        expected = _expected(exc.allowed)
    else:  # pragma: no cover - the other subclass, UnexpectedEOF, comes only from lark's Earley parser
        line, column, found, expected = 1, 1, "input", "a valid statement"
    message = f"unexpected {found}, expected {expected}"
    if found.strip("'").isalpha() and found.strip("'").upper() in _TERMINAL_TEXT:
        message += " (keywords are written all-upper or all-lower)"
    return KcqlError(message, statement=piece.index, line=line, column=column, text=piece.text.strip())


def _expected(terminals: set[str] | frozenset[str]) -> str:
    names = sorted({_TERMINAL_TEXT.get(t, t) for t in terminals})
    if not names:
        return "nothing more"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _word_at(text: str, pos: int) -> str:
    end = pos
    while end < len(text) and not text[end].isspace() and text[end] not in ",;":
        end += 1
    return text[pos : max(end, pos + 1)]


def _line_column(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, column


def _unquote(token: Token) -> str:
    text = str(token)
    if token.type in ("BACKTICKED", "QUOTED"):
        return text[1:-1]
    return text


_STAR = object()  # a `*` path segment, before it is folded into Field.star
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
#: ``coap://host:port``, ``coaps://``, ``coap+tcp://`` or ``coaps+tcp://...`` at the start of an INSERT
#: target (host and port may be templates).
_URI_ORIGIN = re.compile(r"coaps?(?:\+tcp)?://[^/?]+", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """A parsed INSERT target: its text, Uri-Path template, server (origin) template, Uri-Query templates."""

    text: str
    template: tuple[tuple[str | Field, ...], ...]
    server: tuple[str | Field, ...]
    query: tuple[tuple[str | Field, ...], ...]


@v_args(inline=True)
class _ToStatement(Transformer[Token, Statement]):
    def __init__(self, piece: StatementText, validate_property: PropertyValidator | None) -> None:
        super().__init__()
        self._piece = piece
        self._validate_property = validate_property

    def _error(self, message: str, line: int | None, column: int | None) -> KcqlError:
        """The error at ``line``/``column``; lark types a token's position as optional (a token made by
        hand may have none, the lexer's always do), so a missing one reads as the statement's start."""
        return KcqlError(
            message,
            statement=self._piece.index,
            line=line or 1,
            column=column or 1,
            text=self._piece.text.strip(),
        )

    def name(self, token: Token) -> str:
        return _unquote(token)

    def segment(self, part: str | Token) -> object:
        return _STAR if isinstance(part, Token) and part.type == "STAR" else part

    @v_args(meta=True, inline=True)
    def path(self, meta: Meta, *segments: object) -> Field:
        if any(seg is _STAR for seg in segments[:-1]):
            raise self._error("'*' can only end a path (a.b.*)", meta.line, meta.column)
        star = segments[-1] is _STAR
        names = tuple(str(seg) for seg in (segments[:-1] if star else segments))
        return Field(path=names, star=star, line=meta.line, column=meta.column)

    @v_args(meta=True, inline=True)
    def resource(self, meta: Meta, token: Token) -> Target:
        """The INSERT target: ``path[?query]`` or a whole ``coap[s]://host[:port]/path[?query]``, with
        ``{field}`` placeholders anywhere (docs/addressing.md)."""
        written = _unquote(token)
        column = meta.column + (1 if token.type in ("BACKTICKED", "QUOTED") else 0)
        server: tuple[str | Field, ...] = ()
        rest, rest_at = written, 0
        if match := _URI_ORIGIN.match(written):
            server = self._parts(match.group(0), meta.line, column)
            rest, rest_at = written[match.end() :], match.end()
        path, _, query = rest.partition("?")
        stripped = path.lstrip("/")
        path_at = column + rest_at + len(path) - len(stripped)
        template = self._template(stripped.rstrip("/"), meta.line, path_at)
        queries = []
        if query:
            at = column + rest_at + len(path) + 1
            for option in query.split("&"):
                if option:
                    queries.append(self._parts(option, meta.line, at))
                at += len(option) + 1
        text = written if server or query else stripped.rstrip("/")
        return Target(text, template, server, tuple(queries))

    def _template(self, text: str, line: int, column: int) -> tuple[tuple[str | Field, ...], ...]:
        segments: list[tuple[str | Field, ...]] = []
        offset = 0
        for raw in text.split("/"):
            parts = self._parts(raw, line, column + offset)
            if parts:
                segments.append(parts)
            offset += len(raw) + 1
        return tuple(segments)

    def _parts(self, raw: str, line: int, column: int) -> tuple[str | Field, ...]:
        """Literal text and ``{field}`` placeholders of one segment, query option or origin."""
        parts: list[str | Field] = []
        pos = 0
        for match in _PLACEHOLDER.finditer(raw):
            literal = raw[pos : match.start()]
            at = column + match.start()
            self._check_braces(literal, line, column + pos)
            if literal:
                parts.append(literal)
            inner = match.group(1).strip()
            if not inner or "*" in inner:
                raise self._error(
                    "a resource placeholder names one field: "
                    "{field}, {a.b}, {_key}, {_key.id} or {_.partition}",
                    line,
                    at,
                )
            field = Field(path=tuple(inner.split(".")), line=line, column=at)
            _check_source(field, self._error)
            parts.append(field)
            pos = match.end()
        self._check_braces(raw[pos:], line, column + pos)
        if raw[pos:]:
            parts.append(raw[pos:])
        return tuple(parts)

    def _check_braces(self, literal: str, line: int, column: int) -> None:
        for i, char in enumerate(literal):
            if char in "{}":
                raise self._error(f"unbalanced {char!r} in the resource", line, column + i)

    def topic(self, token: Token) -> str:
        return _unquote(token)

    @v_args(meta=True, inline=True)
    def star(self, meta: Meta, _token: Token) -> Field:
        return Field(path=(), star=True, line=meta.line, column=meta.column)

    def column(self, path: Field, _as: Token | None, alias: str | None) -> Field:
        if alias is not None and path.star:
            raise self._error(f"{path} selects many fields and cannot have an alias", path.line, path.column)
        return Field(path=path.path, alias=alias, star=path.star, line=path.line, column=path.column)

    def fields(self, *fields: Field) -> tuple[Field, ...]:
        return tuple(fields)

    def ignore(self, _keyword: Token, *paths: Field) -> tuple[Field, ...]:
        for path in paths:
            if path.star:
                raise self._error("IGNORE takes field names, not '*'", path.line, path.column)
        return tuple(paths)

    def batch(self, _keyword: Token, size: Token) -> int:
        if int(size) < 1:
            raise self._error("BATCH must be at least 1", size.line, size.column)
        return int(size)

    def property_key(self, *parts: Token) -> Token:
        first = parts[0]
        return Token("PROPERTY_KEY", ".".join(str(p) for p in parts), line=first.line, column=first.column)

    def property_value(self, token: Token) -> str:
        return _unquote(token)

    def property(self, key: Token, value: str) -> tuple[str, str]:
        if str(key) not in STATEMENT_PROPERTIES:
            allowed = ", ".join(STATEMENT_PROPERTIES)
            raise self._error(f"unknown property {str(key)!r}; allowed: {allowed}", key.line, key.column)
        if self._validate_property is not None:
            try:
                self._validate_property(str(key), value)
            except ValueError as exc:
                raise self._error(f"property {key!s}: {exc}", key.line, key.column) from None
        return str(key), value

    @v_args(meta=True, inline=True)
    def properties(
        self, meta: Meta, _keyword: Token, *pairs: tuple[str, str] | None
    ) -> tuple[tuple[str, str], ...]:
        given = [p for p in pairs if p is not None]
        seen: set[str] = set()
        for key, _ in given:
            if key in seen:
                raise self._error(f"property {key!r} is given twice", meta.line, meta.column)
            seen.add(key)
        return tuple(given)

    def statement(
        self,
        _insert: Token,
        _into: Token,
        target: Target,
        _select: Token,
        fields: tuple[Field, ...],
        _from: Token,
        topic: str,
        ignore: tuple[Field, ...] | None,
        batch: int | None,
        properties: tuple[tuple[str, str], ...] | None,
    ) -> Statement:
        properties = properties or ()
        server = target.server
        base = dict(properties).get("uri")
        if base is not None:
            if server:
                raise self._error(
                    "the server is given twice: in the INSERT target and as PROPERTIES(uri=...)", 1, 1
                )
            server = self._parts(base, 1, 1)
        for field in fields:
            _check_source(field, self._error)
        for field in ignore or ():
            _check_source(field, self._error)
        return Statement(
            index=self._piece.index,
            resource=target.text,
            source=topic,
            fields=fields,
            ignore=ignore or (),
            batch=batch,
            properties=properties,
            template=target.template,
            server=server,
            query=target.query,
            text=self._piece.text.strip(),
        )


def _check_source(field: Field, error: Callable[[str, int, int], KcqlError]) -> None:
    """``_header.h`` and ``_.topic|partition|offset|timestamp`` are the only forms of those prefixes."""
    if field.star and not field.path:
        return
    source = field.source
    inner = field.inner_path
    if source is Source.META:
        if field.star and not inner:
            return
        if len(inner) != 1 or field.star:
            raise error(
                "record metadata is selected as _.topic, _.partition, _.offset or _.timestamp",
                field.line,
                field.column,
            )
        if inner[0] not in META_FIELDS:
            raise error(
                f"unknown record metadata {inner[0]!r}: expected topic, partition, offset or timestamp",
                field.line,
                field.column,
            )
    elif source is Source.HEADER and not (field.star and not inner) and (len(inner) != 1 or field.star):
        raise error(
            f"a header is selected as {HEADER}.<name> (headers have no fields)", field.line, field.column
        )
    elif source is Source.VALUE and field.path == (META,):
        raise error(
            "record metadata is selected as _.topic, _.partition, _.offset or _.timestamp",
            field.line,
            field.column,
        )


def _check_semantics(statement: Statement, piece: StatementText) -> None:
    def fail(message: str, field: Field) -> KcqlError:
        return KcqlError(
            message, statement=piece.index, line=field.line, column=field.column, text=statement.text
        )

    if not statement.resource_segments:
        raise KcqlError("the resource path is empty", statement=piece.index, text=statement.text)
    stars = [f for f in statement.fields if f.star and not f.path]
    if len(stars) > 1:
        raise fail("'*' is selected more than once", stars[1])
    seen: dict[str, Field] = {}
    for field in statement.fields:
        if field.star:
            continue
        if any(segment == "" for segment in field.path) or field.alias == "":
            raise fail("a field name cannot be empty", field)
        name = field.output_name
        if name in seen:
            raise fail(f"two fields are written as {name!r} (give one of them another alias)", field)
        seen[name] = field
    # With `*` or `x.*` the output's names are only known per record; otherwise IGNORE must name a field
    # the SELECT writes (by its output name, i.e. after renaming).
    open_ended = any(f.star for f in statement.fields)
    for field in statement.ignore:
        if not open_ended and field.path[0] not in seen:
            raise fail(f"IGNORE {field}: no selected field is written as {field.path[0]!r}", field)
