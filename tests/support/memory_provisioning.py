"""An in-memory store with the protocol of the provisioning service's PostgreSQL store, for unit tests
of its rules on a FakeUnitOfWork. It keeps exactly what the rules read back; the SQL and its
constraints are proven by the real-stack tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from consumers.provisioning.flows import FlowPlan, FlowState, Report, StepState, service_of
from consumers.provisioning.store import Flow, Flows, OverdueFlow
from schemas import Envelope
from schemas.provisioning import FlowKind

_OPEN = (StepState.EXPECTED, StepState.WAITING, StepState.MANUAL)


@dataclass
class FlowRow:
    flow_id: str
    kind: FlowKind
    entity_id: str
    started_by: str
    correlation_id: str
    started_at: dt.datetime
    seq: int
    state: FlowState = FlowState.OPEN
    overdue_at: dt.datetime | None = None


@dataclass
class StepRow:
    step: str
    position: int
    service: str
    state: StepState
    updated_at: dt.datetime | None = None
    reason: str | None = None
    asked_of: str | None = None


@dataclass
class MemoryFlows(Flows):
    flows: dict[str, FlowRow] = field(default_factory=dict)
    steps: dict[str, dict[str, StepRow]] = field(default_factory=dict)
    early: list[Report] = field(default_factory=list)
    logins: dict[str, bool] = field(default_factory=dict)

    async def create_flow(self, flow_id: str, plan: FlowPlan, cause: Envelope) -> bool:
        if flow_id in self.flows:
            return False
        self.flows[flow_id] = FlowRow(
            flow_id, plan.kind, plan.entity_id, cause.type, cause.correlation_id, cause.time, len(self.flows)
        )
        manual = {m.step: m for m in plan.manual}
        self.steps[flow_id] = {
            step: StepRow(step, position, service_of(step), StepState.EXPECTED)
            if step not in manual
            else StepRow(
                step,
                position,
                service_of(step),
                StepState.MANUAL,
                cause.time,
                manual[step].instructions,
                manual[step].operator_id,
            )
            for position, step in enumerate(plan.steps)
        }
        return True

    async def flow(self, flow_id: str) -> Flow | None:
        row = self.flows.get(flow_id)
        if row is None:
            return None
        return Flow(row.flow_id, row.kind, row.entity_id, row.started_by, row.correlation_id, row.state)

    async def latest_user_flow(self, login_id: str, started_by: str) -> str | None:
        mine = [
            row
            for row in self.flows.values()
            if row.kind is FlowKind.USER and row.entity_id == login_id and row.started_by == started_by
        ]
        return max(mine, key=lambda row: (row.started_at, row.seq)).flow_id if mine else None

    async def step_state(self, flow_id: str, step: str) -> StepState | None:
        row = self.steps.get(flow_id, {}).get(step)
        return None if row is None else row.state

    async def asked_of(self, flow_id: str, step: str) -> str | None:
        row = self.steps.get(flow_id, {}).get(step)
        return None if row is None else row.asked_of

    async def mark_done(self, flow_id: str, step: str, at: dt.datetime) -> None:
        row = self.steps.get(flow_id, {}).get(step)
        if row is not None and row.state in _OPEN:
            row.state, row.updated_at, row.reason = StepState.DONE, at, None

    async def mark_waiting(self, flow_id: str, step: str, at: dt.datetime, reason: str) -> None:
        row = self.steps.get(flow_id, {}).get(step)
        if row is not None and row.state in (StepState.EXPECTED, StepState.WAITING):
            row.state, row.updated_at, row.reason = StepState.WAITING, at, reason

    async def mark_failed(self, flow_id: str, step: str, service: str, at: dt.datetime, reason: str) -> None:
        steps = self.steps.setdefault(flow_id, {})
        if step not in steps:
            steps[step] = StepRow(
                step, max((s.position + 1 for s in steps.values()), default=0), service, StepState.FAILED
            )
        steps[step].state, steps[step].updated_at, steps[step].reason = StepState.FAILED, at, reason

    async def fail_flow(self, flow_id: str, at: dt.datetime) -> bool:
        row = self.flows.get(flow_id)
        if row is None or row.state is not FlowState.OPEN:
            return False
        row.state = FlowState.FAILED
        return True

    async def complete_if_done(self, flow_id: str, at: dt.datetime) -> tuple[str, ...] | None:
        row = self.flows.get(flow_id)
        steps = sorted(self.steps.get(flow_id, {}).values(), key=lambda s: s.position)
        if row is None or row.state is not FlowState.OPEN or any(s.state is not StepState.DONE for s in steps):
            return None
        row.state = FlowState.COMPLETED
        return tuple(s.step for s in steps)

    async def keep_early(self, report: Report) -> None:
        if all(kept.event_id != report.event_id for kept in self.early):
            self.early.append(report)

    async def take_early(self, flow_id: str) -> list[Report]:
        taken = [report for report in self.early if report.flow_id == flow_id]
        self.early = [report for report in self.early if report.flow_id != flow_id]
        return taken

    async def remember_login(self, login_id: str, has_session_policy: bool, at: dt.datetime) -> None:
        self.logins[login_id] = has_session_policy

    async def has_session_policy(self, login_id: str) -> bool:
        return self.logins.get(login_id, False)

    async def mark_overdue(self, now: dt.datetime, after: dt.timedelta, limit: int = 1_000) -> list[OverdueFlow]:
        due = sorted(
            (
                row
                for row in self.flows.values()
                if row.state is FlowState.OPEN
                and row.overdue_at is None
                and row.started_at <= now - after
                and any(s.state in _OPEN for s in self.steps[row.flow_id].values())
            ),
            key=lambda row: (row.started_at, row.flow_id),
        )[:limit]
        overdue = []
        for row in due:
            row.overdue_at = now
            silent = sorted((s for s in self.steps[row.flow_id].values() if s.state in _OPEN), key=lambda s: s.position)
            overdue.append(
                OverdueFlow(
                    row.flow_id,
                    row.kind,
                    row.entity_id,
                    row.correlation_id,
                    row.started_at,
                    tuple(s.step for s in silent),
                )
            )
        return overdue
