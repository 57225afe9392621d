"""Confluent schema references: a schema that names a type registered under another subject.

Since Confluent Platform 5.5 an Avro schema may use a named type (``"type": "com.acme.Address"``) that it does
not define; its registry entry lists ``references`` (name, subject, version) saying where the definition is.
fastavro, and the renderer, need one self-contained schema, so the definitions are put in place: the first
use of each referenced name (in the order Avro defines names: depth first, fields in order) is replaced by the
definition, later uses stay names, which Avro resolves to that first definition. Referenced schemas may
reference others; the caller inlines those first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAMED_TYPES = frozenset({"record", "error", "enum", "fixed"})


def full_name(name: str, namespace: str | None) -> str:
    """Avro's full name of ``name`` used inside ``namespace`` (a dotted name is already full)."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def defined_names(schema: Any, namespace: str | None = None) -> set[str]:
    """Full names of the named types ``schema`` defines (not those it only uses)."""
    names: set[str] = set()
    _collect(schema, namespace, names)
    return names


def _collect(node: Any, namespace: str | None, names: set[str]) -> None:
    if isinstance(node, list):
        for branch in node:
            _collect(branch, namespace, names)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in NAMED_TYPES and isinstance(node.get("name"), str):
            name = full_name(node["name"], node.get("namespace", namespace))
            names.add(name)
            inner = name.rpartition(".")[0] or None
            for field in node.get("fields", ()) if kind != "enum" else ():
                _collect(field.get("type"), inner, names)
        elif kind == "array":
            _collect(node.get("items"), namespace, names)
        elif kind == "map":
            _collect(node.get("values"), namespace, names)
        elif isinstance(kind, list | dict):
            _collect(kind, namespace, names)


def inline_references(schema: Any, definitions: Mapping[str, Any]) -> Any:
    """``schema`` with the first use of each name in ``definitions`` (full name -> self-contained schema)
    replaced by its definition. Names the schema defines itself are left alone."""
    return _Inliner(definitions).walk(schema, None)


class _Inliner:
    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self.definitions = definitions
        self.defined: set[str] = set()

    def walk(self, node: Any, namespace: str | None) -> Any:
        if isinstance(node, str):
            return self._use(node, namespace)
        if isinstance(node, list):
            return [self.walk(branch, namespace) for branch in node]
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        if kind in NAMED_TYPES and isinstance(node.get("name"), str):
            name = full_name(node["name"], node.get("namespace", namespace))
            self.defined.add(name)
            if kind in ("enum", "fixed"):
                return node
            inner = name.rpartition(".")[0] or None
            fields = [
                {**field, "type": self.walk(field.get("type"), inner)} for field in node.get("fields", ())
            ]
            return {**node, "fields": fields}
        if kind == "array":
            return {**node, "items": self.walk(node.get("items"), namespace)}
        if kind == "map":
            return {**node, "values": self.walk(node.get("values"), namespace)}
        # {"type": "com.acme.Address"}, {"type": [...]}, {"type": "string", "logicalType": ...}
        return {**node, "type": self.walk(kind, namespace)}

    def _field(self, field: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        return {**field, "type": self.walk(field.get("type"), namespace)}

    def _use(self, name: str, namespace: str | None) -> Any:
        for candidate in dict.fromkeys((full_name(name, namespace), name)):
            if candidate in self.definitions and candidate not in self.defined:
                definition = self.definitions[candidate]
                self.defined.add(candidate)
                self.defined |= defined_names(definition, candidate.rpartition(".")[0] or None)
                return definition
        return name
