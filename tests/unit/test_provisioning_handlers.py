"""The provisioning tracker's rules, on a FakeUnitOfWork over an in-memory store: a flow starts on
its upstream event, closes step by step on the services' reports (early ones included), fails on
a refusal, and announces its outcome once (which steps a flow expects is test_provisioning_flows.py;
the SQL and the runtime are proven on the real stack)."""

from __future__ import annotations

import pytest

from consumers.provisioning.flows import FlowState, StepState
from consumers.provisioning.service import SERVICE
from consumers.provisioning.store import Flows
from consumers.runtime import DomainError, FakeUnitOfWork
from schemas import Event
from schemas.authentication import LoginProvisioned
from schemas.authorisation import PermissionsGranted
from schemas.oms import OmsOperatorRegistered
from schemas.operators import ManualActionCompleted, OperatorRegistered
from schemas.provisioning import (
    ManualActionRequired,
    OperatorProvisioned,
    ProvisioningFailed,
    StepFailed,
    StepWaiting,
    UserProvisioned,
)
from schemas.sessions import SessionLimitsAssigned
from schemas.types import OmsFeature, OperatorSystem
from schemas.users import SessionPolicy, UserCreated, UserEnabled, UserSessionPolicyRemoved, UserUpdated
from tests.support.memory_provisioning import MemoryFlows

CREATED = UserCreated(login_id="pk-1", username="pk", email="pk@example.com", display_name="P K")


async def handle(event: Event, flows: MemoryFlows) -> FakeUnitOfWork[Flows]:
    """``event`` applied by the tracker's own wiring, in a unit of work of its own."""
    unit: FakeUnitOfWork[Flows] = FakeUnitOfWork.handling(event, flows, service="provisioning")
    await SERVICE.by_type[event.event_type](event, unit)
    return unit


def login_provisioned(flow_id: str | None) -> LoginProvisioned:
    return LoginProvisioned(login_id="pk-1", username="pk", flow_id=flow_id)


def permissions_granted(flow_id: str) -> PermissionsGranted:
    return PermissionsGranted(flow_id=flow_id, login_id="pk-1", permissions=())


async def test_a_user_flow_completes_when_its_last_step_is_reported_and_says_so_once() -> None:
    flows = MemoryFlows()
    start = await handle(CREATED, flows)
    flow_id = start.cause.id
    assert start.events == []
    assert [s.step for s in flows.steps[flow_id].values()] == ["authentication.login", "authorisation.permissions"]
    assert (await handle(login_provisioned(flow_id), flows)).events == []
    last = await handle(permissions_granted(flow_id), flows)
    assert last.events == [
        UserProvisioned(flow_id=flow_id, login_id="pk-1", steps=("authentication.login", "authorisation.permissions"))
    ]
    assert flows.flows[flow_id].state is FlowState.COMPLETED
    assert (await handle(permissions_granted(flow_id), flows)).events == []  # announced once
    assert start.locked == [f"flow:{flow_id}"] and last.locked == [f"flow:{flow_id}"]


async def test_a_login_with_a_session_policy_also_waits_for_its_limits() -> None:
    flows = MemoryFlows()
    start = await handle(CREATED.model_copy(update={"session_policy": SessionPolicy()}), flows)
    flow_id = start.cause.id
    await handle(login_provisioned(flow_id), flows)
    assert (await handle(permissions_granted(flow_id), flows)).events == []
    limits = SessionLimitsAssigned(
        flow_id=flow_id, login_id="pk-1", pool="Default", max_sessions=5, max_connections=20, grace_period_seconds=60
    )
    [done] = (await handle(limits, flows)).events
    assert isinstance(done, UserProvisioned) and done.steps[-1] == "sessions.limits"


async def test_reports_that_come_before_their_flow_are_kept_and_applied_when_it_starts() -> None:
    flows = MemoryFlows()
    start_unit: FakeUnitOfWork[Flows] = FakeUnitOfWork.handling(CREATED, flows, service="provisioning")
    flow_id = start_unit.cause.id
    await handle(login_provisioned(flow_id), flows)
    await handle(permissions_granted(flow_id), flows)
    assert len(flows.early) == 2 and flows.flows == {}
    await SERVICE.by_type[CREATED.event_type](CREATED, start_unit)
    assert [type(e) for e in start_unit.events] == [UserProvisioned]
    assert flows.early == []


async def test_a_refusal_fails_the_flow_once_with_the_service_step_and_reason() -> None:
    flows = MemoryFlows()
    flow_id = (await handle(CREATED, flows)).cause.id
    refused = StepFailed(flow_id=flow_id, service="authentication", step="authentication.login", reason="taken")
    [failed] = (await handle(refused, flows)).events
    assert failed == ProvisioningFailed(
        flow_id=flow_id,
        kind=failed.kind,
        entity_id="pk-1",
        service="authentication",
        step="authentication.login",
        reason="taken",
    )
    assert flows.flows[flow_id].state is FlowState.FAILED
    assert (await handle(permissions_granted(flow_id), flows)).events == []  # a failed flow never completes
    again = StepFailed(flow_id=flow_id, service="authorisation", step="authorisation.permissions", reason="no")
    assert (await handle(again, flows)).events == []  # its failure is announced once
    assert flows.steps[flow_id]["authorisation.permissions"].state is StepState.FAILED


