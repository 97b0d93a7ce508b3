"""The tracker's handlers: flows start on upstream events, and close step by step on the services' reports.

A report whose flow the tracker does not know is kept, not dropped: topics are not ordered
against each other, so a service's report can come before the event that starts its flow. It
cannot be told at that moment from a report of a flow the tracker never tracks (the
``PermissionsGranted`` of a ``UserUpdated``): both are kept in ``early_reports``; when a flow of
that id starts, its reports are applied in arrival order. The others stay there, inert (a flow
id is an event id: no flow of that id will ever start). They are a few hundred bytes each. A
person's ``ManualActionCompleted`` is no such report: it is checked against its flow at once
(:func:`manual_action_completed`).

A report about a step the flow does not expect is ignored (the compensations that follow a
failed opening carry its flow id: ``AccessRevoked`` does not close anything of a
``TradingAccountOpened``), except a refusal: ``StepFailed`` always fails its flow.

The tracker handles every record of its input, so each handler costs few statements: under the
flow's lock it reads the flow with its steps once (or starts it, from its plan, taking its early
reports back), applies the rules of flows.py to that value, and writes what changed in one
statement, nothing when nothing did (tests/integration/test_provisioning_statements.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import structlog

from consumers.provisioning import flows
from consumers.provisioning.flows import Flow, FlowState, Report, StepState
from consumers.provisioning.store import FlowsUnit
from consumers.runtime import DomainError
from schemas import Event
from schemas.authentication import LoginProvisioned
from schemas.operators import ManualActionCompleted
from schemas.provisioning import ManualActionRequired, ProvisioningFailed, StepFailed, StepWaiting
from schemas.users import UserCreated, UserEnabled, UserSessionPolicyRemoved, UserUpdated

log = structlog.get_logger("xbus.provisioning")


async def user_created(event: UserCreated, unit: FlowsUnit) -> None:
    has_policy = event.session_policy is not None
    await unit.store.remember_login(event.login_id, has_policy, unit.cause.time)
    await _start(unit, flows.plan(event, session_policy=has_policy))


async def user_updated(event: UserUpdated, unit: FlowsUnit) -> None:
    """Not a flow; the tracker only learns whether the login now has a session policy."""
    if event.session_policy is not None:  # absent means unchanged (a partial update)
        await unit.store.remember_login(event.login_id, True, unit.cause.time)


async def session_policy_removed(event: UserSessionPolicyRemoved, unit: FlowsUnit) -> None:
    """Not a flow either: the login's next enabling expects no session limits."""
    await unit.store.remember_login(event.login_id, False, unit.cause.time)


async def user_enabled(event: UserEnabled, unit: FlowsUnit) -> None:
    await _start(unit, flows.plan(event, session_policy=await unit.store.has_session_policy(event.login_id)))


async def flow_started(event: Event, unit: FlowsUnit) -> None:
    """Every other flow-starting event: its steps depend on the event alone."""
    await _start(unit, flows.plan(event))


async def step_done(event: Event, unit: FlowsUnit) -> None:
    """A service's follow-up event that completes a step (which one: flows.COMPLETES)."""
    flow_id = getattr(event, "flow_id", None)
    assert isinstance(flow_id, str), f"{event.event_type} carries no flow id"
    await _report(unit, _report_of(unit, flow_id, StepState.DONE))


async def login_provisioned(event: LoginProvisioned, unit: FlowsUnit) -> None:
    """``LoginProvisioned`` may name no flow (it is also the login's announcement): then it closes
    the login's latest ``UserCreated`` flow, if the tracker has one."""
    flow_id = event.flow_id or await unit.store.latest_user_flow(event.login_id, UserCreated.event_type)
    if flow_id is None:
        log.info("LoginProvisioned names no flow and the login has none; ignored", login_id=event.login_id)
        return
    await _report(unit, _report_of(unit, flow_id, StepState.DONE))


async def manual_action_completed(event: ManualActionCompleted, unit: FlowsUnit) -> None:
    """A person's word that a step the tracker asked of them is done: it closes that step only.

    Anything else is refused (dead-lettered with the reason), never ignored and never kept early: a
    person sent it by hand, in answer to a ``ManualActionRequired`` that is published only once the
    flow is here, and the event that starts a flow with a manual step (``OperatorRegistered``) comes
    before it on the same topic, under the same key. A copy sent again changes nothing.
    """
    await lock_flow(unit, event.flow_id)
    flow = await unit.store.flow(event.flow_id)
    if flow is None:
        raise _refused(event, f"flow {event.flow_id} is unknown to the tracker")
    step = flow.step(event.step)
    state, asked_of = (None, None) if step is None else (step.state, step.asked_of)
    refusal = flows.manual_refusal(flow.flow_id, event.step, state, asked_of, event.operator_id)
    if refusal is not None:
        raise _refused(event, refusal)
    if state is StepState.DONE:
        log.info("manual action reported again; already done", flow_id=flow.flow_id, step=event.step)
    else:
        await _advance(unit, flow, [_report_of(unit, flow.flow_id, StepState.DONE, event.step)])


