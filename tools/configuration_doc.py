"""Writes the configuration reference of docs/configuration.md from ``KEYS`` (streamapp/config/keys.py).

Why generated: a key's name, default, unit and doc are declared once, in ``KEYS``; a reference written by
hand repeats each of them and drifts. So the per-key tables are rendered from the declarations, and
``tests/unit/tools/test_configuration_doc.py`` fails when the committed file is not what this writes.

Only the part between the two markers is generated; the prose around it (how keys resolve, spellings,
discovery) is written by hand in docs/configuration.md and kept as it is.

    python -m tools.configuration_doc            # rewrite docs/configuration.md (``make docs``)
    python -m tools.configuration_doc --check    # exit 1 when it is out of date

This module writes documentation only, so it lives in ``tools/`` and not in the runtime package.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Any

from streamapp.config.keys import GROUPS, Key, KeyGroup, Secret, env_name, keys_of
from streamapp.kcql.model import STATEMENT_PROPERTIES

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN REFERENCE: `make docs` writes this part from KEYS (config/keys.py); do not edit it -->"
END = "<!-- END REFERENCE -->"

INTRO = f"""\
## Reference

Every key, section by section, as `KEYS` declares it. Each can also be set as an environment variable:
the key upper-cased with `.` and `-` turned into `_` (`connect.coap.max.retries` →
`{env_name("connect.coap.max.retries")}`). A value of type *password* prints as `[hidden]` everywhere.
*Also written as* lists the key's aliases (same standing), the spellings older stream-reactor releases
used (*old*), environment variables that also set it (*env*) and the KCQL `PROPERTIES` name that overrides
it for one statement (*KCQL*); the rules are under [Spellings](#spellings)."""

_KCQL_NAME = {key: name for name, key in STATEMENT_PROPERTIES.items()}


def _cell(text: str) -> str:
    """Text in a table cell: one line, no column separator."""
    return " ".join(text.split()).replace("|", "\\|")


def default_cell(key: Key[Any]) -> str:
    """The default as the reference writes it: a concrete value as code, words where it is computed."""
    if key.required:
        return "required"
    if key.default_doc is not None:
        return key.default_doc
    default = key.default
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, tuple):
        return f"`{','.join(default)}`" if default else "empty"
    if isinstance(default, Secret):
        return f"`{default.reveal()}`"  # a published default (stream-reactor's), not a secret
    return f"`{default}`" if default != "" else '`""`'


def spellings_cell(key: Key[Any]) -> str:
    spellings = [f"`{alias}`" for alias in key.aliases]
    spellings += [f"`{old}` (old)" for old in key.deprecated]
    spellings += [f"`{env}` (env)" for env in key.env_aliases]
    if key.name in _KCQL_NAME:
        spellings.append(f"`{_KCQL_NAME[key.name]}` (KCQL)")
    return ", ".join(spellings)


def group_section(group: type[KeyGroup]) -> str:
    title, _, intro = inspect.cleandoc(group.__doc__ or group.__name__).partition("\n")
    lines = [f"### {title.strip()}", ""]
    if intro.strip():
        lines += [intro.strip(), ""]
    lines += [
        "| Key | Also written as | Type | Unit | Default | Description |",
        "|---|---|---|---|---|---|",
    ]
    for key in keys_of(group):
        cells = (
            f"`{key.name}`",
            spellings_cell(key),
            key.type_name,
            key.unit or "",
            default_cell(key),
            key.doc,
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def reference() -> str:
    """The generated part, markers included."""
    return "\n\n".join([BEGIN, INTRO, *(group_section(group) for group in GROUPS), END])


def render(current: str) -> str:
    """``current`` (the file's text) with the part between the markers replaced by :func:`reference`."""
    start, end = current.find(BEGIN), current.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC} has lost its reference markers; put back the lines\n{BEGIN}\n{END}")
    return current[:start] + reference() + current[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when docs/configuration.md is out of date"
    )
    args = parser.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(f"{DOC} is out of date with KEYS: run `make docs`", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        DOC.write_text(wanted, encoding="utf-8")
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
