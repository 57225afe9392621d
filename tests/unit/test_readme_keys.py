"""The README's configuration tables agree with ``KEYS`` (streamapp/keys.py), where every key, default
and doc is written once: every key has a row, and every concrete default is the one the code uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from streamapp.keys import KEYS, REQUIRED, Secret

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
#: The tables that document keys; the stream-reactor mapping table says "same" instead of defaults.
DOCUMENTED = (
    README[README.index("## Configuration") : README.index("### From a stream-reactor")]
    + README[README.index("### DTLS") : README.index("### Payloads")]
)


def _expand(cell: str) -> list[str]:
    """`` `a.b.c` / `.d` `` -> ["a.b.c", "a.b.d"]: a suffix replaces as many trailing parts as it has."""
    names = re.findall(r"`([^`]+)`", cell)
    first = names[0]
    out = [first]
    for name in names[1:]:
        if name.startswith("."):
            parts = name[1:].split(".")
            name = ".".join(first.split(".")[: -len(parts)] + parts)
        out.append(name)
    return out


def documented_defaults() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in DOCUMENTED.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = [n for n in _expand(cells[0].replace("PORT", "")) if n]
        defaults = [d.strip() for d in cells[1].split(" / ")]
        for i, name in enumerate(names):
            rows[name] = defaults[i] if len(defaults) == len(names) else cells[1]
    return rows


def rendered(default: Any) -> str | None:
    """How the README must write a concrete default, or None where it describes it in words."""
    if default is None or default is REQUIRED or default == ():
        return None
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, tuple):
        return f"`{','.join(default)}`"
    if isinstance(default, Secret):
        return f"`{default.reveal()}`"
    return f"`{default}`"


def test_every_key_has_a_row() -> None:
    rows = documented_defaults()
    assert [k.name for k in KEYS if k.name not in rows] == []


def test_every_concrete_default_is_the_codes() -> None:
    rows = documented_defaults()
    wrong = {
        k.name: (rows[k.name], rendered(k.default))
        for k in KEYS
        if rendered(k.default) is not None and rows[k.name] != rendered(k.default)
    }
    assert wrong == {}


def test_a_key_without_a_default_is_not_given_one_in_the_readme() -> None:
    rows = documented_defaults()
    invented = {
        k.name: rows[k.name] for k in KEYS if rendered(k.default) is None and rows[k.name].startswith("`")
    }
    assert invented == {"consumer.override.group.id": "`connect-<name>`"}  # computed from `name`
