"""`xbus dlq list SERVICE`, `xbus dlq redrive SERVICE (--all | --id ID ...)` and
`xbus dlq purge SERVICE --applied-before DURATION`."""

from __future__ import annotations

import datetime as dt
import json

import typer
from rich.markup import escape
from rich.table import Table

from consumers.runtime.dead_letters import (
    DeadLetter,
    RedriveReport,
    list_dead_letters,
    purge_applied,
    schema_connection,
)
from consumers.runtime.dead_letters import redrive as redrive_entries
from consumers.runtime.discovery import resolve_services
from consumers.runtime.service import Service
from xbus.cli.common import out, run, settings
from xbus.durations import parse_duration_ms
from xbus.errors import XbusError
from xbus.platform import acks_all_producer, connect

app = typer.Typer(
    help="Events a service could not apply: list them, redrive them, purge those applied since.", no_args_is_help=True
)

SERVICE_ARGUMENT = typer.Argument(..., help="Service name, or module:attribute of a Service.")
STATUS_STYLE = {"failed": "red", "redriven": "yellow", "applied": "green"}


@app.command("list")
def list_(
    service: str = SERVICE_ARGUMENT,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per dead letter (NDJSON)."),
) -> None:
    """A service's dead letters: where each came from, why it failed, and what is parked behind it."""
    chosen = _service(service)

    async def go() -> list[DeadLetter]:
        endpoints = await connect(settings())
        async with schema_connection(endpoints.database_url, settings().db_schema(chosen.name)) as connection:
            return await list_dead_letters(connection)

    entries = run(go())
    if as_json:
        for entry in entries:
            print(json.dumps(entry.to_json()), flush=True)
        return
    if not entries:
        out.print(f"{chosen.name} has no dead letters")
        return
    table = Table()
    for column in ("event id", "type", "key", "from", "error", "attempts", "failed at", "status", "parked"):
        table.add_column(column, no_wrap=column in ("event id", "from", "failed at"))
    for entry in entries:
        error = f"{entry.error_type}: {entry.error_message}"
        table.add_row(
            entry.event_id,
            entry.event_type or "?",
            escape(entry.key) if entry.key is not None else "[dim](none)[/dim]",
            f"{entry.topic}[{entry.partition}]@{entry.offset}",
            escape(error if len(error) <= 80 else error[:79] + "…"),
            str(entry.attempts),
            entry.failed_at.isoformat(timespec="seconds"),
            f"[{STATUS_STYLE[entry.status]}]{entry.status}[/]",
            str(entry.parked),
        )
    out.print(table)
    waiting = sum(1 for entry in entries if entry.status == "failed")
    out.print(f"{len(entries)} dead letter{'s' if len(entries) != 1 else ''}, {waiting} waiting for a redrive")


@app.command()
def redrive(
    service: str = SERVICE_ARGUMENT,
    everything: bool = typer.Option(False, "--all", help="Every dead letter waiting for a redrive."),
    ids: list[str] | None = typer.Option(None, "--id", help="Event id of a dead letter (repeatable)."),
    force: bool = typer.Option(
        False, "--force", help="Also publish again entries redriven earlier but not applied yet."
    ),
) -> None:
    """Publish dead letters again on the topic and partition they came from, once their cause is fixed.

    The service applies it, then the events of its key parked behind it, in their order.
    """
    if everything == bool(ids):
        raise XbusError(
            "give --all or --id, not both"
            if everything
            else "say which dead letters to redrive: --id ID (repeatable) or --all; `xbus dlq list SERVICE` shows them"
        )
    chosen = _service(service)

    async def go() -> RedriveReport:
        endpoints = await connect(settings())
        async with (
            schema_connection(endpoints.database_url, settings().db_schema(chosen.name)) as connection,
            acks_all_producer(settings(), endpoints.kafka_bootstrap) as producer,
        ):
            return await redrive_entries(connection, producer, None if everything else ids, force=force)

    report = run(go())
    for entry in report.redriven:
        out.print(
            f"[green]redriven[/green] {entry.event_id} {entry.event_type or '?'} "
            f"key={escape(str(entry.key))} -> {entry.topic}[{entry.partition}]",
            highlight=False,
        )
    for skipped in report.skipped:
        out.print(f"[yellow]skipped[/yellow]  {skipped.entry.event_id}: {escape(skipped.reason)}", highlight=False)
    if not report.redriven and not report.skipped:
        out.print(f"{chosen.name} has no dead letters waiting for a redrive")
        return
    out.print(f"{len(report.redriven)} redriven, {len(report.skipped)} skipped")


@app.command()
def purge(
    service: str = SERVICE_ARGUMENT,
    applied_before: str = typer.Option(
        ..., "--applied-before", help="Purge entries whose event was applied longer ago than this (7d, 12h, 0s)."
    ),
) -> None:
    """Delete dead letters whose event has been applied since (after a redrive), which are history.

    Entries still waiting for a redrive, or redriven and not applied yet, are always kept.
    """
    try:
        age = dt.timedelta(milliseconds=parse_duration_ms(applied_before))
    except ValueError as error:
        raise XbusError(f"--applied-before: {error}") from None
    if age < dt.timedelta(0):
        raise XbusError("--applied-before: give a duration such as 7d or 0s, not forever")
    chosen = _service(service)

    async def go() -> tuple[int, int]:
        endpoints = await connect(settings())
        async with schema_connection(endpoints.database_url, settings().db_schema(chosen.name)) as connection:
            purged = await purge_applied(connection, age)
            return purged, len(await list_dead_letters(connection))

    purged, left = run(go())
    out.print(f"{purged} purged, {left} dead letter{'s' if left != 1 else ''} left")


def _service(spec: str) -> Service:
    [service] = resolve_services([spec], everything=False)
    return service
