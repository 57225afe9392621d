"""Compile a KCQL :class:`Statement` into per-record functions.

``compile_selector``: ``Record -> JSON-ready value``; ``compile_resource``: ``Record -> Uri-Path segments``.
Field paths are resolved into a plan once, at start: per record there is no parsing, only look-ups.

Semantics (docs/kcql.md documents them for users):
- Output keys follow the SELECT list; ``*`` expands to the record's fields in the record's order, at its
  place in the list. With ``*``, a top-level field that is also listed (``*, a AS b``) stays at its place in
  the record, renamed; it is not written twice.
- ``a.b.*``, ``_key.*``, ``_header.*`` and ``_.*`` write every field of that object at their place.
- A selected field the record lacks is JSON ``null``. A path through a non-object is a :class:`SelectError`
  naming the path and the record.
- ``IGNORE`` removes output fields (by output name, after renaming; nested paths too) and never changes the
  decoded record, which other statements of the same topic also read.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from streamapp.errors import SelectError
from streamapp.kcql import Field, Statement
from streamapp.kcql.model import Source
from streamapp.records import Record

Selector = Callable[[Record], Any]
ResourceRenderer = Callable[[Record], tuple[str, ...]]
Getter = Callable[[Record], Any]
Step = Callable[[Record, dict[str, Any]], None]
_MISSING = object()


def compile_selector(statement: Statement) -> Selector:
    if statement.selects_all and len(statement.fields) == 1 and not statement.ignore:
        return _select_value
    if all(not f.star and f.source is Source.VALUE for f in statement.fields) and not statement.ignore:
        return _value_fields_selector(statement.fields)
    steps = _plan(statement)
    ignores = [f.path for f in statement.ignore]

    def select(record: Record) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for step in steps:
            step(record, out)
        for path in ignores:
            _remove(out, path)
        return out

    return select


def compile_resource(statement: Statement) -> ResourceRenderer:
    """The statement's Uri-Path segments for a record; ``{field}`` placeholders filled from the record."""
    if not statement.template_fields:
        fixed = tuple("".join(str(p) for p in segment) for segment in statement.template)
        return lambda record: fixed
    segments = [
        tuple((part, field_getter(part)) if isinstance(part, Field) else part for part in segment)
        for segment in statement.template
    ]

    def render(record: Record) -> tuple[str, ...]:
        out = []
        for segment in segments:
            text = "".join(
                part if isinstance(part, str) else placeholder_text(record, *part) for part in segment
            )
            if not text:
                raise SelectError(record.where, f"resource {statement.resource!r} has an empty path segment")
            out.append(text)
        return tuple(out)

    return render


# --- plan ---------------------------------------------------------------------------------------------------


def _value_fields_selector(fields: tuple[Field, ...]) -> Selector:
    """The common case, value fields only: one flat loop, the record value checked once per record.

    (bench/bench_selector.py measures this against a naive per-record walk.)
    """
    plan = [(f.output_name, f.path[0], f.path[1:]) for f in fields]

    def select_value_fields(record: Record) -> dict[str, Any]:
        value = record.value
        if type(value) is not dict:
            value = _require_object(record, value, "the record value")
        out = {}
        for name, first, rest in plan:
            item = value.get(first)
            if rest:
                for depth, segment in enumerate(rest):
                    if item is None:
                        break
                    if type(item) is not dict:
                        item = _require_object(record, item, ".".join((first, *rest[:depth])))
                    item = item.get(segment)
            out[name] = item
        return out

    return select_value_fields


def _plan(statement: Statement) -> list[Step]:
    star = statement.selects_all
    # With `*`, top-level value fields that are also listed are written in place by the star expansion.
    in_place = {
        f.path[0]: f.output_name
        for f in statement.fields
        if star and not f.star and f.source is Source.VALUE and len(f.path) == 1
    }
    steps: list[Step] = []
    for field in statement.fields:
        if field.star and not field.path:
            steps.append(_star_step(in_place))
        elif field.path[0] in in_place and len(field.path) == 1 and field.source is Source.VALUE:
            continue
        elif field.star:
            steps.append(_expand_step(field))
        else:
            steps.append(_field_step(field.output_name, field_getter(field)))
    return steps


