"""Parse ``connect.coap.kcql`` with the lark grammar in ``kcql.lark``.

Statements are split on ``;`` outside backticks and quotes first, so that every error names its statement
number; line and column are positions in the whole ``connect.coap.kcql`` text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from streamapp.errors import KcqlError
from streamapp.kcql.model import Field, Statement

#: How terminals are named in error messages.
_TERMINAL_TEXT = {
    "INSERT": "INSERT",
    "INTO": "INTO",
    "SELECT": "SELECT",
    "FROM": "FROM",
    "AS": "AS",
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


def parse_kcql(kcql: str) -> tuple[Statement, ...]:
    """Parse every statement; raise :class:`KcqlError` for the first bad one."""
    return tuple(parse_statement(piece, kcql) for piece in split_statements(kcql))


def parse_statement(piece: StatementText, whole: str) -> Statement:
    # Parse the statement padded to its real position so lark's line/column are positions in ``whole``.
    padded = "".join(c if c == "\n" else " " for c in whole[: piece.offset]) + piece.text
    try:
        tree = _parser().parse(padded)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, piece, padded) from None
    statement = _ToStatement(piece).transform(tree)
    _check_semantics(statement, piece)
    return statement


def _syntax_error(exc: UnexpectedInput, piece: StatementText, padded: str) -> KcqlError:
    if isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
        exc = UnexpectedEOF(exc.expected)
    if isinstance(exc, UnexpectedEOF):
        line, column = _line_column(padded, len(padded.rstrip()))
        found = "end of statement"
        expected = _expected(exc.expected)
    elif isinstance(exc, UnexpectedToken):
        line, column = exc.line, exc.column
        found = repr(str(exc.token))
        expected = _expected(exc.accepts or exc.expected)
    elif isinstance(exc, UnexpectedCharacters):
        line, column = exc.line, exc.column
        found = repr(_word_at(padded, exc.pos_in_stream))
        expected = _expected(exc.allowed)
    else:  # pragma: no cover - lark has no other UnexpectedInput subclasses
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


@v_args(inline=True)
class _ToStatement(Transformer):
    def __init__(self, piece: StatementText) -> None:
        super().__init__()
        self._piece = piece

    def name(self, token: Token) -> str:
        return _unquote(token)

    def resource(self, token: Token) -> str:
        return _unquote(token).strip("/")

    def topic(self, token: Token) -> str:
        return _unquote(token)

    def path(self, *names: str) -> tuple[str, ...]:
        return tuple(names)

    @v_args(meta=True, inline=True)
    def star(self, meta, _token: Token) -> Field:  # type: ignore[no-untyped-def]
        return Field(path=(), star=True, line=meta.line, column=meta.column)

    @v_args(meta=True, inline=True)
    def column(self, meta, path: tuple[str, ...], _as: Token | None, alias: str | None) -> Field:  # type: ignore[no-untyped-def]
        return Field(path=path, alias=alias, line=meta.line, column=meta.column)

    def fields(self, *fields: Field) -> tuple[Field, ...]:
        return tuple(fields)

    def statement(self, _insert, _into, resource, _select, fields, _from, topic) -> Statement:  # type: ignore[no-untyped-def]
        return Statement(
            index=self._piece.index,
            resource=resource,
            source=topic,
            fields=fields,
            text=self._piece.text.strip(),
        )


def _check_semantics(statement: Statement, piece: StatementText) -> None:
    def fail(message: str, field: Field) -> KcqlError:
        return KcqlError(
            message, statement=piece.index, line=field.line, column=field.column, text=statement.text
        )

    if not statement.resource_segments:
        raise KcqlError("the resource path is empty", statement=piece.index, text=statement.text)
    stars = [f for f in statement.fields if f.star]
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
