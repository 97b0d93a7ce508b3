"""How a report changes a flow (consumers/provisioning/flows.py: ``started``, ``reported``,
``completes``): the rules handlers.py applies to the flow it read, before writing what changed in
one statement. The handlers' tests (test_provisioning_handlers.py) show the same rules end to end
on the in-memory store."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from consumers.provisioning.flows import (
    Flow,
    FlowState,
    Report,
    Step,
    StepState,
    completes,
    plan,
    reported,
    started,
)
from schemas import Envelope
from schemas.authentication import LoginProvisioned
from schemas.authorisation import PermissionsGranted
from schemas.operators import OperatorRegistered
from schemas.provisioning import FlowKind, StepFailed, StepWaiting
from schemas.types import OperatorSystem
from schemas.users import UserCreated, UserEnabled

T0 = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
LATER = T0 + dt.timedelta(seconds=5)
CREATED = UserCreated(login_id="pk-1", username="pk", email="pk@example.com", display_name="P K")


def cause(event_type: str) -> Envelope:
    return Envelope(
        id="flow-1", source="test", type=event_type, time=T0, subject="pk-1", correlation_id="c-1", causation_id="c-0"
    )


def user_flow(*states: StepState) -> Flow:
    """A ``UserCreated`` flow whose two steps are in ``states`` (expected by default)."""
    flow = started("flow-1", plan(CREATED), cause(CREATED.event_type))
    steps = tuple(dataclasses.replace(step, state=state) for step, state in zip(flow.steps, states, strict=False))
    return dataclasses.replace(flow, steps=steps + flow.steps[len(steps) :])


def done(event_type: str = LoginProvisioned.event_type) -> Report:
    return Report("flow-1", "e-1", event_type, StepState.DONE, LATER)


def waiting(reason: str | None = "no role (waiting for role:x)") -> Report:
    step = "authorisation.permissions"
    return Report("flow-1", "e-2", StepWaiting.event_type, StepState.WAITING, LATER, step, "authorisation", reason)


def failed(
    step: str = "authentication.login", service: str | None = "authentication", reason: str | None = "taken"
) -> Report:
    return Report("flow-1", "e-3", StepFailed.event_type, StepState.FAILED, LATER, step, service, reason)


def test_a_flow_starts_with_every_step_of_its_plan_expected_in_order() -> None:
    flow = started("flow-1", plan(CREATED), cause(CREATED.event_type))
    assert flow == Flow(
        "flow-1",
        FlowKind.USER,
        "pk-1",
        CREATED.event_type,
        "c-1",
        T0,
        FlowState.OPEN,
        (
            Step("authentication.login", 0, "authentication", StepState.EXPECTED),
            Step("authorisation.permissions", 1, "authorisation", StepState.EXPECTED),
        ),
    )


def test_a_manual_step_starts_asked_of_its_operator_with_its_instructions() -> None:
    registered = OperatorRegistered(
        operator_id="op1", login_id="pk-1", systems=(OperatorSystem.OMS, OperatorSystem.PRODIGY)
    )
    made = plan(registered)
    flow = started("flow-1", made, cause(registered.event_type))
    assert flow.steps == (
        Step("oms.operator", 0, "oms", StepState.EXPECTED),
        Step("prodigy.operator", 1, "prodigy", StepState.MANUAL, T0, made.manual[0].instructions, "op1"),
    )


def test_a_flow_finds_its_steps_by_name_and_says_which_changed() -> None:
    before = user_flow()
    after = reported(before, done())
    assert after.step("authentication.login") == Step(
        "authentication.login", 0, "authentication", StepState.DONE, LATER
    )
    assert after.step("sessions.limits") is None
    assert after.changed_steps(before) == (after.steps[0],)
    assert before.changed_steps(before) == ()


@pytest.mark.parametrize("state", [StepState.EXPECTED, StepState.WAITING, StepState.MANUAL])
def test_done_closes_an_open_step_and_clears_its_reason(state: StepState) -> None:
    flow = user_flow(state)
    flow = dataclasses.replace(flow, steps=(dataclasses.replace(flow.steps[0], reason="why"), flow.steps[1]))
    after = reported(flow, done())
    assert after.steps[0] == Step("authentication.login", 0, "authentication", StepState.DONE, LATER, None)
    assert after.steps[1] is flow.steps[1] and after.state is FlowState.OPEN


@pytest.mark.parametrize("state", [StepState.DONE, StepState.FAILED])
def test_done_leaves_a_closed_step_and_its_flow_as_they_are(state: StepState) -> None:
    flow = user_flow(state)
    assert reported(flow, done()) is flow


def test_permissions_granted_closes_the_enabling_step_of_an_enabling() -> None:
    enabled = UserEnabled(login_id="pk-1")
    flow = started("flow-1", plan(enabled), cause(enabled.event_type))
    after = reported(flow, done(PermissionsGranted.event_type))
    assert after.step("authorisation.enable") == Step("authorisation.enable", 1, "authorisation", StepState.DONE, LATER)


@pytest.mark.parametrize("state", [StepState.EXPECTED, StepState.WAITING])
def test_waiting_holds_an_expected_or_waiting_step_with_its_reason(state: StepState) -> None:
    flow = user_flow(StepState.EXPECTED, state)
    after = reported(flow, waiting())
    assert after.steps[1] == Step(
        "authorisation.permissions", 1, "authorisation", StepState.WAITING, LATER, "no role (waiting for role:x)"
    )
    assert reported(flow, waiting(None)).steps[1].reason == "waiting"


@pytest.mark.parametrize("state", [StepState.MANUAL, StepState.DONE, StepState.FAILED])
def test_waiting_changes_nothing_of_a_step_a_person_takes_or_that_is_closed(state: StepState) -> None:
    flow = user_flow(StepState.EXPECTED, state)
    assert reported(flow, waiting()) is flow


def test_a_report_of_a_step_the_flow_does_not_expect_changes_nothing() -> None:
    flow = user_flow()
    limits = Report("flow-1", "e-4", StepWaiting.event_type, StepState.WAITING, LATER, "sessions.limits", "sessions")
    assert reported(flow, limits) is flow
    assert reported(flow, done("xosp.unknown.v1")) is flow
    assert reported(flow, dataclasses.replace(done(), step="sessions.limits")) is flow


def test_a_refusal_fails_its_step_and_its_open_flow() -> None:
    flow = user_flow(StepState.EXPECTED, StepState.DONE)
    after = reported(flow, failed())
    assert after.state is FlowState.FAILED
    assert after.steps == (
        Step("authentication.login", 0, "authentication", StepState.FAILED, LATER, "taken"),
        flow.steps[1],
    )


def test_a_refusal_keeps_the_step_s_service_and_operator_and_says_refused_without_a_reason() -> None:
    flow = user_flow()
    flow = dataclasses.replace(flow, steps=(dataclasses.replace(flow.steps[0], asked_of="op1"), flow.steps[1]))
    after = reported(flow, failed(service="desk", reason=None))
    assert after.steps[0] == Step(
        "authentication.login", 0, "authentication", StepState.FAILED, LATER, "refused", "op1"
    )


def test_a_refusal_of_a_step_the_flow_did_not_expect_adds_it_last() -> None:
    flow = user_flow()
    after = reported(flow, failed("oms.operator", service=None))
    assert after.steps[:2] == flow.steps
    assert after.steps[2] == Step("oms.operator", 2, "oms", StepState.FAILED, LATER, "taken")
    assert reported(after, failed("registry.operator", service="desk")).steps[3] == Step(
        "registry.operator", 3, "desk", StepState.FAILED, LATER, "taken"
    )
    empty = dataclasses.replace(flow, steps=())
    assert reported(empty, failed()).steps == (
        Step("authentication.login", 0, "authentication", StepState.FAILED, LATER, "taken"),
    )


@pytest.mark.parametrize("state", [FlowState.COMPLETED, FlowState.FAILED])
def test_a_refusal_after_the_flow_ended_is_shown_on_its_step_but_does_not_change_the_flow(state: FlowState) -> None:
    flow = dataclasses.replace(user_flow(StepState.DONE, StepState.DONE), state=state)
    after = reported(flow, failed())
    assert after.state is state and after.steps[0].state is StepState.FAILED


def test_an_open_flow_completes_once_every_step_is_done() -> None:
    assert completes(user_flow(StepState.DONE, StepState.DONE))
    assert not completes(user_flow(StepState.DONE, StepState.WAITING))
    assert not completes(user_flow(StepState.MANUAL, StepState.DONE))
    assert completes(dataclasses.replace(user_flow(), steps=()))  # a flow that expects nothing
    for ended in (FlowState.COMPLETED, FlowState.FAILED):
        assert not completes(dataclasses.replace(user_flow(StepState.DONE, StepState.DONE), state=ended))


def test_a_flow_and_its_steps_are_values_that_cannot_change() -> None:
    """The handlers write what differs between the flow they read and the one the rules made of it:
    a flow changed in place would leave nothing to tell apart, and nothing would be written."""
    flow = user_flow()
    with pytest.raises(dataclasses.FrozenInstanceError):
        flow.state = FlowState.COMPLETED  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        flow.steps[0].state = StepState.DONE  # type: ignore[misc]