def _star_step(renames: dict[str, str]) -> Step:
    def star(record: Record, out: dict[str, Any]) -> None:
        value = _require_object(record, record.value, "the record value")
        if renames:
            for key, item in value.items():
                out[renames.get(key, key)] = item
        else:
            out.update(value)

    return star


def _expand_step(field: Field) -> Step:
    get = _object_getter(field)
    label = str(field)

    def expand(record: Record, out: dict[str, Any]) -> None:
        obj = get(record)
        if obj is None:
            return
        if not isinstance(obj, Mapping):
            raise SelectError(record.where, f"cannot expand {label}: it is {_json_type(obj)}, not an object")
        out.update(obj)

    return expand


def _field_step(name: str, get: Getter) -> Step:
    def field(record: Record, out: dict[str, Any]) -> None:
        out[name] = get(record)

    return field


# --- getters ------------------------------------------------------------------------------------------------


def field_getter(field: Field) -> Getter:
    source, inner = field.source, field.inner_path
    if source is Source.META:
        return _META_GETTERS[inner[0]]
    if source is Source.HEADER:
        return _header_getter(inner[0])
    if source is Source.KEY:
        if not inner:
            return lambda record: record.key
        return lambda record: _get_path(record, record.key, inner, "the record key", "_key.")
    if len(inner) == 1:
        (name,) = inner

        def top_level(record: Record) -> Any:
            return _require_object(record, record.value, "the record value").get(name)

        return top_level
    return lambda record: _get_path(record, record.value, inner, "the record value", "")


def _object_getter(field: Field) -> Getter:
    """The object a ``x.*`` expands."""
    source = field.source
    if source is Source.META and not field.inner_path:
        return lambda record: {name: get(record) for name, get in _META_GETTERS.items()}
    if source is Source.HEADER and not field.inner_path:
        return lambda record: {name: _header_text(value) for name, value in record.headers}
    return field_getter(Field(path=field.path))


def _get_path(record: Record, root: Any, path: tuple[str, ...], label: str, prefix: str) -> Any:
    current = _require_object(record, root, label)
    for depth, segment in enumerate(path):
        if depth:
            current = _require_object(record, current, prefix + ".".join(path[:depth]))
        current = current.get(segment, _MISSING)
        if current is _MISSING or current is None:
            return None
    return current


def _require_object(record: Record, value: Any, label: str) -> Mapping[str, Any]:
    if type(value) is dict or isinstance(value, Mapping):
        return value
    raise SelectError(
        record.where, f"cannot select fields from {label}: it is {_json_type(value)}, not an object"
    )


def _header_getter(name: str) -> Getter:
    def header(record: Record) -> str | None:
        found = None
        for key, value in record.headers:  # the last header of that name wins, as in Kafka Connect
            if key == name:
                found = value
        return None if found is None else _header_text(found)

    return header


def _header_text(value: bytes) -> str:
    """Header bytes as UTF-8 text; bytes that are not UTF-8 as base64."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")


_META_GETTERS: dict[str, Getter] = {
    "topic": lambda record: record.topic,
    "partition": lambda record: record.partition,
    "offset": lambda record: record.offset,
    # Faust gives seconds; Kafka's convention (and stream-reactor's) is epoch milliseconds.
    "timestamp": lambda record: None if record.timestamp is None else round(record.timestamp * 1000),
}


def placeholder_text(record: Record, field: Field, get: Getter) -> str:
    value = get(record)
    if value is None or value == "":
        raise SelectError(
            record.where, f"resource placeholder {{{'.'.join(field.path)}}}: no value in the record"
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise SelectError(
        record.where,
        f"resource placeholder {{{'.'.join(field.path)}}}: it is {_json_type(value)}, not a string or number",
    )


# --- IGNORE -------------------------------------------------------------------------------------------------


def _remove(out: dict[str, Any], path: tuple[str, ...]) -> None:
    node = out
    for segment in path[:-1]:
        child = node.get(segment)
        if not isinstance(child, Mapping):
            return
        child = dict(child)  # copy on write: nested objects are shared with the decoded record
        node[segment] = child
        node = child
    node.pop(path[-1], None)


def _select_value(record: Record) -> Any:
    return record.value


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
