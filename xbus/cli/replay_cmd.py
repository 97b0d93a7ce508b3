"""`xbus replay GROUP (--to-earliest | --to-latest | --to-datetime T | --by-duration D | --to-offset N |
--shift-by N) [--topic T[:P,...]]... [--execute] [--json]`."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from infrastructure.endpoints import connect
from xbus.cli.common import err, out, run, settings
from xbus.replay.execute import ReplayDone, execute_replay, plan_replay
from xbus.replay.plan import ReplayPlan, parse_mode, parse_selection


def replay(
    group: str = typer.Argument(..., help="Consumer group id as `xbus lag` shows it (xbus.<service>, prefixed)."),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="Back to the oldest record kept."),
    to_latest: bool = typer.Option(False, "--to-latest", help="To the log end: skip everything not read yet."),
    to_datetime: str | None = typer.Option(
        None, "--to-datetime", metavar="T", help="First record at or after T (ISO 8601; no offset means UTC)."
    ),
    by_duration: str | None = typer.Option(
        None, "--by-duration", metavar="D", help="First record at or after now minus D (30m, 12h, 7d)."
    ),
    to_offset: int | None = typer.Option(None, "--to-offset", metavar="N", help="Offset N of every partition."),
    shift_by: int | None = typer.Option(
        None, "--shift-by", metavar="N", help="Move each committed offset by N (negative: re-read N events)."
    ),
    topics: list[str] | None = typer.Option(
        None,
        "--topic",
        metavar="T[:P,...]",
        help="Only topic T (topics.yaml name), or some of its partitions. Repeatable.",
    ),
    execute: bool = typer.Option(False, "--execute", help="Move the offsets (the group must have no members)."),
    as_json: bool = typer.Option(False, "--json", help="The plan (and what was done) as one JSON object."),
) -> None:
    """Move a consumer group's offsets to re-read (or skip) events. Prints the plan; --execute applies it.

    New offsets are kept within the log. Events an xbus service reads again reach its handlers replayed.
    """
    mode = parse_mode(
        to_earliest=to_earliest,
        to_latest=to_latest,
        to_datetime=to_datetime,
        by_duration=by_duration,
        to_offset=to_offset,
        shift_by=shift_by,
    )
    selections = [parse_selection(text) for text in topics or []]

    async def go() -> ReplayPlan | ReplayDone:
        endpoints = await connect(settings())
        if execute:
            return await execute_replay(settings(), endpoints, group, mode, selections)
        return await plan_replay(settings(), endpoints, group, mode, selections)

    result = run(go())
    if as_json:
        print(
            json.dumps(result.to_json() if isinstance(result, ReplayDone) else {**result.to_json(), "executed": False})
        )
        return
    plan = result.plan if isinstance(result, ReplayDone) else result
    _print_plan(plan)
    if isinstance(result, ReplayDone):
        _print_done(result)
        return
    if plan.description.active:
        members = ", ".join(map(str, plan.description.members))
        err.print(
            f"[yellow]group {escape(group)} has active members ({escape(members)}): "
            "--execute will refuse until they stop[/yellow]"
        )
    out.print("Nothing was changed (dry run). To apply this plan, run the same command with --execute.")


def _print_plan(plan: ReplayPlan) -> None:
    owner = f"xbus service {plan.service}" if plan.service else "no xbus service"
    out.print(f"Replay of group [bold]{escape(plan.group)}[/bold] ({owner}): {plan.mode_text}")
    table = Table()
    for column in ("topic", "partition", "current", "new", "re-read", "skipped"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    for p in plan.partitions:
        table.add_row(
            escape(p.tp.topic),
            str(p.tp.partition),
            "[dim]never committed[/dim]" if p.current is None else str(p.current),
            "[dim]unchanged[/dim]" if p.new is None else str(p.new),
            "[dim]-[/dim]" if p.never_committed else str(p.re_read),
            "[dim]-[/dim]" if p.never_committed else str(p.skipped),
        )
    out.print(table)
    for p in plan.partitions:
        if p.clamped:
            err.print(f"[yellow]{escape(p.clamp_note)}[/yellow]")
    totals = f"{plan.re_read} events re-read, {plan.skipped} skipped, on {len(plan.partitions)} partitions"
    if plan.never_committed:
        totals += f"; {plan.never_committed} never committed (the group has read nothing there)"
    out.print(totals)


def _print_done(done: ReplayDone) -> None:
    plan = done.plan
    out.print(f"[green]Moved[/green] the offsets of {len(done.committed)} partitions of group {escape(plan.group)}.")
    if plan.service is None:
        out.print("Not an xbus service's group: no replay marks written; its consumers see re-read events as new.")
    elif done.marks:
        out.print(
            f"Replay marks written in schema {plan.schema} for {len(done.marks)} partitions: {plan.service}'s "
            "handlers get the events read again with unit.replayed = True."
        )
    else:
        out.print("No partition moved back: no replay marks needed.")
