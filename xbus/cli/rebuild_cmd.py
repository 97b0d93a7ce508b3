"""`xbus rebuild SERVICE [--shadow] [--swap] [--json]`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from consumers.runtime.discovery import resolve_services
from infrastructure.endpoints import connect
from xbus.cli.common import err, out, run, settings
from xbus.rebuild.catchup import Progress as ProgressCallback
from xbus.rebuild.reports import RebuildReport, ShadowReport, SwapReport
from xbus.rebuild.run import rebuild as rebuild_service
from xbus.rebuild.run import rebuild_shadow, swap_shadow

#: Exit code of a shadow rebuild whose state differs from the live one (as `topics apply` on drift).
DIFFERS = 3


def rebuild(
    service: str = typer.Argument(..., help="Service name, or module:attribute of a Service."),
    shadow: bool = typer.Option(
        False, "--shadow", help="Rebuild into a shadow schema under a new group while the service runs; compare."
    ),
    swap: bool = typer.Option(
        False, "--swap", help="Put the shadow in place of the live state (the service must be stopped)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per report."),
) -> None:
    """Rebuild a service's state from its topics and report checksums.

    Without options: the service must be stopped; its schema is emptied and its topics read again
    from the start up to their current end. --shadow builds a copy beside the running service and
    reports the difference (exit 3 when it differs); --swap then puts the copy in place.
    """
    [chosen] = resolve_services([service], everything=False)

    async def go() -> bool:
        endpoints = await connect(settings())
        with _progress(chosen.name, quiet=as_json) as progress:
            if not shadow and not swap:
                _show_rebuild(await rebuild_service(chosen, settings(), endpoints, progress), as_json)
                return True
            same = True
            if shadow:
                report = await rebuild_shadow(chosen, settings(), endpoints, progress)
                _show_shadow(report, as_json)
                same = report.identical
            if swap:
                _show_swap(await swap_shadow(chosen, settings(), endpoints, progress), as_json)
                return True
            return same

    if not run(go()):
        raise typer.Exit(DIFFERS)


@contextmanager
def _progress(service: str, *, quiet: bool) -> Iterator[ProgressCallback | None]:
    """A progress bar on a terminal; otherwise None, and the rebuild logs its progress."""
    if quiet or not err.is_terminal:
        yield None
        return
    bar = Progress(
        TextColumn(f"rebuilding {escape(service)}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
    )
    with bar:
        task = bar.add_task("rebuild", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _show_rebuild(report: RebuildReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_json()), flush=True)
        return
    _summary(report, "rebuilt")
    out.print(f"state checksum {report.checksum}")
    out.print(
        f"follow-ups: {report.marked_sent} published before the rebuild (marked sent), "
        f"{report.to_publish} never published (the relay publishes them when the service runs)"
    )


def _show_shadow(report: ShadowReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_json()), flush=True)
        return
    shadow = report.shadow
    _summary(shadow, "shadow rebuilt")
    table = Table(title=f"live {report.live_schema} vs shadow {shadow.schema}")
    for column in ("table", "live rows", "shadow rows", "only in live", "only in shadow", ""):
        table.add_column(column)
    for diff in report.diff:
        table.add_row(
            diff.table,
            _count(diff.live_rows),
            _count(diff.shadow_rows),
            str(diff.only_live),
            str(diff.only_shadow),
            "[green]identical[/green]" if diff.identical else "[red]differs[/red]",
        )
    out.print(table)
    for diff in report.diff:
        for side, rows in (("only in live", diff.live_examples), ("only in shadow", diff.shadow_examples)):
            for row in rows:
                out.print(f"  {diff.table} {side}: {escape(row)}", highlight=False)
    out.print(
        "the diff compares the shadow as of its target offsets with the live state now "
        "(the live service may have moved past the target meanwhile)"
    )
    if report.identical:
        out.print(f"[green]identical[/green]: checksum {report.live_checksum}")
    else:
        differing = sum(not diff.identical for diff in report.diff)
        out.print(
            f"[red]differs[/red] in {differing} table(s): live {report.live_checksum}, shadow {shadow.checksum}; "
            f"`xbus rebuild {shadow.service} --swap` puts the shadow in place (the service stopped)"
        )


def _show_swap(report: SwapReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_json()), flush=True)
        return
    moved = sum(report.offsets_before.get(tp) != offset for tp, offset in report.offsets_after.items())
    out.print(
        f"swapped: schema {report.schema} now holds the shadow's state (checksum {report.checksum}), "
        f"read up to the log end ({report.caught_up} more events); the previous state is schema {report.backup_schema}"
    )
    out.print(f"group {report.group}: offsets set to the shadow's ({moved} partition(s) moved)")
    out.print(
        f"follow-ups: {report.marked_sent} already published by the live service (marked sent), "
        f"{report.to_publish} never published (the relay publishes them when the service starts)"
    )
    out.print(f"group {report.shadow_group} is no longer used; delete it with your Kafka tools")
    out.print("to undo, with the service stopped:")
    for step in report.undo():
        out.print(f"  {step}", highlight=False)


def _summary(report: RebuildReport, what: str) -> None:
    out.print(
        f"{report.service} {what} in schema {report.schema} (group {report.group}): {report.events} events read, "
        f"{report.applied} applied, {report.duplicates} duplicates, {report.dead_lettered} dead-lettered, "
        f"{report.parked} parked, in {report.seconds:.1f} s"
    )
    table = Table()
    for column in ("table", "rows", "checksum"):
        table.add_column(column)
    for state in report.tables:
        table.add_row(state.table, str(state.rows), state.checksum)
    out.print(table)


def _count(rows: int | None) -> str:
    return "(no table)" if rows is None else str(rows)