async def test_a_refusal_of_a_step_the_flow_did_not_expect_still_fails_it_and_is_shown() -> None:
    flows = MemoryFlows()
    flow_id = (await handle(CREATED, flows)).cause.id
    refused = StepFailed(flow_id=flow_id, service="oms", step="oms.operator", reason="why")
    assert [type(e) for e in (await handle(refused, flows)).events] == [ProvisioningFailed]
    assert flows.steps[flow_id]["oms.operator"].position == 2


async def test_a_waiting_step_keeps_its_reason_and_what_it_waits_for_until_it_is_done() -> None:
    flows = MemoryFlows()
    flow_id = (await handle(CREATED, flows)).cause.id
    waiting = StepWaiting(
        flow_id=flow_id, service="authorisation", step="authorisation.permissions", reason="no role", waiting_for=("r",)
    )
    assert (await handle(waiting, flows)).events == []
    step = flows.steps[flow_id]["authorisation.permissions"]
    assert (step.state, step.reason) == (StepState.WAITING, "no role (waiting for r)")
    await handle(permissions_granted(flow_id), flows)
    assert (step.state, step.reason) == (StepState.DONE, None)


async def test_a_report_of_a_step_the_flow_does_not_expect_changes_nothing() -> None:
    flows = MemoryFlows()
    flow_id = (await handle(CREATED, flows)).cause.id
    limits = SessionLimitsAssigned(
        flow_id=flow_id, login_id="pk-1", pool="Default", max_sessions=5, max_connections=20, grace_period_seconds=60
    )
    assert (await handle(limits, flows)).events == []
    assert set(flows.steps[flow_id]) == {"authentication.login", "authorisation.permissions"}
    assert flows.flows[flow_id].state is FlowState.OPEN


async def test_a_login_provisioned_without_a_flow_closes_the_logins_latest_creation() -> None:
    flows = MemoryFlows()
    flow_id = (await handle(CREATED, flows)).cause.id
    await handle(login_provisioned(None), flows)
    assert flows.steps[flow_id]["authentication.login"].state is StepState.DONE
    alone = MemoryFlows()
    assert (await handle(LoginProvisioned(login_id="pk-2", username="x"), alone)).events == []
    assert alone.early == []  # nothing to keep for later either


async def test_a_flow_started_again_changes_nothing() -> None:
    flows = MemoryFlows()
    unit: FakeUnitOfWork[Flows] = FakeUnitOfWork.handling(CREATED, flows, service="provisioning")
    await SERVICE.by_type[CREATED.event_type](CREATED, unit)
    await handle(login_provisioned(unit.cause.id), flows)
    await SERVICE.by_type[CREATED.event_type](CREATED, unit)  # a replay onto kept state
    assert flows.steps[unit.cause.id]["authentication.login"].state is StepState.DONE
    assert len(flows.flows) == 1


async def test_an_enabling_expects_session_limits_only_once_an_update_gave_the_login_a_policy() -> None:
    flows = MemoryFlows()
    await handle(CREATED, flows)
    await handle(UserUpdated(login_id="pk-1", display_name="Pat"), flows)  # leaves the policy as it is
    without = (await handle(UserEnabled(login_id="pk-1"), flows)).cause.id
    await handle(UserUpdated(login_id="pk-1", session_policy=SessionPolicy()), flows)
    with_policy = (await handle(UserEnabled(login_id="pk-1"), flows)).cause.id
    assert "sessions.limits" not in flows.steps[without]
    assert "sessions.limits" in flows.steps[with_policy]


async def test_an_enabling_after_the_policy_was_removed_expects_no_session_limits() -> None:
    """The sessions service answers a removed policy with no limits, so an enabling that still
    expected them would wait for a step that never comes, and go overdue."""
    flows = MemoryFlows()
    await handle(CREATED.model_copy(update={"session_policy": SessionPolicy()}), flows)
    with_policy = (await handle(UserEnabled(login_id="pk-1"), flows)).cause.id
    await handle(UserSessionPolicyRemoved(login_id="pk-1"), flows)
    removed = (await handle(UserEnabled(login_id="pk-1"), flows)).cause.id
    assert "sessions.limits" in flows.steps[with_policy]
    assert "sessions.limits" not in flows.steps[removed]


async def test_a_step_waiting_for_nothing_named_keeps_its_reason_as_given() -> None:
    flows = MemoryFlows()
    flow_id = (await handle(CREATED, flows)).cause.id
    await handle(
        StepWaiting(flow_id=flow_id, service="authorisation", step="authorisation.permissions", reason="busy"), flows
    )
    assert flows.steps[flow_id]["authorisation.permissions"].reason == "busy"


