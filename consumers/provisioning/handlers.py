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
"""

from __future__ import annotations

import structlog

from consumers.provisioning import flows, store
from consumers.provisioning.flows import FlowState, Report, StepState
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
    state = await unit.store.step_state(flow.flow_id, event.step)
    asked_of = await unit.store.asked_of(flow.flow_id, event.step)
    refusal = flows.manual_refusal(flow.flow_id, event.step, state, asked_of, event.operator_id)
    if refusal is not None:
        raise _refused(event, refusal)
    if state is StepState.DONE:
        log.info("manual action reported again; already done", flow_id=flow.flow_id, step=event.step)
    else:
        await unit.store.mark_done(flow.flow_id, event.step, unit.cause.time)
        await _settle(unit, flow.flow_id)


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
    if not await unit.store.create_flow(flow_id, plan, unit.cause):
        return  # started already: the inbox drops a redelivery, this guards a replay onto kept state
    flow = await unit.store.flow(flow_id)
    assert flow is not None
    for report in await unit.store.take_early(flow_id):
        await _apply(unit, flow, report)
    for manual in plan.manual:
        if await unit.store.step_state(flow_id, manual.step) is StepState.MANUAL:
            unit.record(
                ManualActionRequired(
                    flow_id=flow_id,
                    step=manual.step,
                    system=manual.system,
                    operator_id=manual.operator_id,
                    instructions=manual.instructions,
                )
            )
    await _settle(unit, flow_id)


async def lock_flow(unit: FlowsUnit, flow_id: str) -> None:
    """Serialise every change to ``flow_id`` until this transaction ends (store.py says why)."""
    await unit.lock(f"flow:{flow_id}")


async def _report(unit: FlowsUnit, report: Report) -> None:
    await lock_flow(unit, report.flow_id)
    flow = await unit.store.flow(report.flow_id)
    if flow is None:
        await unit.store.keep_early(report)
        return
    await _apply(unit, flow, report)
    await _settle(unit, flow.flow_id)


async def _apply(unit: FlowsUnit, flow: store.Flow, report: Report) -> None:
    step = flows.step_of(report, flow.started_by)
    if step is None:
        return
    if report.outcome is StepState.FAILED:
        await _fail(unit, flow, step, report)
    elif await unit.store.step_state(flow.flow_id, step) is None:
        log.debug("report of a step the flow does not expect; ignored", flow_id=flow.flow_id, step=step)
    elif report.outcome is StepState.DONE:
        await unit.store.mark_done(flow.flow_id, step, report.time)
    else:
        await unit.store.mark_waiting(flow.flow_id, step, report.time, report.reason or "waiting")


async def _fail(unit: FlowsUnit, flow: store.Flow, step: str, report: Report) -> None:
    service = report.service or flows.service_of(step)
    reason = report.reason or "refused"
    await unit.store.mark_failed(flow.flow_id, step, service, report.time, reason)
    if await unit.store.fail_flow(flow.flow_id, unit.cause.time):
        unit.record(
            ProvisioningFailed(
                flow_id=flow.flow_id,
                kind=flow.kind,
                entity_id=flow.entity_id,
                service=service,
                step=step,
                reason=reason,
            )
        )


async def _settle(unit: FlowsUnit, flow_id: str) -> None:
    """Announce the flow's outcome once, when its last expected step is done."""
    steps = await unit.store.complete_if_done(flow_id, unit.cause.time)
    if steps is None:
        return
    flow = await unit.store.flow(flow_id)
    assert flow is not None and flow.state is FlowState.COMPLETED
    unit.record(flows.outcome(flow.flow_id, flow.kind, flow.entity_id, flow.started_by, steps))
