"""`xbus publish TYPE --data JSON|@file` and `xbus publish --file events.ndjson`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from infrastructure.catalogue import Catalogue
from infrastructure.endpoints import load_catalogue
from infrastructure.errors import XbusError
from producers import Outgoing, Published, open_publisher
from producers.incoming import Fault, InvalidEvent, loads_strict, parse_event_document, parse_event_line
from xbus.cli.common import err, out, run, settings

BATCH_LINES = 2_000


def publish(
    event_type: str | None = typer.Argument(None, metavar="TYPE", help="Event type, e.g. xosp.user.created.v1."),
    data: str | None = typer.Option(None, "--data", "-d", help="The event's fields as JSON, or @path to a JSON file."),
    file: Path | None = typer.Option(
        None, "--file", "-f", help='NDJSON: one {"type", "data", ...} per line.', exists=True, dir_okay=False
    ),
    correlation_id: str | None = typer.Option(None, "--correlation-id", help="Join an existing flow."),
    causation_id: str | None = typer.Option(None, "--causation-id", help="The event that caused this one."),
) -> None:
    """Publish one event, or every line of an NDJSON file (bad lines reported, good lines published)."""
    if file is not None:
        if event_type or data:
            raise XbusError("give either TYPE --data or --file, not both")
        run(_publish_file(file))
        return
    if not event_type or data is None:
        raise XbusError("give TYPE and --data JSON (or --data @file.json), or --file events.ndjson")
    catalogue = load_catalogue(settings())
    try:
        document = {"type": event_type, "data": _load_data(data)}
        document |= {"correlationid": correlation_id, "causationid": causation_id}
        outgoing = parse_event_document(document, accepted=catalogue.input_types())
    except InvalidEvent as error:
        raise XbusError(str(error)) from None
    result = run(_publish_one(outgoing, catalogue))
    print(json.dumps(result.__dict__))


def _load_data(data: str) -> object:
    try:
        text = Path(data[1:]).read_bytes().decode() if data.startswith("@") else data
        return loads_strict(text)
    except UnicodeDecodeError as error:
        raise XbusError(f"--data {data}: not UTF-8: byte 0x{error.object[error.start]:02x} at {error.start}") from None
    except json.JSONDecodeError as error:
        raise XbusError(f"--data is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except ValueError as error:
        raise XbusError(f"--data is not JSON this bus reads: {error}") from None


async def _publish_one(outgoing: Outgoing, catalogue: Catalogue) -> Published:
    async with open_publisher(settings(), catalogue) as publisher:
        return await publisher.publish(
            outgoing.event, correlation_id=outgoing.correlation_id, causation_id=outgoing.causation_id
        )


@dataclass
class _Tally:
    published: int = 0
    failed: int = 0


async def _publish_file(path: Path) -> None:
    with path.open("rb") as handle:
        total_lines = sum(1 for line in handle if line.strip())
    catalogue = load_catalogue(settings())
    accepted = catalogue.input_types()
    tally = _Tally()
    progress = Progress(
        TextColumn("publishing {task.fields[name]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
    )
    async with open_publisher(settings(), catalogue) as publisher:
        with progress:
            task = progress.add_task("publish", total=total_lines, name=path.name)
            for chunk in _chunks(path):
                good: list[tuple[int, Outgoing]] = []
                for number, line in chunk:
                    try:
                        good.append((number, parse_event_line(_utf8(line), accepted=accepted)))
                    except InvalidEvent as error:
                        _report(progress, tally, number, str(error))
                results = await publisher.publish_many([outgoing for _, outgoing in good])
                for (number, _), result in zip(good, results, strict=True):
                    if isinstance(result, Published):
                        tally.published += 1
                    else:
                        _report(progress, tally, number, f"{result.event_type}: broker refused it: {result.error}")
                progress.advance(task, len(chunk))
    out.print(
        f"published {tally.published}, failed {tally.failed}, of {tally.published + tally.failed} event lines in {path}"
    )
    if tally.failed:
        raise typer.Exit(1)


def _report(progress: Progress, tally: _Tally, number: int, message: str) -> None:
    tally.failed += 1
    progress.console.print(f"[red]line {number}[/red]: {message}", highlight=False)


def _utf8(line: bytes) -> str:
    """The line as text; invalid UTF-8 is refused with where it is, never replaced: a login id
    with U+FFFD in it is not the login the upstream system meant."""
    try:
        return line.decode()
    except UnicodeDecodeError as error:
        byte = error.object[error.start]
        raise InvalidEvent(Fault("", f"not UTF-8: byte 0x{byte:02x} at column {error.start + 1}")) from None


def _chunks(path: Path) -> Iterator[list[tuple[int, bytes]]]:
    """Non-blank lines with their 1-based numbers, in chunks (blank lines are not events)."""
    chunk: list[tuple[int, bytes]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                chunk.append((number, line))
            if len(chunk) >= BATCH_LINES:
                yield chunk
                chunk = []
    if chunk:
        yield chunk
