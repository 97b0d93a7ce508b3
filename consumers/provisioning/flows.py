"""The table of docs/provisioning.md (and the onboarding of docs/exchanges.md) as code: what each
flow expects, which report closes which step, and how a report changes a flow read with its steps.

Pure functions of events, no SQL, so that the rules can be read (and changed) in one place
while handlers.py does the bookkeeping and store.py the SQL. The one thing a plan needs besides
its event is whether the deployment runs the registry (``XBUS_REGISTRY``): without it the OMS
keeps the book of record, and no flow waits for a step of a service that does not run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from infrastructure.deployment import registry_runs
from schemas import Envelope, Event
from schemas.accounts import (
    AccountLoginLinked,
    AccountLoginUnlinked,
    FundsDeposited,
    FundsWithdrawn,
    TradingAccountClosed,
    TradingAccountOpened,
    TradingAccountSuspended,
)
from schemas.authentication import LoginDisabled, LoginEnabled, LoginProvisioned
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended
from schemas.gateway import OmsAdapterRegistered, OmsAdapterStopped
from schemas.market_data import MarketDataFeedStarted, MarketDataFeedStopped
from schemas.oms import OmsAccountProvisioned, OmsAccountStateChanged, OmsCashMovementApplied, OmsOperatorRegistered
from schemas.operators import OperatorRegistered
from schemas.provisioning import (
    ChangeApplied,
    ExchangeOnboarded,
    FlowKind,
    OperatorProvisioned,
    TradingAccountProvisioned,
    UserProvisioned,
)
from schemas.registry import (
    CashMovementApplied,
    RegistryAccountOpened,
    RegistryAccountStateChanged,
    RegistryOperatorRegistered,
    RegistrySettlementEnabled,
)
from schemas.sessions import SessionLimitsAssigned, SessionLimitsAssignedV1, SessionsEnded
from schemas.types import OperatorSystem
from schemas.users import UserCreated, UserDisabled, UserEnabled


class StepState(StrEnum):
    EXPECTED = "expected"
    DONE = "done"
    WAITING = "waiting"
    FAILED = "failed"
    MANUAL = "manual"


class FlowState(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class ManualStep:
    """A step no service takes (Prodigy has no operator API): a person does it, told how."""

    step: str
    system: OperatorSystem
    operator_id: str
    instructions: str


@dataclass(frozen=True)
class FlowPlan:
    kind: FlowKind
    entity_id: str
    #: Every step the flow expects, in the order they are shown (manual ones included).
    steps: tuple[str, ...]
    manual: tuple[ManualStep, ...] = ()


@dataclass(frozen=True)
class Report:
    """A service's word on one step of a flow: done, waiting or failed."""

    flow_id: str
    event_id: str
    event_type: str
    outcome: StepState
    time: dt.datetime
    #: Named by StepWaiting and StepFailed; derived from the type otherwise.
    step: str | None = None
    service: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Step:
    """One step of a flow, as the tracker keeps it."""

    name: str
    #: Where it is shown among the flow's steps.
    position: int
    service: str
    state: StepState
    #: The time of the event that last changed it; None while merely expected.
    updated_at: dt.datetime | None = None
    #: Why it waits or was refused, or what a person is asked to do.
    reason: str | None = None
    #: The operator a manual step was asked of (its ``ManualActionRequired``); None for a step a
    #: service takes.
    asked_of: str | None = None


@dataclass(frozen=True)
class Flow:
    """A flow and its steps, as the tracker keeps them: read once per report, changed here by the
    rules below, and written back in one statement (store.py)."""

    flow_id: str
    kind: FlowKind
    entity_id: str
    #: The event type that started it.
    started_by: str
    correlation_id: str
    started_at: dt.datetime
    state: FlowState
    #: In the order they are shown.
    steps: tuple[Step, ...]

    def step(self, name: str) -> Step | None:
        """The step of that name, or None when the flow does not expect it."""
        return next((step for step in self.steps if step.name == name), None)

    def changed_steps(self, before: Flow) -> tuple[Step, ...]:
        """The steps that differ from ``before``'s (the same flow earlier): what a write must store."""
        return tuple(step for step in self.steps if step not in before.steps)


