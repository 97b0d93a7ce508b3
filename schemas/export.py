"""JSON Schema per event type, as committed under ``schemas/json/`` and checked by the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.event import Event, event_types


def committed_schema_dir() -> Path:
    return Path(__file__).parent / "json"


def event_schema(model: type[Event]) -> dict[str, Any]:
    """The model's JSON Schema, with the facts a reader of the file needs beside it."""
    return {
        "$id": f"urn:xosp:event:{model.event_type}",
        "x-event-type": model.event_type,
        "x-aggregate-field": model.aggregate_field,
        **model.model_json_schema(),
    }


def render_schema(model: type[Event]) -> str:
    return json.dumps(event_schema(model), indent=2, sort_keys=True) + "\n"


def export_schemas(directory: Path) -> list[Path]:
    """Write ``<type>.json`` for every registered event; never removes a file (removal is a break)."""
    written = []
    for model in event_types.models():
        path = directory / f"{model.event_type}.json"
        path.write_text(render_schema(model))
        written.append(path)
    return written
