"""First-cut KCQL: statements, fields, names, and errors located by statement/line/column."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamapp.errors import KcqlError
from streamapp.kcql import Field, parse_kcql, split_statements


def one(text: str):
    (statement,) = parse_kcql(text)
    return statement


def paths(statement) -> list[tuple[tuple[str, ...], str | None, bool]]:
    return [(f.path, f.alias, f.star) for f in statement.fields]


def test_two_statements_on_one_topic() -> None:
    first, second = parse_kcql(
        "INSERT INTO sensors/room1 SELECT temp AS t, id FROM readings; "
        "INSERT INTO alerts SELECT * FROM readings"
    )
    assert (first.index, first.resource, first.source) == (1, "sensors/room1", "readings")
    assert paths(first) == [(("temp",), "t", False), (("id",), None, False)]
    assert (second.index, second.resource, second.source) == (2, "alerts", "readings")
    assert paths(second) == [((), None, True)]
    assert first.resource_segments == ("sensors", "room1")


@pytest.mark.parametrize(
    ("text", "resource", "source", "fields"),
    [
        ("insert into a select * from b", "a", "b", [((), None, True)]),
        ("INSERT INTO /lead/slash/ SELECT x FROM t", "lead/slash", "t", [(("x",), None, False)]),
        (
            "INSERT INTO dev-1/cmd SELECT x FROM my.topic-2",
            "dev-1/cmd",
            "my.topic-2",
            [(("x",), None, False)],
        ),
        ("INSERT INTO `a b` SELECT `x y` AS `z w` FROM `t t`", "a b", "t t", [(("x y",), "z w", False)]),
        ("INSERT INTO r SELECT `a.b` FROM t", "r", "t", [(("a.b",), None, False)]),
        ("INSERT INTO r SELECT a.b.c AS abc FROM t", "r", "t", [(("a", "b", "c"), "abc", False)]),
        ("INSERT INTO r SELECT 'q x' FROM t", "r", "t", [(("q x",), None, False)]),
        ("INSERT INTO r SELECT *, a AS b FROM t", "r", "t", [((), None, True), (("a",), "b", False)]),
        (
            "INSERT INTO r SELECT from, select AS insert FROM t",
            "r",
            "t",
            [(("from",), None, False), (("select",), "insert", False)],
        ),
        ("INSERT\n  INTO r\n  SELECT a\n  FROM t", "r", "t", [(("a",), None, False)]),
    ],
)
def test_constructs(text: str, resource: str, source: str, fields: list) -> None:
    s = one(text)
    assert (s.resource, s.source, paths(s)) == (resource, source, fields)


def test_semicolons_inside_quotes_do_not_split() -> None:
    pieces = split_statements("INSERT INTO `a;b` SELECT 'x;y' FROM t; INSERT INTO c SELECT * FROM t;;")
    assert [p.index for p in pieces] == [1, 2]
    assert one_of(pieces[0].text).resource == "a;b"


def one_of(text: str):
    return parse_kcql(text)[0]


@pytest.mark.parametrize(
    ("text", "statement", "line", "column", "fragment"),
    [
        ("INSERT INTO x SELECT a FORM t", 1, 1, 24, "unexpected 'FORM', expected ',', '.', AS or FROM"),
        ("Insert INTO x SELECT a FROM t", 1, 1, 1, "keywords are written all-upper or all-lower"),
        ("INSERT INTO x SELECT a FROM t; INSERT INTO y SELECT FROM t", 2, 1, 58, "unexpected 't'"),
        (
            "INSERT INTO x SELECT a FROM t;\nINSERT INTO y SELECT a FROM",
            2,
            2,
            28,
            "unexpected end of statement",
        ),
        ("INSERT INTO x SELECT a, a FROM t", 1, 1, 25, "two fields are written as 'a'"),
        ("INSERT INTO x SELECT b AS a, a FROM t", 1, 1, 30, "two fields are written as 'a'"),
        ("INSERT INTO x SELECT *, * FROM t", 1, 1, 25, "'*' is selected more than once"),
        ("INSERT INTO x SELECT `a FROM t", 1, 1, 22, "unterminated ` quote"),
        ("INSERT INTO x SELECT a $ FROM t", 1, 1, 24, "unexpected '$'"),
        ("INSERT INTO / SELECT a FROM t", 1, 1, 1, "resource path is empty"),
        ("SELECT a FROM t", 1, 1, 1, "expected INSERT"),
    ],
)
def test_errors_are_located(text: str, statement: int, line: int, column: int, fragment: str) -> None:
    with pytest.raises(KcqlError) as info:
        parse_kcql(text)
    err = info.value
    assert (err.statement, err.line, err.column) == (statement, line, column), str(err)
    assert fragment in str(err)
    assert str(err).startswith(f"KCQL statement {statement}, line {line}, column {column}: ")


NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,8}", fullmatch=True) | st.text(
    alphabet=st.characters(blacklist_characters="`;\n\r", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
).filter(lambda s: s.strip() == s and s != "")
FIELD = st.builds(Field, path=st.lists(NAME, min_size=1, max_size=3).map(tuple), alias=st.none() | NAME)


@given(
    resource=st.lists(NAME.filter(lambda s: "/" not in s), min_size=1, max_size=3).map("/".join),
    source=st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True),
    fields=st.lists(FIELD, min_size=1, max_size=5, unique_by=lambda f: f.output_name),
    star=st.booleans(),
)
def test_print_and_reparse_round_trip(resource: str, source: str, fields: list[Field], star: bool) -> None:
    head = "*, " if star else ""
    text = f"INSERT INTO `{resource}` SELECT {head}{', '.join(str(f) for f in fields)} FROM `{source}`"
    statement = one(text)
    again = one(str(statement))
    assert again.resource == statement.resource == resource.strip("/")
    assert again.source == source
    assert [(f.path, f.alias, f.star) for f in again.fields] == [
        (f.path, f.alias, f.star) for f in statement.fields
    ]
    assert [(f.path, f.alias) for f in statement.fields if not f.star] == [(f.path, f.alias) for f in fields]