OPERATOR = OperatorRegistered(
    operator_id="op1",
    login_id="pk-1",
    systems=(OperatorSystem.OMS, OperatorSystem.PRODIGY),
    oms_features=(OmsFeature.OPERATOR,),
    exchanges=("XSX",),
)


def done_by_hand(flow_id: str, step: str = "prodigy.operator", operator_id: str = "op1") -> ManualActionCompleted:
    return ManualActionCompleted(operator_id=operator_id, flow_id=flow_id, step=step, done_by="ops")


async def operator_flow(flows: MemoryFlows) -> str:
    """An operator flow waiting for its Prodigy step, asked of op1."""
    start = await handle(OPERATOR, flows)
    [required] = start.events
    assert isinstance(required, ManualActionRequired)
    assert (required.step, required.operator_id) == ("prodigy.operator", "op1")
    assert flows.steps[start.cause.id]["prodigy.operator"].state is StepState.MANUAL
    return start.cause.id


def states(flows: MemoryFlows, flow_id: str) -> dict[str, StepState]:
    return {step: row.state for step, row in flows.steps[flow_id].items()}


async def test_a_manual_action_closes_the_step_asked_of_its_operator() -> None:
    flows = MemoryFlows()
    flow_id = await operator_flow(flows)
    registered = OmsOperatorRegistered(flow_id=flow_id, operator_id="op1", features=(OmsFeature.OPERATOR,))
    assert (await handle(registered, flows)).events == []
    done = await handle(done_by_hand(flow_id), flows)
    assert done.events == [
        OperatorProvisioned(flow_id=flow_id, operator_id="op1", steps=("oms.operator", "prodigy.operator"))
    ]
    assert done.locked == [f"flow:{flow_id}"]
    assert flows.steps[flow_id]["prodigy.operator"].reason is None  # the instructions are done with


async def test_a_manual_action_cannot_close_a_step_a_service_takes() -> None:
    flows = MemoryFlows()
    flow_id = await operator_flow(flows)
    with pytest.raises(DomainError, match=r"oms\.operator .* is taken by the oms service, not by a person"):
        await handle(done_by_hand(flow_id, step="oms.operator"), flows)
    assert states(flows, flow_id) == {"oms.operator": StepState.EXPECTED, "prodigy.operator": StepState.MANUAL}


async def test_a_manual_action_by_another_operator_than_the_one_asked_is_refused() -> None:
    flows = MemoryFlows()
    flow_id = await operator_flow(flows)
    await handle(OmsOperatorRegistered(flow_id=flow_id, operator_id="op1", features=()), flows)
    with pytest.raises(DomainError, match="was asked of operator op1, not op2"):
        await handle(done_by_hand(flow_id, operator_id="op2"), flows)
    assert states(flows, flow_id) == {"oms.operator": StepState.DONE, "prodigy.operator": StepState.MANUAL}
    assert flows.flows[flow_id].state is FlowState.OPEN


async def test_a_manual_action_of_a_step_the_flow_does_not_have_is_refused_not_ignored() -> None:
    flows = MemoryFlows()
    flow_id = await operator_flow(flows)
    with pytest.raises(DomainError, match=r"has no step registry\.operator"):
        await handle(done_by_hand(flow_id, step="registry.operator"), flows)
    assert set(flows.steps[flow_id]) == {"oms.operator", "prodigy.operator"}


async def test_a_manual_action_for_a_flow_the_tracker_does_not_know_is_refused_not_kept() -> None:
    flows = MemoryFlows()
    with pytest.raises(DomainError, match="flow nowhere is unknown to the tracker"):
        await handle(done_by_hand("nowhere"), flows)
    assert flows.early == [] and flows.flows == {}


async def test_a_manual_action_on_a_refused_step_is_refused() -> None:
    flows = MemoryFlows()
    flow_id = await operator_flow(flows)
    refused = StepFailed(flow_id=flow_id, service="prodigy-desk", step="prodigy.operator", reason="no such login")
    [failed] = (await handle(refused, flows)).events
    assert isinstance(failed, ProvisioningFailed) and failed.service == "prodigy-desk"  # who said so, as they said
    with pytest.raises(DomainError, match=r"prodigy\.operator of flow \S+ is failed"):
        await handle(done_by_hand(flow_id), flows)
    assert flows.steps[flow_id]["prodigy.operator"].state is StepState.FAILED


async def test_a_manual_action_sent_again_changes_nothing_and_is_not_refused() -> None:
    flows = MemoryFlows()
    flow_id = await operator_flow(flows)
    first = await handle(done_by_hand(flow_id), flows)
    assert first.events == []  # the OMS has not answered yet
    row = flows.steps[flow_id]["prodigy.operator"]
    assert row.state is StepState.DONE
    again = await handle(done_by_hand(flow_id), flows)  # a person sends it twice: another event id
    assert again.events == [] and row.updated_at == first.cause.time
    with pytest.raises(DomainError, match="was asked of operator op1, not op2"):
        await handle(done_by_hand(flow_id, operator_id="op2"), flows)
