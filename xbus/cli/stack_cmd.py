"""`xbus stack up | down | status`."""

from __future__ import annotations

import asyncio

import asyncpg
import typer
from rich.table import Table

from infrastructure.brokers import TRAITS, BrokerKind
from infrastructure.embedded.broker import broker_running
from infrastructure.embedded.postgres import postgres_running
from infrastructure.embedded.stack import EmbeddedStack, StackState
from infrastructure.endpoints import Endpoints, connect
from infrastructure.errors import XbusError
from infrastructure.kafka_clients import admin_client
from xbus.cli.common import err, out, run, settings
from xbus.lag.watch import LagWatcher

app = typer.Typer(help="Start, stop and check the embedded Kafka broker and PostgreSQL.", no_args_is_help=True)


def _stack() -> EmbeddedStack:
    return EmbeddedStack(settings().data_dir, settings().embedded_kafka_port, settings().embedded_broker)


@app.command()
def up() -> None:
    """Start the embedded stack (idempotent) and apply topics.yaml to a new broker."""
    endpoints = run(connect(settings()))
    if not (settings().embedded_kafka or settings().embedded_database):
        err.print("XBUS_KAFKA_BOOTSTRAP and XBUS_DATABASE_URL are set: nothing embedded to start")
    out.print(f"kafka     {endpoints.kafka_bootstrap}")
    out.print(f"postgres  {endpoints.database_url}")
    if not settings().embedded_kafka:
        return
    state = _stack().read_state()
    out.print(f"broker    {_broker_name(state)}")
    if state.broker_kind is BrokerKind.TANSU:
        err.print(
            "[yellow]the embedded broker is Tansu, which keeps topics, groups and offsets in memory: "
            "they do not survive a restart of the broker (`xbus stack down`, a crash); "
            "with Java 17+ and mvn, `python3 dev.py test` installs Apache Kafka[/yellow]"
        )
    else:
        err.print(f"[dim]Apache Kafka keeps its log in {settings().data_dir.resolve() / 'kafka'}[/dim]")


def _broker_name(state: StackState) -> str:
    return f"{state.broker_kind.product} {state.kafka_version}" if state.broker_kind else "-"


@app.command()
def down(
    force: bool = typer.Option(False, "--force", help="Stop Tansu even though records it holds are not consumed yet."),
) -> None:
    """Stop the embedded stack. PostgreSQL and Apache Kafka data stay on disk; Tansu's topics are gone.

    Tansu holding records that a consumer group has not consumed yet is not stopped without
    --force: they exist nowhere else, and would be lost without a trace.
    """
    state = _stack().read_state()
    kind = state.broker_kind
    running = broker_running(state.kafka_pid, state.kafka_port)
    if kind is not None and not TRAITS[kind].durable and not force and running:
        groups = run(_lag_by_group(state))
        if waiting := {group: lag for group, lag in groups.items() if lag}:
            total = sum(waiting.values())
            by_group = ", ".join(f"{group} {lag:,}" for group, lag in sorted(waiting.items()))
            raise XbusError(
                f"{kind.product} keeps its records in memory only, and {total:,} of them are not consumed yet "
                f"({by_group}): stopping it throws them away. Let the services catch up (`xbus lag`), "
                "or stop it anyway with `xbus stack down --force`"
            )
    stopped = _stack().down()
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


async def _lag_by_group(state: StackState) -> dict[str, int]:
    """Records not consumed yet, per consumer group of the embedded broker (every prefix's)."""
    database_url = settings().database_url or state.database_url or ""
    endpoints = Endpoints(state.kafka_bootstrap or "", database_url, state.broker_kind or BrokerKind.TANSU)
    everything = settings().model_copy(update={"topic_prefix": "", "group_prefix": ""})
    async with LagWatcher(everything, endpoints) as watcher:
        report = await watcher.report()
    return {group.group: group.lag for group in report.groups}


@app.command()
def status() -> None:
    """Check each part: process alive, Kafka metadata answers, `select 1` answers. Exit 1 if not healthy."""
    config = settings()
    state = _stack().read_state()
    kafka = config.kafka_bootstrap or state.kafka_bootstrap
    database = config.database_url or state.database_url
    kafka_ok, kafka_detail = run(_check_kafka(kafka))
    pg_ok, pg_detail = run(_check_postgres(database))
    table = Table("part", "what", "where", "embedded pid", "health")
    table.add_row(
        "kafka",
        _broker_name(state) if config.embedded_kafka else "external",
        kafka or "-",
        _pid(state.kafka_pid, broker_running(state.kafka_pid, state.kafka_port), config.embedded_kafka),
        kafka_detail,
    )
    table.add_row(
        "postgres",
        "PostgreSQL",
        database or "-",
        _pid(state.postgres_pid, postgres_running(state.postgres_pid), config.embedded_database),
        pg_detail,
    )
    out.print(table)
    if not (kafka_ok and pg_ok):
        raise typer.Exit(1)


def _pid(pid: int | None, alive: bool, embedded: bool) -> str:
    if not embedded:
        return "external"
    return f"{pid} ({'running' if alive else 'not running'})" if pid else "not started"


async def _check_kafka(bootstrap: str | None) -> tuple[bool, str]:
    if not bootstrap:
        return False, "[red]not started[/red]"
    try:
        async with asyncio.timeout(10):
            async with admin_client(settings(), bootstrap) as admin:
                brokers = len((await admin.describe_cluster())["brokers"])
    except Exception as error:  # any failure is the answer here: report it, do not crash
        return False, f"[red]metadata request failed: {type(error).__name__}: {error}[/red]"
    return True, f"[green]ok[/green] ({brokers} broker{'s' if brokers != 1 else ''})"


async def _check_postgres(url: str | None) -> tuple[bool, str]:
    if not url:
        return False, "[red]not started[/red]"
    try:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            await connection.fetchval("select 1")
            version = await connection.fetchval("show server_version")
        finally:
            await connection.close()
    except Exception as error:  # any failure is the answer here: report it, do not crash
        return False, f"[red]select 1 failed: {type(error).__name__}: {error}[/red]"
    return True, f"[green]ok[/green] (PostgreSQL {version})"
