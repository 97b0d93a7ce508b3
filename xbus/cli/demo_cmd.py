"""`xbus demo`: provision operators, users and trading accounts through every service; show how each flow ended."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from xbus.cli.common import err, out, run, settings
from xbus.demo import DemoOutcome, demo_scenario, run_demo
from xbus.errors import XbusError
from xbus.platform import connect

OPERATORS = typer.Option(3, min=1, max=100, help="System operators to register (every other one uses Prodigy).")
USERS = typer.Option(500, min=1, max=100_000, help="Users to create.")
ACCOUNTS = typer.Option(200, min=0, max=100_000, help="Trading accounts to open, each with 1-3 of the users.")


def demo(operators: int = OPERATORS, users: int = USERS, accounts: int = ACCOUNTS) -> None:
    """Run the provisioning scenario on the embedded stack (or the configured Kafka and PostgreSQL)."""
    run(_demo(operators, users, accounts))


async def _demo(operators: int, users: int, accounts: int) -> None:
    config = settings()
    endpoints = await connect(config)
    err.print(f"kafka {endpoints.kafka_bootstrap}, postgres {endpoints.database_url}")
    scenario = demo_scenario(operators, users, accounts)
    with Progress(
        TextColumn("flows ended"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        task = bar.add_task("flows", total=len(scenario.flow_ids()))
        outcome = await run_demo(config, endpoints, scenario, lambda done, total: bar.update(task, completed=done))
    out.print(_summary(outcome))
    total = sum(outcome.flows.values())
    completed = sum(n for (_, state), n in outcome.flows.items() if state == "completed")
    dead = sum(outcome.dead_letters.values())
    out.print(
        f"{completed} of {total} flows completed in {outcome.seconds:.1f}s; {len(outcome.scenario.manual_actions)} "
        f"manual Prodigy steps answered; {dead} dead letters."
    )
    user = outcome.scenario.users[0].event.aggregate_id
    account = outcome.scenario.accounts[0].event.aggregate_id if outcome.scenario.accounts else None
    out.print(f"Try: xbus status user {user}" + (f"   or: xbus status account {account}" if account else ""))
    if completed != total or dead:
        raise XbusError("the demo did not provision every flow cleanly: see the table above and `xbus dlq list`")


def _summary(outcome: DemoOutcome) -> Table:
    table = Table("flow", "completed", "failed", "open", title="Provisioning flows, as the tracker saw them end")
    for kind in sorted({kind for kind, _ in outcome.flows}):
        counts = [str(outcome.flows.get((kind, state), 0)) for state in ("completed", "failed", "open")]
        table.add_row(kind, *counts)
    return table
