"""An in-memory store with the protocol of the provisioning service's PostgreSQL store, for unit tests
of its rules on a FakeUnitOfWork. It keeps exactly what the rules read back; the SQL and its
constraints are proven by the real-stack tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from consumers.provisioning.flows import Flow, FlowState, Report, Step, StepState
from consumers.provisioning.store import Flows, OverdueFlow
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

    async def start(self, flow: Flow) -> list[Report] | None:
        if flow.flow_id in self.flows:
            return None
        self.flows[flow.flow_id] = FlowRow(
            flow.flow_id,
            flow.kind,
            flow.entity_id,
            flow.started_by,
            flow.correlation_id,
            flow.started_at,
            len(self.flows),
            flow.state,
        )
        self.steps[flow.flow_id] = {step.name: _row(step) for step in flow.steps}
        taken = [report for report in self.early if report.flow_id == flow.flow_id]
        self.early = [report for report in self.early if report.flow_id != flow.flow_id]
        return taken

    async def flow(self, flow_id: str) -> Flow | None:
        row = self.flows.get(flow_id)
        if row is None:
            return None
        steps = sorted(self.steps[flow_id].values(), key=lambda s: s.position)
        return Flow(
            row.flow_id,
            row.kind,
            row.entity_id,
            row.started_by,
            row.correlation_id,
            row.started_at,
            row.state,
            tuple(Step(s.step, s.position, s.service, s.state, s.updated_at, s.reason, s.asked_of) for s in steps),
        )

    async def flow_or_keep(self, report: Report) -> Flow | None:
        flow = await self.flow(report.flow_id)
        if flow is None and all(kept.event_id != report.event_id for kept in self.early):
            self.early.append(report)
        return flow

    async def save(self, before: Flow, after: Flow, at: dt.datetime) -> None:
        steps = self.steps[after.flow_id]
        for step in after.changed_steps(before):
            row = steps.setdefault(step.name, _row(step))  # a row changes in place, as in a table
            row.state, row.updated_at, row.reason = step.state, step.updated_at, step.reason
        self.flows[after.flow_id].state = after.state

    async def latest_user_flow(self, login_id: str, started_by: str) -> str | None:
        mine = [
            row
            for row in self.flows.values()
            if row.kind is FlowKind.USER and row.entity_id == login_id and row.started_by == started_by
        ]
        return max(mine, key=lambda row: (row.started_at, row.seq)).flow_id if mine else None

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


def _row(step: Step) -> StepRow:
    return StepRow(step.name, step.position, step.service, step.state, step.updated_at, step.reason, step.asked_of)
