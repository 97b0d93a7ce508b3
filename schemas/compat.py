"""Backward compatibility of JSON Schemas: can the new schema read every event the old one allowed?

Events stay on topics for weeks and are replayed to rebuild state, so a consumer built from the
new model must accept every event written under any earlier version. This checker is strict on
purpose: when it is unsure whether a change is safe (a changed pattern, a new constraint), it
reports it, and the answer is a new event version (``.v2``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Schema = dict[str, Any]

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_EXACT = ("pattern", "format", "multipleOf", "const")


def incompatibilities(old: Schema, new: Schema) -> list[str]:
    """Problems that make ``new`` unable to read data valid under ``old``; empty when compatible."""
    return list(_Comparison(old, new).compare(old, new, "(event)"))


class _Comparison:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self._old_root = old_root
        self._new_root = new_root
        self._in_progress: set[tuple[int, int]] = set()

    def compare(self, old: Schema, new: Schema, path: str) -> Iterator[str]:
        old, new = _resolve(self._old_root, old), _resolve(self._new_root, new)
        pair = (id(old), id(new))
        if pair in self._in_progress:  # a recursive model: already being compared further up
            return
        self._in_progress.add(pair)
        try:
            yield from self._compare_resolved(old, new, path)
        finally:
            self._in_progress.discard(pair)

    def _compare_resolved(self, old: Schema, new: Schema, path: str) -> Iterator[str]:
        old_alternatives, new_alternatives = _alternatives(old), _alternatives(new)
        if len(old_alternatives) > 1 or len(new_alternatives) > 1:
            for alternative in old_alternatives:
                if not any(self._accepts(alternative, candidate, path) for candidate in new_alternatives):
                    yield f"{path}: no longer accepts {_describe(_resolve(self._old_root, alternative))}"
            return
        old_type, new_type = old.get("type"), new.get("type")
        if new_type is not None and old_type != new_type and not _widens(old_type, new_type):
            yield f"{path}: type changed from {old_type or 'any'} to {new_type}"
            return
        yield from _enum_and_bounds(old, new, path)
        if "items" in old or "items" in new:
            yield from self.compare(old.get("items", {}), new.get("items", {}), f"{path}[]")
        if old_type == "object" or "properties" in old or "properties" in new:
            yield from self._compare_objects(old, new, path)

    def _accepts(self, old: Schema, new: Schema, path: str) -> bool:
        return not any(True for _ in self.compare(old, new, path))

    def _compare_objects(self, old: Schema, new: Schema, path: str) -> Iterator[str]:
        old_properties, new_properties = old.get("properties", {}), new.get("properties", {})
        prefix = "" if path == "(event)" else f"{path}."
        for name in old_properties:
            if name not in new_properties:
                yield f"{prefix}{name}: field removed"
        newly_required = set(new.get("required", ())) - set(old.get("required", ()))
        for name in sorted(newly_required):
            was = "optional field made required" if name in old_properties else "new required field"
            yield f"{prefix}{name}: {was}"
        if old.get("additionalProperties", True) is not False and new.get("additionalProperties", True) is False:
            yield f"{path}: additional properties no longer allowed"
        for name in old_properties:
            if name in new_properties:
                yield from self.compare(old_properties[name], new_properties[name], f"{prefix}{name}")


def _enum_and_bounds(old: Schema, new: Schema, path: str) -> Iterator[str]:
    if "enum" in new:
        removed = [v for v in old.get("enum", ()) if v not in new["enum"]]
        if "enum" not in old and "const" not in old:
            yield f"{path}: now restricted to {new['enum']}"
        elif removed:
            yield f"{path}: enum value(s) {', '.join(map(repr, removed))} removed"
        if "const" in old and old["const"] not in new["enum"]:
            yield f"{path}: value {old['const']!r} removed"
    for key in _EXACT:
        if key in new and old.get(key) != new[key]:
            yield f"{path}: {key} changed from {old.get(key)!r} to {new[key]!r}"
    for key in _LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            yield f"{path}: {key} raised from {old.get(key, 'none')} to {new[key]}"
    for key in _UPPER_BOUNDS:
        if key in new and (key not in old or new[key] < old[key]):
            yield f"{path}: {key} lowered from {old.get(key, 'none')} to {new[key]}"


def _resolve(root: Schema, schema: Schema) -> Schema:
    """Follow ``$ref`` (into ``$defs``) and single-element ``allOf``; keep sibling keywords."""
    while True:
        if "$ref" in schema:
            target = root
            for part in schema["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings} if siblings else target
        elif len(schema.get("allOf", ())) == 1:
            schema = {**{k: v for k, v in schema.items() if k != "allOf"}, **schema["allOf"][0]}
        else:
            return schema


def _alternatives(schema: Schema) -> list[Schema]:
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return list(schema[key])
    return [schema]


def _widens(old_type: Any, new_type: Any) -> bool:
    """integer → number is the one type change every reader survives."""
    return old_type == "integer" and new_type == "number"


def _describe(schema: Schema) -> str:
    if schema.get("type") == "null":
        return "null"
    return str(schema.get("title") or schema.get("type") or "a value of its earlier shape")
