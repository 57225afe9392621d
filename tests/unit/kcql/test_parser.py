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


# Names starting with "_" select keys, headers and metadata; those are generated separately.
NAME = (
    st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,8}", fullmatch=True)
    | st.text(
        alphabet=st.characters(blacklist_characters="`;\n\r", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=8,
    )
).filter(lambda s: s.strip() == s and s != "" and not s.startswith("_"))
SPECIAL = st.sampled_from([("_key",), ("_key", "id"), ("_header", "h"), ("_", "topic"), ("_", "timestamp")])
FIELD = st.builds(
    Field, path=st.lists(NAME, min_size=1, max_size=3).map(tuple) | SPECIAL, alias=st.none() | NAME
)
# "?" starts the resource's query (docs/addressing.md), tested on its own.
SEGMENT = NAME.filter(lambda s: not set(s) & set("/{}?"))
PLACEHOLDER = st.sampled_from(["{deviceId}", "{a.b}", "{_key}", "{_key.id}", "{_.partition}", "{_header.h}"])
PROPERTY = st.sampled_from(
    [("method", "POST"), ("type", "NON"), ("content.format", "60"), ("timeout", "5000"), ("method", "PUT")]
)


@given(
    resource=st.lists(SEGMENT | PLACEHOLDER, min_size=1, max_size=3).map("/".join),
    source=st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True),
    fields=st.lists(FIELD, min_size=1, max_size=5, unique_by=lambda f: f.output_name),
    star=st.booleans(),
    ignore=st.lists(st.lists(NAME, min_size=1, max_size=2).map(tuple), max_size=2),
    batch=st.none() | st.integers(1, 500),
    properties=st.lists(PROPERTY, max_size=3, unique_by=lambda p: p[0]),
)
def test_print_and_reparse_round_trip(
    resource: str,
    source: str,
    fields: list[Field],
    star: bool,
    ignore: list[tuple[str, ...]],
    batch: int | None,
    properties: list[tuple[str, str]],
) -> None:
    head = "*, " if star else ""
    text = f"INSERT INTO `{resource}` SELECT {head}{', '.join(str(f) for f in fields)} FROM `{source}`"
    if star and ignore:
        text += " IGNORE " + ", ".join(str(Field(path=p)) for p in ignore)
    if batch is not None:
        text += f" BATCH = {batch}"
    if properties:
        text += " PROPERTIES(" + ", ".join(f"{k}='{v}'" for k, v in properties) + ")"
    statement = one(text)
    again = one(str(statement))
    assert again.resource == statement.resource == resource.strip("/")
    assert again.source == source
    assert strip_positions(again) == strip_positions(statement)
    assert [(f.path, f.alias) for f in statement.fields if not f.star] == [(f.path, f.alias) for f in fields]
    assert statement.batch == batch and statement.properties == tuple(properties)


def strip_positions(statement):
    """Statements equal but for where they were written."""
    import dataclasses

    def bare(field: Field) -> Field:
        return dataclasses.replace(field, line=0, column=0)

    return dataclasses.replace(
        statement,
        text="",
        fields=tuple(map(bare, statement.fields)),
        ignore=tuple(map(bare, statement.ignore)),
        template=tuple(
            tuple(bare(p) if isinstance(p, Field) else p for p in seg) for seg in statement.template
        ),
    )


# --- full grammar: clauses, special fields, templates ----------------------------------------------------


def test_all_clauses_together() -> None:
    s = one(
        "INSERT INTO devices/{deviceId}/cmd SELECT *, a.b.*, _key.id AS kid, _header.h, _.partition "
        "FROM t IGNORE x.y, z BATCH = 10 PROPERTIES(method=POST, content.format=60, type='NON')"
    )
    assert [(f.path, f.alias, f.star) for f in s.fields] == [
        ((), None, True),
        (("a", "b"), None, True),
        (("_key", "id"), "kid", False),
        (("_header", "h"), None, False),
        (("_", "partition"), None, False),
    ]
    assert [f.path for f in s.ignore] == [("x", "y"), ("z",)]
    assert s.batch == 10
    assert s.properties == (("method", "POST"), ("content.format", "60"), ("type", "NON"))
    assert [tuple(p if isinstance(p, str) else p.path for p in seg) for seg in s.template] == [
        ("devices",),
        (("deviceId",),),
        ("cmd",),
    ]
    assert s.uses_key


