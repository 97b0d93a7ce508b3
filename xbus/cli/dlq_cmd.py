"""`xbus dlq list SERVICE`, `xbus dlq redrive SERVICE (--all | --id ID ...)`,
`xbus dlq discard SERVICE --id ID ... --reason TEXT` and `xbus dlq purge SERVICE --applied-before DURATION`."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections.abc import Awaitable, Callable

import asyncpg
import typer
from rich.markup import escape
from rich.table import Table

from consumers.runtime.dead_letters import (
    UNSETTLED,
    DeadLetter,
    Requested,
    await_settled,
    list_dead_letters,
    purge_applied,
    request_discard,
    request_redrive,
    schema_connection,
)
from consumers.runtime.discovery import resolve_services
from consumers.runtime.service import Service
from infrastructure.durations import parse_duration_ms
from infrastructure.endpoints import connect_database
from infrastructure.errors import XbusError
from xbus.cli.common import out, run, settings

app = typer.Typer(
    help="Events a service could not apply: list them, redrive or discard them, purge those applied since.",
    no_args_is_help=True,
)

SERVICE_ARGUMENT = typer.Argument(..., help="Service name, or module:attribute of a Service.")
STATUS_STYLE = {"failed": "red", "redriven": "yellow", "applied": "green", "discarding": "yellow", "discarded": "dim"}
WAIT_OPTION = typer.Option(
    30.0, "--wait", min=0, help="Seconds to wait for the running service to carry it out (0: only ask)."
)


@app.command("list")
def list_(
    service: str = SERVICE_ARGUMENT,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per dead letter (NDJSON)."),
) -> None:
    """A service's dead letters: where each came from, why it failed, and what is parked behind it."""
    chosen = _service(service)

    async def go() -> list[DeadLetter]:
        async with schema_connection(
            await connect_database(settings()), settings().db_schema(chosen.name)
        ) as connection:
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
    waiting = sum(1 for entry in entries if entry.status in UNSETTLED)
    out.print(
        f"{len(entries)} dead letter{'s' if len(entries) != 1 else ''}, {waiting} waiting for a redrive or discard"
    )


@app.command()
def redrive(
    service: str = SERVICE_ARGUMENT,
    everything: bool = typer.Option(False, "--all", help="Every dead letter waiting for a decision."),
    ids: list[str] | None = typer.Option(None, "--id", help="Event id of a dead letter (repeatable)."),
    wait: float = WAIT_OPTION,
) -> None:
    """Apply dead letters again, once their cause is fixed, in this service only.

    The running service applies the stored record (nothing is re-published: other services read
    its topic), then the events of its key parked behind it, in their order. One that fails again
    stays a dead letter, with the new reason.
    """
    if everything == bool(ids):
        raise XbusError(
            "give --all or --id, not both"
            if everything
            else "say which dead letters to redrive: --id ID (repeatable) or --all; `xbus dlq list SERVICE` shows them"
        )
    chosen = _service(service)
    _carry_out(chosen, lambda connection: request_redrive(connection, None if everything else ids), "redrive", wait)


@app.command()
def discard(
    service: str = SERVICE_ARGUMENT,
    ids: list[str] = typer.Option(..., "--id", help="Event id of a dead letter (repeatable)."),
    reason: str = typer.Option(..., "--reason", help="Why it is thrown away: kept with the entry."),
    by: str = typer.Option(getpass.getuser(), "--by", help="Who discards it (default: your login name)."),
    wait: float = WAIT_OPTION,
) -> None:
    """Throw dead letters away for good, saying why: they are never applied, and the events of
    their key parked behind them are applied in their order. Who, when and why stay on the entry."""
    chosen = _service(service)
    _carry_out(chosen, lambda connection: request_discard(connection, ids, by, reason), "discard", wait)


def _carry_out(
    chosen: Service, ask: Callable[[asyncpg.Connection], Awaitable[Requested]], action: str, wait: float
) -> None:
    """Write the request, wait up to ``wait`` seconds for the service to carry it out, and report
    each entry: settled, failed again (exit 1), or still waiting for a member to run it."""

    async def go() -> tuple[Requested, list[DeadLetter]]:
        database_url = await connect_database(settings())
        async with schema_connection(database_url, settings().db_schema(chosen.name)) as connection:
            requested = await ask(connection)
            ids = [entry.event_id for entry in requested.marked]
            return requested, await await_settled(connection, ids, wait) if ids else []

    requested, outcomes = run(go())
    for skipped in requested.skipped:
        out.print(f"[yellow]skipped[/yellow]  {skipped.entry.event_id}: {escape(skipped.reason)}", highlight=False)
    if not requested.marked and not requested.skipped:
        out.print(f"{chosen.name} has no dead letters waiting for a redrive or discard")
        return
    failed = 0
    for entry in outcomes:
        line = f"{entry.event_id} {entry.event_type or '?'} key={escape(str(entry.key))}"
        if entry.status in ("applied", "discarded"):
            out.print(f"[green]{entry.status}[/green] {line}", highlight=False)
        elif entry.status == "failed":
            failed += 1
            error = escape(f"{entry.error_type}: {entry.error_message}")
            out.print(f"[red]failed again[/red] {line}: {error}", highlight=False)
        else:
            out.print(
                f"[yellow]asked[/yellow] {line}: no member of {chosen.name} has carried out the {action} yet "
                "(is it running? it will when it runs)",
                highlight=False,
            )
    settled = sum(1 for entry in outcomes if entry.status in ("applied", "discarded"))
    out.print(
        f"{settled} {'applied' if action == 'redrive' else 'discarded'}, {failed} failed again, "
        f"{len(outcomes) - settled - failed} waiting, {len(requested.skipped)} skipped"
    )
    if failed:
        raise typer.Exit(1)


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
        async with schema_connection(
            await connect_database(settings()), settings().db_schema(chosen.name)
        ) as connection:
            purged = await purge_applied(connection, age)
            return purged, len(await list_dead_letters(connection))

    purged, left = run(go())
    out.print(f"{purged} purged, {left} dead letter{'s' if left != 1 else ''} left")


def _service(spec: str) -> Service:
    [service] = resolve_services([spec], everything=False)
    return service