#: A step is still open (done, waiting or refused can close it) in these states.
OPEN_STEPS = frozenset({StepState.EXPECTED, StepState.WAITING, StepState.MANUAL})


def service_of(step: str) -> str:
    """Steps are named ``<service>.<what>``."""
    return step.partition(".")[0]


#: The flow-starting event types, by event type: what they are about.
STARTERS: Mapping[str, FlowKind] = {
    UserCreated.event_type: FlowKind.USER,
    UserDisabled.event_type: FlowKind.USER,
    UserEnabled.event_type: FlowKind.USER,
    OperatorRegistered.event_type: FlowKind.OPERATOR,
    TradingAccountOpened.event_type: FlowKind.ACCOUNT,
    AccountLoginLinked.event_type: FlowKind.ACCOUNT,
    AccountLoginUnlinked.event_type: FlowKind.ACCOUNT,
    TradingAccountSuspended.event_type: FlowKind.ACCOUNT,
    TradingAccountClosed.event_type: FlowKind.ACCOUNT,
    FundsDeposited.event_type: FlowKind.ACCOUNT,
    FundsWithdrawn.event_type: FlowKind.ACCOUNT,
    ExchangeAdded.event_type: FlowKind.EXCHANGE,
    ExchangeSuspended.event_type: FlowKind.EXCHANGE,
    ExchangeRemoved.event_type: FlowKind.EXCHANGE,
}

#: An exchange stops taking part the same way whether it is suspended or removed.
_EXCHANGE_STOP_STEPS = ("market_data.feed_stop", "gateway.adapter_stop")

_FIXED_STEPS: Mapping[str, tuple[str, ...]] = {
    UserDisabled.event_type: ("authentication.disable", "authorisation.revoke", "sessions.end"),
    TradingAccountOpened.event_type: ("authorisation.access", "oms.account", "registry.account"),
    AccountLoginLinked.event_type: ("authorisation.access",),
    AccountLoginUnlinked.event_type: ("authorisation.revoke",),
    TradingAccountSuspended.event_type: ("oms.account_state", "registry.account_state"),
    TradingAccountClosed.event_type: ("registry.account_state", "oms.account_state", "authorisation.revoke"),
    FundsDeposited.event_type: ("registry.cash",),
    FundsWithdrawn.event_type: ("registry.cash",),
    ExchangeSuspended.event_type: _EXCHANGE_STOP_STEPS,
    ExchangeRemoved.event_type: _EXCHANGE_STOP_STEPS,
}

_OPERATOR_STEPS: Mapping[OperatorSystem, str] = {
    OperatorSystem.OMS: "oms.operator",
    OperatorSystem.REGISTRY: "registry.operator",
    OperatorSystem.PRODIGY: "prodigy.operator",
}


#: The registry's steps the OMS takes where the deployment runs no registry (it keeps the book);
#: the registry's other steps are nobody's there, and are not expected.
_KEPT_BY_THE_OMS: Mapping[str, str] = {"registry.cash": "oms.cash"}


def plan(event: Event, *, session_policy: bool = False, registry: bool | None = None) -> FlowPlan:
    """The steps a flow-starting ``event`` expects; ``session_policy``: whether its login has one;
    ``registry``: whether the deployment runs the registry (None: as ``XBUS_REGISTRY`` says)."""
    made = _plan(event, session_policy)
    if registry_runs() if registry is None else registry:
        return made
    steps = tuple(
        _KEPT_BY_THE_OMS.get(step, step)
        for step in made.steps
        if service_of(step) != "registry" or step in _KEPT_BY_THE_OMS
    )
    return replace(made, steps=steps)


