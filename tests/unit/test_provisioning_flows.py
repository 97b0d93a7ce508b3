"""The tracker's table of flows (docs/provisioning.md) as code: expected steps and what closes them."""

from __future__ import annotations

import datetime as dt

from consumers.provisioning.flows import COMPLETES, STARTERS, Report, StepState, outcome, plan, step_of
from consumers.provisioning.service import SERVICE
from schemas.accounts import TradingAccountClosed
from schemas.authorisation import PermissionsGranted
from schemas.operators import OperatorRegistered
from schemas.provisioning import ChangeApplied, FlowKind, UserProvisioned
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
    assert set(STARTERS) | set(COMPLETES) <= set(SERVICE.handlers)


def test_openings_have_their_own_outcome_and_changes_share_one() -> None:
    assert isinstance(outcome("f", FlowKind.USER, "u1", UserCreated.event_type, ("a.b",)), UserProvisioned)
    change = outcome("f", FlowKind.USER, "u1", UserDisabled.event_type, ("a.b",))
    assert isinstance(change, ChangeApplied) and change.change == UserDisabled.event_type
