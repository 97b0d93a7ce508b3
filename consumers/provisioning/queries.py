"""The tracker's read API, for `xbus status` and later the HTTP API: flows with every step's state.

Functions take a connection (or a pool) whose ``search_path`` is the tracker's schema, or any
connection and ``schema=``: the CLI opens a plain connection, a web app keeps a pool.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg

from consumers.provisioning.flows import FlowState, StepState
from consumers.runtime.unit_of_work import DbConnection
from schemas.envelope import format_time
from schemas.provisioning import FlowKind

Queryable: TypeAlias = DbConnection | asyncpg.Pool

_SCHEMA_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class StepView:
    step: str
    service: str
    state: StepState
    #: When the step last changed (the reporting event's time); None while merely expected.
    time: dt.datetime | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "service": self.service,
            "state": self.state.value,
            "time": _time(self.time),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class FlowView:
    flow_id: str
    kind: FlowKind
    entity_id: str
    #: The event type that started the flow.
    started_by: str
    state: FlowState
    started_at: dt.datetime
    completed_at: dt.datetime | None
    failed_at: dt.datetime | None
    #: When ProvisioningOverdue was sent (wall clock); the flow may have completed since.
    overdue_at: dt.datetime | None
    steps: tuple[StepView, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "flow_id": self.flow_id,
            "kind": self.kind.value,
            "entity_id": self.entity_id,
            "started_by": self.started_by,
            "state": self.state.value,
            "started_at": _time(self.started_at),
            "completed_at": _time(self.completed_at),
            "failed_at": _time(self.failed_at),
            "overdue_at": _time(self.overdue_at),
            "steps": [step.to_json() for step in self.steps],
        }


async def flows_of(db: Queryable, kind: FlowKind | str, entity_id: str, *, schema: str | None = None) -> list[FlowView]:
    """Every flow of one user (login id), operator or account, oldest first (then in arrival order)."""
    return await _flows(db, schema, "kind = $1 and entity_id = $2", [FlowKind(kind).value, entity_id])


async def _flows(db: Queryable, schema: str | None, where: str, args: list[Any]) -> list[FlowView]:
    flows_table, steps_table = _table(schema, "flows"), _table(schema, "steps")
    rows = await db.fetch(
        "select flow_id, kind, entity_id, started_by, state, started_at, completed_at, failed_at, overdue_at "
        f"from {flows_table} where {where} order by started_at, seq",
        *args,
    )
    step_rows = await db.fetch(
        f"select flow_id, step, service, state, updated_at, reason from {steps_table} "
        "where flow_id = any($1::text[]) order by flow_id, position",
        [row["flow_id"] for row in rows],
    )
    steps: dict[str, list[StepView]] = {}
    for row in step_rows:
        steps.setdefault(row["flow_id"], []).append(
            StepView(row["step"], row["service"], StepState(row["state"]), row["updated_at"], row["reason"])
        )
    return [
        FlowView(
            flow_id=row["flow_id"],
            kind=FlowKind(row["kind"]),
            entity_id=row["entity_id"],
            started_by=row["started_by"],
            state=FlowState(row["state"]),
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            failed_at=row["failed_at"],
            overdue_at=row["overdue_at"],
            steps=tuple(steps.get(row["flow_id"], ())),
        )
        for row in rows
    ]


def _table(schema: str | None, name: str) -> str:
    if schema is None:
        return name
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r} must be lower-case letters, digits and underscores")
    return f'"{schema}".{name}'


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else format_time(value)


async def oldest_open_flows(db: Queryable, *, schema: str | None = None) -> dict[FlowKind, dt.datetime]:
    """When the oldest open flow of each kind started (kinds with no open flow are left out):
    the provisioning tracker's business lag (uses the ``flows_open`` index)."""
    rows = await db.fetch(
        f"select kind, min(started_at) as started_at from {_table(schema, 'flows')} where state = 'open' group by kind"
    )
    return {FlowKind(row["kind"]): row["started_at"] for row in rows}