def _refused(event: ManualActionCompleted, reason: str) -> DomainError:
    return DomainError(
        f"ManualActionCompleted by {event.done_by} (operator {event.operator_id}, flow {event.flow_id}, step "
        f"{event.step}) refused, the flow left as it was: {reason}. A person closes only a step the tracker "
        "asked of them, with the flow id, step and operator id of its ManualActionRequired (`xbus status "
        "operator ID` shows an operator's flows and their steps). If that action was done, publish a corrected "
        "ManualActionCompleted; then discard this event: `xbus dlq discard provisioning --id ... --reason ...` "
        "(the tracker parks this operator id's later events behind it until then)"
    )


async def step_waiting(event: StepWaiting, unit: FlowsUnit) -> None:
    reason = _waiting_reason(event)
    await _report(unit, _report_of(unit, event.flow_id, StepState.WAITING, event.step, event.service, reason))


async def step_failed(event: StepFailed, unit: FlowsUnit) -> None:
    await _report(unit, _report_of(unit, event.flow_id, StepState.FAILED, event.step, event.service, event.reason))


def _report_of(
    unit: FlowsUnit,
    flow_id: str,
    outcome: StepState,
    step: str | None = None,
    service: str | None = None,
    reason: str | None = None,
) -> Report:
    """The handled event as a report; it is its own id, type and time that are kept if it is early."""
    return Report(flow_id, unit.cause.id, unit.cause.type, outcome, unit.cause.time, step, service, reason)


def _waiting_reason(event: StepWaiting) -> str:
    return f"{event.reason} (waiting for {', '.join(event.waiting_for)})" if event.waiting_for else event.reason


async def _start(unit: FlowsUnit, plan: flows.FlowPlan) -> None:
    flow_id = unit.flow_id
    await lock_flow(unit, flow_id)
    flow = flows.started(flow_id, plan, unit.cause)
    early = await unit.store.start(flow)
    if early is None:
        return  # started already: the inbox drops a redelivery, this guards a replay onto kept state
    await _advance(unit, flow, early, asks=plan.manual)


async def lock_flow(unit: FlowsUnit, flow_id: str) -> None:
    """Serialise every change to ``flow_id`` until this transaction ends (store.py says why)."""
    await unit.lock(f"flow:{flow_id}")


async def _report(unit: FlowsUnit, report: Report) -> None:
    await lock_flow(unit, report.flow_id)
    flow = await unit.store.flow_or_keep(report)
    if flow is not None:
        await _advance(unit, flow, [report])


async def _advance(
    unit: FlowsUnit, stored: Flow, reports: Iterable[Report], asks: Iterable[flows.ManualStep] = ()
) -> None:
    """Apply ``reports`` to the flow as it is ``stored`` in their order, ask for the manual steps
    ``asks`` still waiting for a person, announce the flow's outcome if it is complete now, and
    write what changed in one statement. The events are recorded in that order: a replay must
    record the same ones at the same positions (their ids depend on it)."""
    flow = stored
    for report in reports:
        flow = _applied(unit, flow, report)
    for manual in asks:
        step = flow.step(manual.step)
        if step is not None and step.state is StepState.MANUAL:
            unit.record(
                ManualActionRequired(
                    flow_id=flow.flow_id,
                    step=manual.step,
                    system=manual.system,
                    operator_id=manual.operator_id,
                    instructions=manual.instructions,
                )
            )
    if flows.completes(flow):
        flow = replace(flow, state=FlowState.COMPLETED)
        steps = tuple(step.name for step in flow.steps)
        unit.record(flows.outcome(flow.flow_id, flow.kind, flow.entity_id, flow.started_by, steps))
    await unit.store.save(stored, flow, unit.cause.time)


def _applied(unit: FlowsUnit, flow: Flow, report: Report) -> Flow:
    """``flow`` after ``report``; the refusal that fails an open flow is announced, once."""
    after = flows.reported(flow, report)
    if after is flow:
        log.debug("report changes nothing; ignored", flow_id=flow.flow_id, event_type=report.event_type)
    elif after.state is FlowState.FAILED and flow.state is FlowState.OPEN:
        [failed] = after.changed_steps(flow)
        unit.record(
            ProvisioningFailed(
                flow_id=flow.flow_id,
                kind=flow.kind,
                entity_id=flow.entity_id,
                service=report.service or flows.service_of(failed.name),
                step=failed.name,
                reason=failed.reason or "refused",
            )
        )
    return after
