"""Compile a KCQL :class:`Statement` into a function ``Record -> JSON-ready value``.

Field paths are resolved into a plan once, at start: per record there is no parsing, only dict look-ups.
A selected field the record lacks becomes JSON ``null``; a path that runs through a non-object is a
:class:`SelectError` naming the path and the record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from streamapp.codecs import Record
from streamapp.errors import SelectError
from streamapp.kcql import Field, Statement

Selector = Callable[[Record], Any]
_MISSING = object()


def compile_selector(statement: Statement) -> Selector:
    explicit = [f for f in statement.fields if not f.star]
    if statement.selects_all and not explicit:
        return _select_value
    if statement.selects_all:
        return _star_with_fields(explicit)
    plan = [(f.output_name, f.path) for f in explicit]

    def select_fields(record: Record) -> dict[str, Any]:
        value = _require_object(record, record.value, ())
        return {name: _get_path(record, value, path) for name, path in plan}

    return select_fields


def _select_value(record: Record) -> Any:
    return record.value


def _star_with_fields(explicit: list[Field]) -> Selector:
    """``*, a AS b, x.y``: every field of the record in its order, top-level aliases renamed in place,
    nested selections appended after."""
    renames = {f.path[0]: f.output_name for f in explicit if len(f.path) == 1}
    nested = [(f.output_name, f.path) for f in explicit if len(f.path) > 1]

    def select_star(record: Record) -> dict[str, Any]:
        value = _require_object(record, record.value, ())
        out = {renames.get(k, k): v for k, v in value.items()}
        for name, path in nested:
            out[name] = _get_path(record, value, path)
        return out

    return select_star


def _require_object(record: Record, value: Any, path: tuple[str, ...]) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    where = ".".join(path) if path else "the record value"
    raise SelectError(
        record.where,
        f"cannot select fields from {where}: it is {_json_type(value)}, not an object",
    )


def _get_path(record: Record, value: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    current: Any = value
    for depth, segment in enumerate(path):
        if depth:
            current = _require_object(record, current, path[:depth])
        current = current.get(segment, _MISSING)
        if current is _MISSING or current is None:
            return None
    return current


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
