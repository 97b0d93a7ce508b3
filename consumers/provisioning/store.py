"""The tracker's state: flows, their steps, early reports and what it knows of logins.

Handlers and the overdue timer reach it through ``unit.store`` (a :class:`Flows`); the service
runs them on :class:`PostgresFlows`, over the batch's transaction, and unit tests on an
in-memory one (tests/support/memory_provisioning.py).

Every change to a flow happens under the flow's lock (``lock_flow`` in handlers.py). The tracker
reads many topics, whose partitions are applied concurrently in separate transactions: without the lock, two reports
could each see the other's step still open (and the flow would never complete), or a report
could find no flow while the flow's start, not yet committed, finds no early report (and the
report would be lost).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from consumers.provisioning.flows import OPEN_STEPS, Flow, FlowState, Report, Step, StepState
from consumers.runtime import UnitOfWork
from consumers.runtime.unit_of_work import DbConnection
from schemas.provisioning import FlowKind

#: A step is still open, for overdue reports, in these states.
OPEN_STEP_STATES = sorted(state.value for state in OPEN_STEPS)


@dataclass(frozen=True)
class OverdueFlow:
    flow_id: str
    kind: FlowKind
    entity_id: str
    correlation_id: str
    started_at: dt.datetime
    silent_steps: tuple[str, ...]


class Flows(Protocol):
    """Each method is at most one statement on PostgreSQL: the tracker handles every record of its
    input, and on a backlog its time is its statements, a round trip each
    (tests/integration/test_provisioning_statements.py counts them)."""

    async def start(self, flow: Flow) -> list[Report] | None:
        """Insert ``flow`` as it starts (no report applied yet) with its steps, and take the reports
        kept for it, in arrival order; None, and nothing changed, if a flow of that id exists already."""

    async def flow(self, flow_id: str) -> Flow | None:
        """The flow of that id with its steps, or None."""

    async def flow_or_keep(self, report: Report) -> Flow | None:
        """The flow ``report`` is about, with its steps; None when the tracker does not know it (yet),
        and then ``report`` is kept for it (a report comes once: a second copy is dropped)."""

    async def save(self, before: Flow, after: Flow, at: dt.datetime) -> None:
        """Write what changed from ``before`` (as read or started) to ``after``: its changed steps,
        and its state, completed or failed at ``at``. Nothing, when nothing changed."""

    async def latest_user_flow(self, login_id: str, started_by: str) -> str | None:
        """The id of the login's latest user flow started by an event of type ``started_by``."""

    async def remember_login(self, login_id: str, has_session_policy: bool, at: dt.datetime) -> None:
        """Whether the login has a session policy, as its UserCreated or UserUpdated said."""

    async def has_session_policy(self, login_id: str) -> bool:
        """What UserCreated and UserUpdated said; a login never seen has none."""

    async def mark_overdue(self, now: dt.datetime, after: dt.timedelta, limit: int = 1_000) -> list[OverdueFlow]:
        """Open flows started more than ``after`` before ``now`` with open steps and not reported
        overdue yet: marked overdue at ``now``, and returned with their open steps."""


#: What the handlers are given.
FlowsUnit = UnitOfWork[Flows]

#: A flow (``$1``) and its steps, a row each in their order (one row of nulls for a flow without
#: steps); no row when there is no such flow.
_FLOW_AND_STEPS = """
select f.flow_id, f.kind, f.entity_id, f.started_by, f.correlation_id, f.started_at, f.state,
       s.step, s.position, s.service, s.state as step_state, s.updated_at, s.reason, s.asked_of
from found f left join steps s on s.flow_id = f.flow_id
order by s.position
"""
_FOUND = "found as (select * from flows where flow_id = $1)"


