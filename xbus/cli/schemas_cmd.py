"""`xbus schemas list | export DIR | asyncapi`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

import schemas
from infrastructure.endpoints import load_catalogue
from xbus.cli.common import out, settings

app = typer.Typer(
    help="Event models: list them, export JSON Schemas, write the AsyncAPI document.", no_args_is_help=True
)


@app.command("list")
def list_() -> None:
    """Every event type with its model, the topics that carry it and its key."""
    catalogue = load_catalogue(settings())
    table = Table("type", "model", "topics", "key (aggregate id)")
    for model in schemas.event_types.models():
        topics = ", ".join(catalogue.carriers(model.event_type))
        table.add_row(model.event_type, model.__name__, topics, model.aggregate_field)
    out.print(table)


@app.command()
def export(directory: Path = typer.Argument(..., help="Where to write one <type>.json per event.")) -> None:
    """Write the JSON Schema of every event (commit them under schemas/json/)."""
    from schemas.export import export_schemas

    directory.mkdir(parents=True, exist_ok=True)
    written = export_schemas(directory)
    out.print(f"wrote {len(written)} schemas to {directory}")


@app.command()
def asyncapi(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Where to write it [default: schemas/asyncapi.yaml]."
    ),
) -> None:
    """Write the AsyncAPI 3.0 document of every topic and event (committed as schemas/asyncapi.yaml)."""
    from xbus.asyncapi import committed_asyncapi_path, render_asyncapi

    output = output or committed_asyncapi_path()
    output.write_text(render_asyncapi(load_catalogue(settings()), schemas.event_types))
    out.print(f"wrote {output}")
