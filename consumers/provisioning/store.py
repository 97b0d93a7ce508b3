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
from dataclasses import dataclass
from typing import Protocol

from consumers.provisioning.flows import FlowPlan, FlowState, Report, StepState, service_of
from consumers.runtime import UnitOfWork
from consumers.runtime.unit_of_work import DbConnection
from schemas import Envelope
from schemas.provisioning import FlowKind

#: A step is still open, for completion and overdue reports, in these states.
OPEN_STEP_STATES = [StepState.EXPECTED.value, StepState.WAITING.value, StepState.MANUAL.value]


@dataclass(frozen=True)
class Flow:
    flow_id: str
    kind: FlowKind
    entity_id: str
    started_by: str
    correlation_id: str
    state: FlowState


@dataclass(frozen=True)
class OverdueFlow:
    flow_id: str
    kind: FlowKind
    entity_id: str
    correlation_id: str
    started_at: dt.datetime
    silent_steps: tuple[str, ...]


class Flows(Protocol):
    async def create_flow(self, flow_id: str, plan: FlowPlan, cause: Envelope) -> bool:
        """Insert the flow (started by ``cause``) and its expected steps; False if a flow of that id
        exists already."""

    async def flow(self, flow_id: str) -> Flow | None:
        """The flow of that id, or None."""

    async def latest_user_flow(self, login_id: str, started_by: str) -> str | None:
        """The id of the login's latest user flow started by an event of type ``started_by``."""

    async def step_state(self, flow_id: str, step: str) -> StepState | None:
        """The step's state in the flow, or None when the flow does not expect it."""

    async def asked_of(self, flow_id: str, step: str) -> str | None:
        """The operator a manual step of the flow was asked of (its ``ManualActionRequired``); None
        for a step a service takes, or one the flow does not expect."""

    async def mark_done(self, flow_id: str, step: str, at: dt.datetime) -> None:
        """An open step is done; a waiting reason is cleared. A failed step stays failed."""

    async def mark_waiting(self, flow_id: str, step: str, at: dt.datetime, reason: str) -> None:
        """An expected or waiting step waits, with the reason."""

    async def mark_failed(self, flow_id: str, step: str, service: str, at: dt.datetime, reason: str) -> None:
        """The step is refused; one the flow did not expect is added, so that the refusal is shown."""

    async def fail_flow(self, flow_id: str, at: dt.datetime) -> bool:
        """True if the flow was open (and is failed now): its failure is announced once."""

    async def complete_if_done(self, flow_id: str, at: dt.datetime) -> tuple[str, ...] | None:
        """Complete an open flow whose steps are all done; its steps, or None if it is not complete now."""

    async def keep_early(self, report: Report) -> None:
        """Keep a report whose flow has not started (yet): a report comes once, so a second copy is dropped."""

    async def take_early(self, flow_id: str) -> list[Report]:
        """The reports kept for ``flow_id``, in arrival order, removed from the table."""

    async def remember_login(self, login_id: str, has_session_policy: bool, at: dt.datetime) -> None:
        """Whether the login has a session policy, as its UserCreated or UserUpdated said."""

    async def has_session_policy(self, login_id: str) -> bool:
        """What UserCreated and UserUpdated said; a login never seen has none."""

    async def mark_overdue(self, now: dt.datetime, after: dt.timedelta, limit: int = 1_000) -> list[OverdueFlow]:
        """Open flows started more than ``after`` before ``now`` with open steps and not reported
        overdue yet: marked overdue at ``now``, and returned with their open steps."""


#: What the handlers are given.
FlowsUnit = UnitOfWork[Flows]