def _plan(event: Event, session_policy: bool) -> FlowPlan:
    """The steps where the deployment runs the registry, which settles every exchange's fills."""
    kind = STARTERS[event.event_type]
    sessions = ("sessions.limits",) if session_policy else ()
    if isinstance(event, UserCreated):
        return FlowPlan(kind, event.login_id, ("authentication.login", "authorisation.permissions", *sessions))
    if isinstance(event, UserEnabled):
        return FlowPlan(kind, event.login_id, ("authentication.enable", "authorisation.enable", *sessions))
    if isinstance(event, OperatorRegistered):
        return _operator_plan(event)
    if isinstance(event, ExchangeAdded):
        return FlowPlan(kind, event.code, ("market_data.feed", "gateway.adapter", "registry.settlement"))
    return FlowPlan(kind, event.aggregate_id, _FIXED_STEPS[event.event_type])


def _operator_plan(event: OperatorRegistered) -> FlowPlan:
    steps = tuple(_OPERATOR_STEPS[system] for system in event.systems)
    manual: tuple[ManualStep, ...] = ()
    if OperatorSystem.PRODIGY in event.systems:
        exchanges = ", ".join(event.exchanges) or "its exchanges"
        manual = (
            ManualStep(
                step=_OPERATOR_STEPS[OperatorSystem.PRODIGY],
                system=OperatorSystem.PRODIGY,
                operator_id=event.operator_id,
                instructions=(
                    f"Register operator {event.operator_id} (login {event.login_id}) in Prodigy for {exchanges}; "
                    "Prodigy has no operator API. Then publish ManualActionCompleted with this flow id and "
                    "step prodigy.operator."
                ),
            ),
        )
    return FlowPlan(FlowKind.OPERATOR, event.operator_id, steps, manual)


#: The step each follow-up event completes (PermissionsGranted: see :func:`step_completed_by`).
COMPLETES: Mapping[str, str] = {
    LoginProvisioned.event_type: "authentication.login",
    PermissionsGranted.event_type: "authorisation.permissions",
    SessionLimitsAssigned.event_type: "sessions.limits",
    SessionLimitsAssignedV1.event_type: "sessions.limits",  # retired, still read (replays)
    LoginDisabled.event_type: "authentication.disable",
    LoginEnabled.event_type: "authentication.enable",
    AccessRevoked.event_type: "authorisation.revoke",
    SessionsEnded.event_type: "sessions.end",
    OmsOperatorRegistered.event_type: "oms.operator",
    RegistryOperatorRegistered.event_type: "registry.operator",
    AccountAccessGranted.event_type: "authorisation.access",
    OmsAccountProvisioned.event_type: "oms.account",
    RegistryAccountOpened.event_type: "registry.account",
    OmsAccountStateChanged.event_type: "oms.account_state",
    RegistryAccountStateChanged.event_type: "registry.account_state",
    CashMovementApplied.event_type: "registry.cash",
    OmsCashMovementApplied.event_type: "oms.cash",
    MarketDataFeedStarted.event_type: "market_data.feed",
    OmsAdapterRegistered.event_type: "gateway.adapter",
    RegistrySettlementEnabled.event_type: "registry.settlement",
    MarketDataFeedStopped.event_type: "market_data.feed_stop",
    OmsAdapterStopped.event_type: "gateway.adapter_stop",
}


def step_of(report: Report, started_by: str) -> str | None:
    """The step ``report`` is about, in a flow started by an event of type ``started_by``."""
    if report.step is not None:
        return report.step
    if report.event_type == PermissionsGranted.event_type and started_by == UserEnabled.event_type:
        return "authorisation.enable"  # the same event re-grants what a disabled login had
    return COMPLETES.get(report.event_type)


def manual_refusal(
    flow_id: str, step: str, state: StepState | None, asked_of: str | None, operator_id: str
) -> str | None:
    """Why a ``ManualActionCompleted`` of ``operator_id`` cannot close ``step`` of flow ``flow_id``;
    None when it closes it, or closed it already (a person who sends it twice changes nothing).

    ``state`` is the step's (None: the flow does not expect it) and ``asked_of`` the operator its
    ``ManualActionRequired`` named (None: a step a service takes, which closes on its own report).
    A person closes only a step waiting for a person, and only the one asked of them.
    """
    if state is None:
        return f"flow {flow_id} has no step {step}"
    if asked_of is None:
        return (
            f"step {step} of flow {flow_id} is taken by the {service_of(step)} service, not by a person: "
            "it closes on that service's own report"
        )
    if operator_id != asked_of:
        return f"step {step} of flow {flow_id} was asked of operator {asked_of}, not {operator_id}"
    if state not in (StepState.MANUAL, StepState.DONE):
        return f"step {step} of flow {flow_id} is {state.value}"
    return None


