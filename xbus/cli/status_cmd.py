"""`xbus status user|operator|account ID [--json]`: what the provisioning tracker knows of one entity.

It reads the tracker's tables directly (consumers/provisioning/queries.py), so it answers for
flows the tracker has applied, whether or not the tracker is running now.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum

import asyncpg
import typer
from rich.markup import escape
from rich.table import Table

from consumers.provisioning.queries import FlowView, flows_of
from consumers.provisioning.service import SERVICE
from infrastructure.endpoints import connect_database
from infrastructure.errors import XbusError
from xbus.cli.common import out, run, settings

STATE_STYLE = {
    "done": "green",
    "completed": "green",
    "waiting": "yellow",
    "manual": "yellow",
    "open": "cyan",
    "expected": "dim",
    "failed": "red",
}


class EntityKind(StrEnum):
    USER = "user"
    OPERATOR = "operator"
    ACCOUNT = "account"
    EXCHANGE = "exchange"


class NoFlows(XbusError):
    """The tracker has no flow for the entity (or has never run against this database)."""


def status(
    kind: EntityKind = typer.Argument(
        ...,
        metavar="KIND",
        help="user (login id), operator (operator id), account (OWNER:ACCOUNT) or exchange (exchange code).",
    ),
    entity_id: str = typer.Argument(
        ..., metavar="ID", help="The login, operator or trading account id, or the exchange code."
    ),
    as_json: bool = typer.Option(False, "--json", help="The flows as one JSON document."),
) -> None:
    """Every provisioning flow of a user, operator or account, with each step's state, time and reason."""
    flows = run(_flows(kind, entity_id))
    if not flows:
        raise NoFlows(f"the provisioning tracker has no flow for {kind.value} {entity_id!r}")
    if as_json:
        document = {"kind": kind.value, "entity_id": entity_id, "flows": [flow.to_json() for flow in flows]}
        print(json.dumps(document, indent=2), flush=True)
        return
    for flow in flows:
        out.print(_table(flow))


async def _flows(kind: EntityKind, entity_id: str) -> list[FlowView]:
    schema = settings().db_schema(SERVICE.name)
    connection = await asyncpg.connect(await connect_database(settings()))
    try:
        if await connection.fetchval("select to_regclass($1)", f"{schema}.flows") is None:
            raise NoFlows(
                f"schema {schema} has no flows table: the provisioning tracker has not run here yet "
                "(check XBUS_DB_SCHEMA_PREFIX, or run `xbus run provisioning`)"
            )
        return await flows_of(connection, kind.value, entity_id, schema=schema)
    finally:
        await connection.close()


def _table(flow: FlowView) -> Table:
    ended = flow.completed_at or flow.failed_at
    overdue = " [yellow](overdue)[/]" if flow.overdue_at and flow.state == "open" else ""
    title = (
        f"{escape(flow.started_by)}  flow {escape(flow.flow_id)}  {_styled(flow.state)}{overdue}  "
        f"started {_when(flow.started_at)}  "
        f"{'failed' if flow.failed_at else 'completed'} {_when(ended)}"
    )
    table = Table(title=title, title_justify="left")
    for column in ("service", "step", "state", "time", "reason"):
        table.add_column(column, no_wrap=column != "reason")
    for step in flow.steps:
        table.add_row(
            step.service,
            step.step,
            _styled(step.state),
            _when(step.time),
            escape(step.reason) if step.reason else "",
        )
    return table


def _styled(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'default')}]{state}[/]"


def _when(value: dt.datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "—"
