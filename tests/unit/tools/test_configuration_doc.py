"""docs/configuration.md's reference is what ``make docs`` writes from ``KEYS`` (config/keys.py), where
every key, default, unit and doc is written once: every key has a row, and every concrete default is the
one the code uses. The README carries no per-key table (it links to the reference)."""

from __future__ import annotations

import difflib
import re
from typing import Any

import pytest

from streamapp.config.keys import KEYS, REQUIRED, Secret
from tests.paths import REPO
from tools.configuration_doc import BEGIN, DOC, END, render

COMMITTED = DOC.read_text(encoding="utf-8")


def test_the_committed_reference_is_what_make_docs_writes() -> None:
    wanted = render(COMMITTED)
    if wanted != COMMITTED:
        diff = "".join(
            difflib.unified_diff(
                COMMITTED.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                "docs/configuration.md (committed)",
                "docs/configuration.md (from KEYS)",
                n=1,
            )
        )
        pytest.fail(
            "docs/configuration.md is out of date with KEYS (streamapp/config/keys.py): run `make docs` and "
            f"commit the result\n{diff[:4000]}",
            pytrace=False,
        )


def reference_rows() -> dict[str, list[str]]:
    """key name -> the cells of its row, from the generated part of the committed file."""
    generated = COMMITTED[COMMITTED.index(BEGIN) : COMMITTED.index(END)]
    rows: dict[str, list[str]] = {}
    for line in generated.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) == 6 and (name := re.fullmatch(r"`([^`]+)`", cells[0])):
            rows[name.group(1)] = cells
    return rows


def rendered(default: Any) -> str | None:
    """How the reference must write a concrete default, or None where it describes it in words."""
    if default is None or default is REQUIRED or default == ():
        return None
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, tuple):
        return f"`{','.join(default)}`"
    if isinstance(default, Secret):
        return f"`{default.reveal()}`"
    return f"`{default}`"


def test_every_key_has_one_row_with_its_type_unit_and_doc() -> None:
    rows = reference_rows()
    assert sorted(rows) == sorted(k.name for k in KEYS)
    for key in KEYS:
        _, also, type_name, unit, _, doc = rows[key.name]
        assert type_name == key.type_name and unit == (key.unit or ""), key.name
        assert doc == " ".join(key.doc.split()).replace("|", "\\|"), key.name
        for alias in (*key.aliases, *key.deprecated, *key.env_aliases):
            assert f"`{alias}`" in also, (key.name, alias)


def test_every_concrete_default_is_the_codes() -> None:
    rows = reference_rows()
    concrete = [k for k in KEYS if rendered(k.default) is not None and k.default_doc is None]
    wrong = {
        k.name: (rows[k.name][4], rendered(k.default))
        for k in concrete
        if rows[k.name][4] != rendered(k.default)
    }
    assert wrong == {}


def test_a_key_without_a_default_is_not_given_one() -> None:
    rows = reference_rows()
    invented = {
        k.name: rows[k.name][4]
        for k in KEYS
        if rendered(k.default) is None and rows[k.name][4] not in ("unset", "required", "empty")
    }
    # Worded defaults that the worker computes at start, each declared as the key's default_doc.
    assert invented == {k.name: k.default_doc for k in KEYS if k.default_doc is not None}
    assert invented["consumer.override.group.id"] == "`connect-<name>`"  # computed from `name`


def test_make_docs_rewrites_only_the_reference() -> None:
    text = f"# Hand-written\n\nprose before\n\n{BEGIN}\nstale table\n{END}\n\n## Also hand-written\n"
    out = render(text)
    assert out.startswith("# Hand-written\n\nprose before\n\n" + BEGIN)
    assert out.endswith(END + "\n\n## Also hand-written\n")
    assert "stale table" not in out and "`connect.coap.uri`" in out
    assert render(out) == out
    with pytest.raises(ValueError, match="markers"):
        render("# no markers\n")


def test_the_readme_links_to_the_reference_instead_of_carrying_it() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/configuration.md" in readme
