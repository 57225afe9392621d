"""Turn values read by fastavro into the JSON-ready values a device gets (docs/payloads.md, "Rendering").

The schema is compiled once per schema id into a renderer; a schema with nothing to convert (no bytes, fixed,
logical types or unions of several records) compiles to ``None`` and its records are not walked at all.

fastavro is given the schema with its ``logicalType`` attributes removed (:func:`strip_logical_types`), so it
hands over the underlying ints and bytes and the renderer decides the JSON form: an exact
:class:`~decimal.Decimal` for decimals, ISO-8601 text for dates and times, epoch milliseconds for timestamps.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from streamapp.codecs.logical import b64, decimal_from_unscaled, iso_date, iso_time

Render = Callable[[Any], Any]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


class UnsupportedSchema(ValueError):
    """The schema cannot be rendered unambiguously (e.g. a union of ``int`` and ``date``)."""


def strip_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without ``logicalType`` attributes (fastavro then reads the plain types)."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    return schema


def _millis_from(power: int) -> Render:
    """Epoch micro/nanoseconds as exact epoch milliseconds (a fraction only when there is one)."""

    per_milli: int = 10**power

    def render(value: int) -> int | Decimal:
        whole, rest = divmod(value, per_milli)
        if rest == 0:
            return whole
        return decimal_from_unscaled(value, power)

    return render


def _decimal(schema: dict[str, Any]) -> Render:
    scale = schema.get("scale", 0)
    if not isinstance(scale, int) or scale < 0:
        raise UnsupportedSchema(f"decimal scale must be a non-negative integer, got {scale!r}")
    return lambda data: decimal_from_unscaled(int.from_bytes(data, "big", signed=True), scale)


def _duration(data: bytes) -> dict[str, int]:
    return {
        "months": int.from_bytes(data[0:4], "little"),
        "days": int.from_bytes(data[4:8], "little"),
        "milliseconds": int.from_bytes(data[8:12], "little"),
    }


_LOGICAL: dict[tuple[str, str], Callable[[dict[str, Any]], Render | None]] = {
    ("bytes", "decimal"): _decimal,
    ("fixed", "decimal"): _decimal,
    ("fixed", "duration"): lambda _: _duration,
    ("int", "date"): lambda _: iso_date,
    ("int", "time-millis"): lambda _: lambda ms: iso_time(ms, 1000),
    ("long", "time-micros"): lambda _: lambda us: iso_time(us, 1_000_000),
    ("long", "timestamp-millis"): lambda _: None,
    ("long", "local-timestamp-millis"): lambda _: None,
    ("long", "timestamp-micros"): lambda _: _millis_from(3),
    ("long", "local-timestamp-micros"): lambda _: _millis_from(3),
    ("long", "timestamp-nanos"): lambda _: _millis_from(6),
    ("long", "local-timestamp-nanos"): lambda _: _millis_from(6),
}

#: The Python type fastavro returns for each Avro type (records in a multi-record union come as tuples).
_PYTHON_TYPE: dict[str, type] = {
    "null": type(None),
    "boolean": bool,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "bytes": bytes,
    "fixed": bytes,
    "string": str,
    "enum": str,
    "record": dict,
    "error": dict,
    "map": dict,
    "array": list,
}


class _Compiler:
    """Compiles one schema; keeps named types (records, enums, fixed) for later references by name."""

    def __init__(self) -> None:
        self.named: dict[str, dict[str, Any]] = {}
        self.renders: dict[str, Render | None] = {}
        self.in_progress: set[str] = set()

    def compile(self, schema: Any, namespace: str = "") -> Render | None:
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return b64 if schema == "bytes" else None
            return self._reference(schema, namespace)
        if isinstance(schema, list):
            return self._union(schema, namespace)
        kind = schema["type"]
        if isinstance(kind, (dict, list)):  # {"type": {"type": "array", ...}}
            return self.compile(kind, namespace)
        if kind in ("record", "error", "enum", "fixed"):
            return self._named(schema, namespace)
        logical = schema.get("logicalType")
        if logical is not None and (kind, logical) in _LOGICAL:
            return _LOGICAL[kind, logical](schema)
        if kind == "array":
            return _each(self.compile(schema["items"], namespace))
        if kind == "map":
            return _each_value(self.compile(schema["values"], namespace))
        return self.compile(kind, namespace)

    def _fullname(self, schema: dict[str, Any], namespace: str) -> tuple[str, str]:
        name = schema["name"]
        if "." in name:
            return name, name.rpartition(".")[0]
        space = schema.get("namespace", namespace) or ""
        return (f"{space}.{name}" if space else name), space

    def _named(self, schema: dict[str, Any], namespace: str) -> Render | None:
        fullname, space = self._fullname(schema, namespace)
        self.named[fullname] = schema
        if schema["type"] == "enum":
            render: Render | None = None
        elif schema["type"] == "fixed":
            logical = _LOGICAL.get(("fixed", schema.get("logicalType", "")))
            render = logical(schema) if logical is not None else b64
        else:
            self.in_progress.add(fullname)
            render = self._record(schema, space, fullname)
            self.in_progress.discard(fullname)
        self.renders[fullname] = render
        return render

    def _record(self, schema: dict[str, Any], namespace: str, fullname: str) -> Render | None:
        fields = [(f["name"], self.compile(f["type"], namespace)) for f in schema["fields"]]
        converting = [(name, render) for name, render in fields if render is not None]
        if not converting:
            return None

        def render_record(record: dict[str, Any]) -> dict[str, Any]:
            for name, render in converting:
                value = record[name]
                if value is not None:
                    record[name] = render(value)
            return record

        return render_record

    def _reference(self, name: str, namespace: str) -> Render | None:
        for candidate in (f"{namespace}.{name}" if namespace else name, name):
            if candidate in self.in_progress:  # a recursive type: resolve when called

                def resolve_when_called(value: Any, key: str = candidate) -> Any:
                    return _call(self.renders.get(key), value)

                return resolve_when_called
            if candidate in self.renders:
                return self.renders[candidate]
        raise UnsupportedSchema(f"unknown type name {name!r}")

    def _union(self, branches: list[Any], namespace: str) -> Render | None:
        by_type: dict[type, Render | None] = {}
        records: dict[str, Render | None] = {}  # by full and by short name: fastavro tags with either
        record_renders: list[Render | None] = []
        for branch in branches:
            resolved = self._resolve(branch, namespace)
            kind = resolved if isinstance(resolved, str) else resolved["type"]
            render = self.compile(branch, namespace)
            if kind in ("record", "error"):
                record_renders.append(render)
                records[self._fullname(resolved, namespace)[0]] = records[resolved["name"]] = render
                continue
            _add_branch(by_type, _PYTHON_TYPE[kind], render, branches)
        if len(record_renders) == 1:
            _add_branch(by_type, dict, record_renders[0], branches)
        if len(record_renders) > 1:
            # fastavro tags values of multi-record unions: (record name, value).
            def render_tagged(value: Any) -> Any:
                if isinstance(value, tuple):
                    name, inner = value
                    return _call(records.get(name), inner)
                return _call(by_type.get(type(value)), value)

            return render_tagged
        if all(r is None for r in by_type.values()):
            return None
        return lambda value: _call(by_type.get(type(value)), value)

    def _resolve(self, schema: Any, namespace: str) -> Any:
        """A branch as a dict or primitive name (named references resolved), for its kind."""
        if isinstance(schema, str) and schema not in PRIMITIVES:
            for candidate in (f"{namespace}.{schema}" if namespace else schema, schema):
                if candidate in self.named:
                    return self.named[candidate]
            raise UnsupportedSchema(f"unknown type name {schema!r}")
        if isinstance(schema, dict) and isinstance(schema["type"], str) and schema["type"] in PRIMITIVES:
            return schema["type"]
        if isinstance(schema, dict) and isinstance(schema["type"], (dict, list)):
            return self._resolve(schema["type"], namespace)
        return schema


def _add_branch(
    by_type: dict[type, Render | None], python_type: type, render: Render | None, union: Any
) -> None:
    if python_type in by_type and by_type[python_type] is not render:
        raise UnsupportedSchema(f"union {union!r} has two branches read as {python_type.__name__}")
    by_type[python_type] = render


def _call(render: Render | None, value: Any) -> Any:
    return value if render is None or value is None else render(value)


def _each(render: Render | None) -> Render | None:
    if render is None:
        return None
    return lambda items: [_call(render, item) for item in items]


def _each_value(render: Render | None) -> Render | None:
    if render is None:
        return None
    return lambda mapping: {key: _call(render, value) for key, value in mapping.items()}


def compile_renderer(schema: Any) -> Render | None:
    """The renderer for values of ``schema`` (parsed JSON of an Avro schema); None: nothing to convert."""
    try:
        return _Compiler().compile(schema)
    except (KeyError, TypeError) as exc:
        raise UnsupportedSchema(f"malformed schema: {type(exc).__name__}: {exc}") from None
