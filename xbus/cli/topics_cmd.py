"""`xbus topics apply | list`."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from infrastructure.endpoints import apply_catalogue, connect, load_catalogue
from infrastructure.kafka_clients import admin_client, plain_consumer
from infrastructure.topic_admin import TopicRow, list_topics
from xbus.cli.common import err, out, run, settings

app = typer.Typer(help="Create and inspect the topics of topics.yaml.", no_args_is_help=True)


@app.command()
def apply() -> None:
    """Create the topics that are missing; report drift (partitions, configs). Deletes nothing.

    Exit code 0 when the cluster matches topics.yaml, 3 when drift is reported.
    """

    async def go() -> None:
        endpoints = await connect(settings(), database=False)
        report = await apply_catalogue(settings(), endpoints.kafka_bootstrap)
        for name in report.created:
            out.print(f"[green]created[/green]  {name}")
        out.print(f"{len(report.created)} created, {len(report.existing)} already present")
        for note in report.notes:
            err.print(f"note: {note}")
        for drift in report.drift:
            err.print(f"[yellow]drift[/yellow]: {drift}")
        if report.drift:
            err.print("apply never changes existing topics: fix drift by hand (partitions cannot shrink)")
            raise typer.Exit(3)

    run(go())


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="One JSON object per line per topic (NDJSON).")) -> None:
    """The catalogue's topics with partitions and end offsets (correct on the embedded broker too)."""

    async def go() -> list[TopicRow]:
        endpoints = await connect(settings(), database=False)
        async with (
            admin_client(settings(), endpoints.kafka_bootstrap) as admin,
            plain_consumer(settings(), endpoints.kafka_bootstrap) as consumer,
        ):
            return await list_topics(admin, consumer, load_catalogue(settings()), settings().topic_prefix)

    rows = run(go())
    catalogue = {settings().topic(spec.name): spec for spec in load_catalogue(settings()).topics}
    if as_json:
        for row in rows:
            print(
                json.dumps(
                    {
                        "topic": row.name,
                        "partitions": row.partitions,
                        "events": row.events,
                        "end_offsets": row.end_offsets,
                    }
                )
            )
        return
    table = Table("topic", "kind", "owner", "partitions", "end offsets (sum)", "per partition")
    for row in rows:
        spec = catalogue[row.name]
        per_partition = (
            " ".join(str(row.end_offsets[p]) for p in sorted(row.end_offsets))
            if row.partitions
            else "[red]missing[/red]"
        )
        table.add_row(row.name, spec.kind, spec.owner, str(row.partitions), str(row.events), per_partition)
    out.print(table)