@pytest.mark.parametrize(
    ("text", "uses_key"),
    [
        ("INSERT INTO r SELECT a FROM t", False),
        ("INSERT INTO r SELECT _key FROM t", True),
        ("INSERT INTO r/{_key.id} SELECT a FROM t", True),
        ("INSERT INTO r SELECT *, _key.* FROM t", True),
        ("insert into r select a from t ignore a batch = 2 properties(timeout=10)", False),
    ],
)
def test_lower_case_clauses_and_key_use(text: str, uses_key: bool) -> None:
    assert one(text).uses_key is uses_key


def test_template_mixing_text_and_placeholders() -> None:
    s = one("INSERT INTO d/{_key}/x-{_.partition}-y SELECT a FROM t")
    (_, key_seg, mixed) = s.template
    assert [p.path for p in key_seg] == [("_key",)]
    assert [p if isinstance(p, str) else p.path for p in mixed] == ["x-", ("_", "partition"), "-y"]


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("INSERT INTO x SELECT a.*.b FROM t", 22, "'*' can only end a path"),
        ("INSERT INTO x SELECT a.* AS q FROM t", 22, "a.* selects many fields and cannot have an alias"),
        ("INSERT INTO x SELECT _.foo FROM t", 22, "unknown record metadata 'foo'"),
        ("INSERT INTO x SELECT _ FROM t", 22, "record metadata is selected as _.topic"),
        ("INSERT INTO x SELECT _header.a.b FROM t", 22, "headers have no fields"),
        ("INSERT INTO x SELECT _header FROM t", 22, "headers have no fields"),
        ("INSERT INTO x SELECT a FROM t IGNORE b", 38, "IGNORE b: no selected field is written as 'b'"),
        ("INSERT INTO x SELECT a FROM t IGNORE a.*", 38, "IGNORE takes field names"),
        ("INSERT INTO x SELECT a FROM t BATCH = 0", 39, "BATCH must be at least 1"),
        ("INSERT INTO x SELECT a FROM t BATCH = x", 39, "unexpected 'x', expected a number"),
        (
            "INSERT INTO x SELECT a FROM t PROPERTIES(mehtod=PUT)",
            42,
            "unknown property 'mehtod'; allowed: method",
        ),
        ("INSERT INTO x SELECT a FROM t PROPERTIES(method=PUT, method=POST)", 31, "'method' is given twice"),
        ("INSERT INTO d/{} SELECT a FROM t", 15, "a resource placeholder names one field"),
        ("INSERT INTO d/{a.*} SELECT a FROM t", 18, "unexpected '*', expected SELECT"),
        ("INSERT INTO d/{a SELECT a FROM t", 15, "unbalanced '{'"),
        ("INSERT INTO d/a} SELECT a FROM t", 16, "unbalanced '}'"),
        ("INSERT INTO d/{_.nope} SELECT a FROM t", 15, "unknown record metadata 'nope'"),
        ("INSERT INTO x SELECT a FROM t IGNORE", 37, "unexpected end of statement"),
        ("INSERT INTO x SELECT a FROM t BATCH = 2 IGNORE a", 41, "unexpected 'IGNORE'"),
    ],
)
def test_full_grammar_errors_are_located(text: str, column: int, fragment: str) -> None:
    with pytest.raises(KcqlError) as info:
        parse_kcql(text)
    assert (info.value.statement, info.value.line, info.value.column) == (1, 1, column), str(info.value)
    assert fragment in str(info.value)


def test_property_values_are_checked_by_the_given_validator() -> None:
    def only_put(key: str, value: str) -> None:
        if value != "PUT":
            raise ValueError(f"expected PUT, got {value!r}")

    with pytest.raises(KcqlError, match=r"column 42: property method: expected PUT, got 'POST'"):
        parse_kcql("INSERT INTO x SELECT a FROM t PROPERTIES(method=POST)", only_put)
