"""The tracker's table of flows (docs/provisioning.md) as code: expected steps and what closes them."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from consumers.provisioning.flows import (
    COMPLETES,
    STARTERS,
    Report,
    StepState,
    manual_refusal,
    outcome,
    plan,
    step_of,
)
from consumers.provisioning.service import SERVICE
from schemas.accounts import TradingAccountClosed
from schemas.authorisation import PermissionsGranted
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended, Market, TradingHours
from schemas.gateway import OmsAdapterRegistered, OmsAdapterStopped
from schemas.market_data import MarketDataFeedStarted, MarketDataFeedStopped
from schemas.operators import OperatorRegistered
from schemas.provisioning import ChangeApplied, ExchangeOnboarded, FlowKind, UserProvisioned
from schemas.registry import RegistrySettlementEnabled
from schemas.types import OperatorSystem
from schemas.users import UserCreated, UserDisabled, UserEnabled


def report(event_type: str) -> Report:
    return Report("flow-1", "event-1", event_type, StepState.DONE, dt.datetime.now(dt.UTC))


def test_account_closing_expects_the_registry_first_then_oms_and_authorisation() -> None:
    closing = plan(TradingAccountClosed(account_id="XS:0001"))
    assert (closing.kind, closing.entity_id) == (FlowKind.ACCOUNT, "XS:0001")
    assert closing.steps == ("registry.account_state", "oms.account_state", "authorisation.revoke")


def test_operator_steps_follow_its_systems_and_prodigy_is_manual() -> None:
    operator = OperatorRegistered(
        operator_id="op1", login_id="u1", systems=(OperatorSystem.REGISTRY, OperatorSystem.PRODIGY)
    )
    made = plan(operator)
    assert made.steps == ("registry.operator", "prodigy.operator")
    [manual] = made.manual
    assert (manual.step, manual.system, manual.operator_id) == ("prodigy.operator", OperatorSystem.PRODIGY, "op1")


def test_permissions_granted_closes_the_step_its_flow_expects() -> None:
    granted = report(PermissionsGranted.event_type)
    assert step_of(granted, UserCreated.event_type) == "authorisation.permissions"
    assert step_of(granted, UserEnabled.event_type) == "authorisation.enable"


def test_every_starter_and_every_report_has_a_handler() -> None:
    assert set(STARTERS) | set(COMPLETES) <= set(SERVICE.by_type)


def test_openings_have_their_own_outcome_and_changes_share_one() -> None:
    assert isinstance(outcome("f", FlowKind.USER, "u1", UserCreated.event_type, ("a.b",)), UserProvisioned)
    change = outcome("f", FlowKind.USER, "u1", UserDisabled.event_type, ("a.b",))
    assert isinstance(change, ChangeApplied) and change.change == UserDisabled.event_type


def exchange(settles: bool) -> ExchangeAdded:
    market = Market(
        code="XSX",
        currency="AUD",
        time_zone="Australia/Sydney",
        trading_hours=TradingHours(open=dt.time(10), close=dt.time(16)),
    )
    return ExchangeAdded(
        code="XSX",
        name="XOSP Stock Exchange",
        markets=(market,),
        market_data_plugin="prodigy",
        oms_adapter="prodigy",
        settles_through_registry=settles,
    )


def test_exchange_onboarding_expects_the_registry_where_the_deployment_runs_it() -> None:
    settled = plan(exchange(settles=True), registry=True)
    assert (settled.kind, settled.entity_id) == (FlowKind.EXCHANGE, "XSX")
    assert settled.steps == ("market_data.feed", "gateway.adapter", "registry.settlement")
    assert plan(exchange(settles=False), registry=True).steps == settled.steps  # the old flag is ignored
    assert plan(exchange(settles=True), registry=False).steps == ("market_data.feed", "gateway.adapter")
    reports = (MarketDataFeedStarted, OmsAdapterRegistered, RegistrySettlementEnabled)
    assert [step_of(report(t.event_type), ExchangeAdded.event_type) for t in reports] == list(settled.steps)


def test_suspending_or_removing_an_exchange_stops_its_feed_and_adapter() -> None:
    for change in (ExchangeSuspended(code="XSX", reason="halted"), ExchangeRemoved(code="XSX")):
        stopping = plan(change)
        assert (stopping.kind, stopping.entity_id) == (FlowKind.EXCHANGE, "XSX")
        assert stopping.steps == ("market_data.feed_stop", "gateway.adapter_stop")
        stops = [step_of(report(t.event_type), change.event_type) for t in (MarketDataFeedStopped, OmsAdapterStopped)]
        assert stops == list(stopping.steps)


def test_an_onboarded_exchange_has_its_own_outcome() -> None:
    done = outcome("f", FlowKind.EXCHANGE, "XSX", ExchangeAdded.event_type, ("gateway.adapter",))
    assert done == ExchangeOnboarded(flow_id="f", exchange="XSX", steps=("gateway.adapter",))
    change = outcome("f", FlowKind.EXCHANGE, "XSX", ExchangeSuspended.event_type, ("gateway.adapter_stop",))
    assert isinstance(change, ChangeApplied) and change.kind == FlowKind.EXCHANGE


@pytest.mark.parametrize(
    ("step", "state", "asked_of", "operator_id", "refusal"),
    [
        ("prodigy.operator", StepState.MANUAL, "op1", "op1", None),
        ("prodigy.operator", StepState.DONE, "op1", "op1", None),  # sent again: nothing left to do, nothing wrong
        ("prodigy.operator", None, None, "op1", "flow f1 has no step prodigy.operator"),
        ("oms.operator", StepState.EXPECTED, None, "op1", "oms.operator of flow f1 is taken by the oms service"),
        ("oms.operator", StepState.DONE, None, "op1", "oms.operator of flow f1 is taken by the oms service"),
        ("prodigy.operator", StepState.MANUAL, "op1", "op2", "prodigy.operator of flow f1 was asked of operator op1"),
        ("prodigy.operator", StepState.DONE, "op1", "op2", "prodigy.operator of flow f1 was asked of operator op1"),
        ("prodigy.operator", StepState.FAILED, "op1", "op1", "prodigy.operator of flow f1 is failed"),
        ("prodigy.operator", StepState.WAITING, "op1", "op1", "prodigy.operator of flow f1 is waiting"),
    ],
)
def test_a_manual_action_closes_only_a_step_asked_of_its_operator(
    step: str, state: StepState | None, asked_of: str | None, operator_id: str, refusal: str | None
) -> None:
    refused = manual_refusal("f1", step, state, asked_of, operator_id)
    assert refused == refusal if refusal is None else refused is not None and refusal in refused


def test_the_prodigy_step_is_asked_of_the_operator_it_registers() -> None:
    operator = OperatorRegistered(operator_id="op7", login_id="u1", systems=(OperatorSystem.OMS,))
    assert plan(operator).manual == ()
    [manual] = plan(operator.model_copy(update={"systems": (OperatorSystem.PRODIGY,)})).manual
    assert manual.operator_id == "op7" and "op7" in manual.instructions
    assert "in Prodigy for its exchanges;" in manual.instructions
    [named] = plan(operator.model_copy(update={"systems": (OperatorSystem.PRODIGY,), "exchanges": ("XSX",)})).manual
    assert "in Prodigy for XSX;" in named.instructions


def test_a_user_expects_session_limits_only_when_told_it_has_a_policy() -> None:
    created = UserCreated(login_id="u1", username="u1", email="u1@example.com", display_name="U")
    assert plan(created).steps == ("authentication.login", "authorisation.permissions")
    assert plan(created, session_policy=True).steps[-1] == "sessions.limits"


def test_plans_manual_steps_and_reports_are_values_that_cannot_change() -> None:
    made = plan(OperatorRegistered(operator_id="op1", login_id="u1", systems=(OperatorSystem.PRODIGY,)))
    for value, field in ((made, "steps"), (made.manual[0], "operator_id"), (report("t"), "step")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, None)
