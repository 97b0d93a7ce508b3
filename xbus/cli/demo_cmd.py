"""`xbus demo`: provision operators, users, trading accounts and an exchange through every service, then
trade on it; show how each flow and each order ended."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from infrastructure.endpoints import connect
from infrastructure.errors import XbusError
from xbus.cli.common import err, out, run, settings
from xbus.demo import DemoOutcome, demo_scenario, run_demo

OPERATORS = typer.Option(3, min=1, max=100, help="System operators to register (every other one uses Prodigy).")
USERS = typer.Option(500, min=1, max=100_000, help="Users to create.")
ACCOUNTS = typer.Option(200, min=0, max=100_000, help="Trading accounts to open, each with 1-3 of the users.")
ORDERS = typer.Option(1000, min=0, max=1_000_000, help="Orders to place on XSX, spread over the accounts.")


def demo(operators: int = OPERATORS, users: int = USERS, accounts: int = ACCOUNTS, orders: int = ORDERS) -> None:
    """Run the demo scenario on the embedded stack (or the configured Kafka and PostgreSQL)."""
    run(_demo(operators, users, accounts, orders))


async def _demo(operators: int, users: int, accounts: int, orders: int) -> None:
    config = settings()
    endpoints = await connect(config)
    err.print(f"kafka {endpoints.kafka_bootstrap}, postgres {endpoints.database_url}")
    scenario = demo_scenario(operators, users, accounts, orders)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        outcome = await run_demo(config, endpoints, scenario, progress)
    out.print(_summary(outcome))
    out.print(_orders(outcome))
    total = sum(outcome.flows.values())
    completed = sum(n for (_, state), n in outcome.flows.items() if state == "completed")
    dead = sum(outcome.dead_letters.values())
    agree = outcome.oms_books == outcome.registry_books
    out.print(
        f"{completed} of {total} flows completed and {outcome.orders_over} of "
        f"{len(scenario.trading.orders)} orders over in {outcome.seconds:.1f}s; "
        f"{len(scenario.provisioning.manual_actions)} manual Prodigy steps answered; {dead} dead letters; "
        f"the OMS's books {'equal' if agree else 'DIFFER FROM'} the registry's."
    )
    user = scenario.provisioning.users[0].event.aggregate_id
    account = scenario.provisioning.accounts[0].event.aggregate_id if scenario.provisioning.accounts else None
    out.print(
        f"Try: xbus status user {user}"
        + (f"   or: xbus status account {account}" if account else "")
        + f"   or: xbus status exchange {scenario.exchange.event.aggregate_id}"
    )
    placed = len(scenario.trading.orders)
    if completed != total or dead or outcome.orders_over != placed or not agree:
        raise XbusError("the demo did not run cleanly: see the tables above and `xbus dlq list`")


def _orders(outcome: DemoOutcome) -> Table:
    table = Table("how the order ended", "orders", title="Orders on XSX, as the OMS saw them end")
    for how, count in sorted(outcome.orders.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(how, str(count))
    return table


def _summary(outcome: DemoOutcome) -> Table:
    table = Table("flow", "completed", "failed", "open", title="Provisioning flows, as the tracker saw them end")
    for kind in sorted({kind for kind, _ in outcome.flows}):
        counts = [str(outcome.flows.get((kind, state), 0)) for state in ("completed", "failed", "open")]
        table.add_row(kind, *counts)
    return table