def started(flow_id: str, plan: FlowPlan, cause: Envelope) -> Flow:
    """The flow ``cause`` starts: every step of ``plan`` expected, except a manual one, asked of its
    operator from the start, with the instructions as its reason."""
    manual = {m.step: m for m in plan.manual}
    steps = tuple(
        Step(step, position, service_of(step), StepState.EXPECTED)
        if (asked := manual.get(step)) is None
        else Step(step, position, service_of(step), StepState.MANUAL, cause.time, asked.instructions, asked.operator_id)
        for position, step in enumerate(plan.steps)
    )
    return Flow(flow_id, plan.kind, plan.entity_id, cause.type, cause.correlation_id, cause.time, FlowState.OPEN, steps)


def reported(flow: Flow, report: Report) -> Flow:
    """``flow`` as ``report`` leaves it: ``flow`` itself when the report changes nothing.

    A refusal fails its step (one the flow did not expect is added, last, so that the refusal is
    shown) and the flow, if it is open: a refusal always fails its flow. Done closes an open step
    and clears its reason; waiting holds an expected or waiting step, with the reason. Any other
    report changes nothing: one about a step the flow does not expect (the compensations that
    follow a failed opening carry its flow id), or about a step closed already (a failed step
    stays failed, a done one done).
    """
    name = step_of(report, flow.started_by)
    if name is None:
        return flow
    step = flow.step(name)
    if report.outcome is StepState.FAILED:
        if step is None:
            position = max((known.position + 1 for known in flow.steps), default=0)
            step = Step(name, position, report.service or service_of(name), StepState.FAILED)
        failed = replace(step, state=StepState.FAILED, updated_at=report.time, reason=report.reason or "refused")
        return _with_step(flow, failed, FlowState.FAILED if flow.state is FlowState.OPEN else flow.state)
    if step is None:
        return flow
    if report.outcome is StepState.DONE and step.state in OPEN_STEPS:
        return _with_step(flow, replace(step, state=StepState.DONE, updated_at=report.time, reason=None))
    if report.outcome is StepState.WAITING and step.state in (StepState.EXPECTED, StepState.WAITING):
        waiting = replace(step, state=StepState.WAITING, updated_at=report.time, reason=report.reason or "waiting")
        return _with_step(flow, waiting)
    return flow


def _with_step(flow: Flow, step: Step, state: FlowState | None = None) -> Flow:
    """``flow`` with ``step`` in place of the step of its name (or added last), and in ``state``."""
    steps = tuple(step if known.name == step.name else known for known in flow.steps)
    if flow.step(step.name) is None:
        steps += (step,)
    return replace(flow, steps=steps, state=state or flow.state)


def completes(flow: Flow) -> bool:
    """An open flow is complete once every step it expects is done."""
    return flow.state is FlowState.OPEN and all(step.state is StepState.DONE for step in flow.steps)


#: The event that completes an opening, by the event type that starts it, and its field naming the entity.
_OPENED: Mapping[str, tuple[type[Event], str]] = {
    UserCreated.event_type: (UserProvisioned, "login_id"),
    OperatorRegistered.event_type: (OperatorProvisioned, "operator_id"),
    TradingAccountOpened.event_type: (TradingAccountProvisioned, "account_id"),
    ExchangeAdded.event_type: (ExchangeOnboarded, "exchange"),
}


def outcome(flow_id: str, kind: FlowKind, entity_id: str, started_by: str, steps: tuple[str, ...]) -> Event:
    """The event that says a flow is complete: the opening's own, ``ChangeApplied`` for a change."""
    if started_by in _OPENED:
        completed, entity_field = _OPENED[started_by]
        return completed.model_validate({"flow_id": flow_id, entity_field: entity_id, "steps": steps})
    return ChangeApplied(flow_id=flow_id, kind=kind, entity_id=entity_id, change=started_by, steps=steps)
