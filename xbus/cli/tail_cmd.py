"""`xbus tail TOPIC`: print events with their envelope, like `tail` (and `tail -f`)."""

from __future__ import annotations

import contextlib
import json

import typer
from rich.markup import escape

from infrastructure.endpoints import connect
from infrastructure.kafka_clients import topic_reader
from infrastructure.reader import ReadEvent, read_topic, topic_partitions
from xbus.cli.common import out, run, settings


def tail(
    topic: str = typer.Argument(..., help="Topic name from topics.yaml (XBUS_TOPIC_PREFIX is added)."),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the oldest event kept."),
    follow: bool = typer.Option(False, "--follow", "-F", help="Keep printing new events until interrupted."),
    last: int = typer.Option(10, "--last", "-n", min=0, help="Events per partition to show before the end."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event (NDJSON)."),
) -> None:
    """Print a topic's events with their CloudEvents envelope. Reads without a consumer group."""

    async def go() -> None:
        endpoints = await connect(settings(), database=False)
        async with topic_reader(settings(), endpoints.kafka_bootstrap) as (admin, consumer):
            partitions = await topic_partitions(admin, settings().topic(topic))
            async for event in read_topic(consumer, partitions, last=None if from_beginning else last, follow=follow):
                _print(event, as_json)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how --follow ends
        run(go())


def _print(event: ReadEvent, as_json: bool) -> None:
    if as_json:
        print(json.dumps(event.to_json(), separators=(",", ":")), flush=True)
        return
    where = f"[bold]{event.topic}[/bold][{event.partition}]@{event.offset}"
    envelope = event.envelope
    if envelope is None:
        out.print(f"{where} key={escape(str(event.key))} [red]{escape(event.problem or '')}[/red]")
    else:
        out.print(
            f"{where} {envelope.time.isoformat()} [cyan]{envelope.type}[/cyan] subject={escape(envelope.subject)}"
        )
        ids = f"id={envelope.id} correlation={envelope.correlation_id} causation={envelope.causation_id}"
        out.print(f"  {ids} source={escape(envelope.source)}", style="dim")
        if event.problem:
            out.print(f"  [red]{escape(event.problem)}[/red]")
    out.print("  " + escape(json.dumps(event.data, separators=(",", ":"))), highlight=False)