class PostgresFlows(Flows):
    def __init__(self, connection: DbConnection) -> None:
        self._db = connection

    async def create_flow(self, flow_id: str, plan: FlowPlan, cause: Envelope) -> bool:
        inserted = await self._db.execute(
            """
            insert into flows (flow_id, kind, entity_id, started_by, correlation_id, started_at)
            values ($1, $2, $3, $4, $5, $6) on conflict (flow_id) do nothing
            """,
            flow_id,
            plan.kind.value,
            plan.entity_id,
            cause.type,
            cause.correlation_id,
            cause.time,
        )
        if inserted == "INSERT 0 0":
            return False
        manual = {m.step: m for m in plan.manual}
        for position, step in enumerate(plan.steps):
            asked = manual.get(step)
            state = StepState.EXPECTED if asked is None else StepState.MANUAL
            await self._db.execute(
                "insert into steps (flow_id, step, position, service, state, updated_at, reason, asked_of) "
                "values ($1, $2, $3, $4, $5, $6, $7, $8)",
                flow_id,
                step,
                position,
                service_of(step),
                state.value,
                None if asked is None else cause.time,
                None if asked is None else asked.instructions,
                None if asked is None else asked.operator_id,
            )
        return True

    async def flow(self, flow_id: str) -> Flow | None:
        row = await self._db.fetchrow(
            "select flow_id, kind, entity_id, started_by, correlation_id, state from flows where flow_id = $1", flow_id
        )
        if row is None:
            return None
        return Flow(
            row["flow_id"],
            FlowKind(row["kind"]),
            row["entity_id"],
            row["started_by"],
            row["correlation_id"],
            FlowState(row["state"]),
        )

    async def latest_user_flow(self, login_id: str, started_by: str) -> str | None:
        return await self._db.fetchval(
            "select flow_id from flows where kind = 'user' and entity_id = $1 and started_by = $2 "
            "order by started_at desc, seq desc limit 1",
            login_id,
            started_by,
        )

    async def step_state(self, flow_id: str, step: str) -> StepState | None:
        state = await self._db.fetchval("select state from steps where flow_id = $1 and step = $2", flow_id, step)
        return None if state is None else StepState(state)

    async def asked_of(self, flow_id: str, step: str) -> str | None:
        return await self._db.fetchval("select asked_of from steps where flow_id = $1 and step = $2", flow_id, step)

    async def mark_done(self, flow_id: str, step: str, at: dt.datetime) -> None:
        await self._db.execute(
            "update steps set state = 'done', updated_at = $3, reason = null "
            "where flow_id = $1 and step = $2 and state = any($4::text[])",
            flow_id,
            step,
            at,
            OPEN_STEP_STATES,
        )

    async def mark_waiting(self, flow_id: str, step: str, at: dt.datetime, reason: str) -> None:
        await self._db.execute(
            "update steps set state = 'waiting', updated_at = $3, reason = $4 "
            "where flow_id = $1 and step = $2 and state in ('expected', 'waiting')",
            flow_id,
            step,
            at,
            reason,
        )

    async def mark_failed(self, flow_id: str, step: str, service: str, at: dt.datetime, reason: str) -> None:
        await self._db.execute(
            """
            insert into steps (flow_id, step, position, service, state, updated_at, reason)
            values ($1, $2, (select coalesce(max(position) + 1, 0) from steps where flow_id = $1), $3, 'failed', $4, $5)
            on conflict (flow_id, step) do update set state = 'failed', updated_at = $4, reason = $5
            """,
            flow_id,
            step,
            service,
            at,
            reason,
        )

    async def fail_flow(self, flow_id: str, at: dt.datetime) -> bool:
        changed = await self._db.execute(
            "update flows set state = 'failed', failed_at = $2 where flow_id = $1 and state = 'open'", flow_id, at
        )
        return changed == "UPDATE 1"

    async def complete_if_done(self, flow_id: str, at: dt.datetime) -> tuple[str, ...] | None:
        changed = await self._db.execute(
            """
            update flows set state = 'completed', completed_at = $2
            where flow_id = $1 and state = 'open'
              and not exists (select 1 from steps where steps.flow_id = $1 and steps.state <> 'done')
            """,
            flow_id,
            at,
        )
        if changed != "UPDATE 1":
            return None
        rows = await self._db.fetch("select step from steps where flow_id = $1 order by position", flow_id)
        return tuple(row["step"] for row in rows)

    async def keep_early(self, report: Report) -> None:
        await self._db.execute(
            """
            insert into early_reports (flow_id, event_id, event_type, outcome, step, service, reason, reported_at)
            values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (event_id) do nothing
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

    async def take_early(self, flow_id: str) -> list[Report]:
        rows = await self._db.fetch(
            "delete from early_reports where flow_id = $1 "
            "returning seq, event_id, event_type, outcome, step, service, reason, reported_at",
            flow_id,
        )
        return [
            Report(
                flow_id=flow_id,
                event_id=row["event_id"],
                event_type=row["event_type"],
                outcome=StepState(row["outcome"]),
                time=row["reported_at"],
                step=row["step"],
                service=row["service"],
                reason=row["reason"],
            )
            for row in sorted(rows, key=lambda row: row["seq"])
        ]

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