class PostgresFlows(Flows):
    def __init__(self, connection: DbConnection) -> None:
        self._db = connection

    async def start(self, flow: Flow) -> list[Report] | None:
        rows = await self._db.fetch(
            _start_statement(len(flow.steps)),
            flow.flow_id,
            flow.kind.value,
            flow.entity_id,
            flow.started_by,
            flow.correlation_id,
            flow.started_at,
            *_step_values(flow.steps),
        )
        if not rows:
            return None
        return [
            Report(
                flow_id=flow.flow_id,
                event_id=row["event_id"],
                event_type=row["event_type"],
                outcome=StepState(row["outcome"]),
                time=row["reported_at"],
                step=row["step"],
                service=row["service"],
                reason=row["reason"],
            )
            for row in rows
            if row["seq"] is not None
        ]

    async def flow(self, flow_id: str) -> Flow | None:
        return _flow_of(await self._db.fetch(f"with {_FOUND} {_FLOW_AND_STEPS}", flow_id))

    async def flow_or_keep(self, report: Report) -> Flow | None:
        rows = await self._db.fetch(
            f"""
            with {_FOUND}, kept as (
                insert into early_reports (flow_id, event_id, event_type, outcome, step, service, reason, reported_at)
                select $1, $2, $3, $4, $5, $6, $7, $8::timestamptz where not exists (select from found)
                on conflict (event_id) do nothing
            )
            {_FLOW_AND_STEPS}
            """,
            report.flow_id,
            report.event_id,
            report.event_type,
            report.outcome.value,
            report.step,
            report.service,
            report.reason,
            report.time,
        )
        return _flow_of(rows)

    async def save(self, before: Flow, after: Flow, at: dt.datetime) -> None:
        steps = after.changed_steps(before)
        ended = (after.state.value, at) if after.state is not before.state else ()
        if steps or ended:
            statement = _save_statement(len(steps), bool(ended))
            await self._db.execute(statement, after.flow_id, *ended, *_step_values(steps))

    async def latest_user_flow(self, login_id: str, started_by: str) -> str | None:
        return await self._db.fetchval(
            "select flow_id from flows where kind = 'user' and entity_id = $1 and started_by = $2 "
            "order by started_at desc, seq desc limit 1",
            login_id,
            started_by,
        )

    async def remember_login(self, login_id: str, has_session_policy: bool, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into logins (login_id, has_session_policy, updated_at) values ($1, $2, $3)
            on conflict (login_id) do update set has_session_policy = $2, updated_at = $3
            """,
            login_id,
            has_session_policy,
            at,
        )

    async def has_session_policy(self, login_id: str) -> bool:
        return bool(await self._db.fetchval("select has_session_policy from logins where login_id = $1", login_id))

    async def mark_overdue(self, now: dt.datetime, after: dt.timedelta, limit: int = 1_000) -> list[OverdueFlow]:
        rows = await self._db.fetch(
            """
            with due as (
                select flow_id from flows
                where state = 'open' and overdue_at is null and started_at <= $1::timestamptz - $2::interval
                  and exists (select 1 from steps where steps.flow_id = flows.flow_id and steps.state = any($3::text[]))
                order by started_at
                limit $4
                for update skip locked
            )
            update flows set overdue_at = $1 from due where flows.flow_id = due.flow_id
            returning flows.flow_id, flows.kind, flows.entity_id, flows.correlation_id, flows.started_at,
                array(select step from steps where steps.flow_id = flows.flow_id and steps.state = any($3::text[])
                      order by position) as silent
            """,
            now,
            after,
            OPEN_STEP_STATES,
            limit,
        )
        return [
            OverdueFlow(
                row["flow_id"],
                FlowKind(row["kind"]),
                row["entity_id"],
                row["correlation_id"],
                row["started_at"],
                tuple(row["silent"]),
            )
            for row in sorted(rows, key=lambda row: (row["started_at"], row["flow_id"]))
        ]


#: The columns of a step, and the casts its parameters need where no column gives their type.
_STEP_COLUMNS = (
    ("step", ""),
    ("position", "::int"),
    ("service", ""),
    ("state", ""),
    ("updated_at", "::timestamptz"),
    ("reason", ""),
    ("asked_of", ""),
)
_STEP_NAMES = ", ".join(name for name, _ in _STEP_COLUMNS)


def _step_values(steps: tuple[Step, ...]) -> list[object]:
    """The parameters of ``steps``' rows (:func:`_step_rows`), one step after the other."""
    return [
        value
        for step in steps
        for value in (
            step.name,
            step.position,
            step.service,
            step.state.value,
            step.updated_at,
            step.reason,
            step.asked_of,
        )
    ]


def _step_rows(count: int, first: int, lead: str = "") -> str:
    """``count`` rows of parameters for a step's columns, from ``$first`` on, each after ``lead``. A
    statement takes its steps as rows of parameters, not as arrays to ``unnest``: with arrays, the
    same statement took about 60 µs more (encoding them, and planning a set of unknown size)."""
    size = len(_STEP_COLUMNS)
    return ", ".join(
        f"({lead}" + ", ".join(f"${first + row * size + n}{cast}" for n, (_, cast) in enumerate(_STEP_COLUMNS)) + ")"
        for row in range(count)
    )


@functools.cache
def _start_statement(steps: int) -> str:
    """Insert a flow ($1-$6) and its ``steps`` steps (from $7), and take its early reports: a row
    each, in arrival order, or one row of nulls when there are none; no row if the flow existed."""
    insert_steps = (
        f"""
        , new_steps as (
            insert into steps (flow_id, {_STEP_NAMES})
            select flow.flow_id, s.* from flow, (values {_step_rows(steps, 7)}) as s
        )"""
        if steps
        else ""
    )
    return f"""
        with flow as (
            insert into flows (flow_id, kind, entity_id, started_by, correlation_id, started_at)
            values ($1, $2, $3, $4, $5, $6) on conflict (flow_id) do nothing
            returning flow_id
        ){insert_steps}, early as (
            delete from early_reports where flow_id = (select flow_id from flow)
            returning seq, event_id, event_type, outcome, step, service, reason, reported_at
        )
        select early.* from flow left join early on true order by early.seq
        """


@functools.cache
def _save_statement(steps: int, ended: bool) -> str:
    """Write ``steps`` steps of flow $1, inserted or updated, from $2 on; or, when the flow ``ended``,
    its state $2 and the time $3 it completed or failed, and its steps from $4 on."""
    end_flow = """
        update flows set state = $2,
            completed_at = case when $2 = 'completed' then $3::timestamptz end,
            failed_at = case when $2 = 'failed' then $3::timestamptz end
        where flow_id = $1
        """
    if not steps:
        return end_flow
    write_steps = f"""
        insert into steps (flow_id, {_STEP_NAMES}) values {_step_rows(steps, 4 if ended else 2, lead="$1, ")}
        on conflict (flow_id, step) do update
            set state = excluded.state, updated_at = excluded.updated_at, reason = excluded.reason
        """
    return f"with written as ({write_steps}) {end_flow}" if ended else write_steps


def _flow_of(rows: list[asyncpg.Record]) -> Flow | None:
    """The flow of :data:`_FLOW_AND_STEPS`' rows."""
    if not rows:
        return None
    first = rows[0]
    return Flow(
        first["flow_id"],
        FlowKind(first["kind"]),
        first["entity_id"],
        first["started_by"],
        first["correlation_id"],
        first["started_at"],
        FlowState(first["state"]),
        tuple(
            Step(
                row["step"],
                row["position"],
                row["service"],
                StepState(row["step_state"]),
                row["updated_at"],
                row["reason"],
                row["asked_of"],
            )
            for row in rows
            if row["step"] is not None
        ),
    )
