"""The tracker's plan of every flow in both kinds of deployment: with the registry, and without it
(``XBUS_REGISTRY=false``), where no flow waits for the registry and the OMS keeps the book of
record (issue 19, item 8).

plxtra/xosp ``XOSP-Configure.ps1`` writes ``UsingFoundry = $false`` for the whole deployment into
``task-params.json``, and ``Config/Tasks/account-deposit.ps1`` then says: "If there's no Foundry
for asset tracking, we can submit deposits into OMS directly" (``account-withdraw.ps1`` likewise);
with Foundry, "Deposits into Foundry will flow through to OMS automatically".
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from consumers.provisioning.flows import Report, StepState, plan, step_of
from infrastructure import deployment
from schemas import Event
from schemas.accounts import (
    AccountLoginLinked,
    AccountLoginUnlinked,
    FundsDeposited,
    FundsWithdrawn,
    Investor,
    TradingAccountClosed,
    TradingAccountOpened,
    TradingAccountSuspended,
)
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended
from schemas.oms import OmsCashMovementApplied
from schemas.operators import OperatorRegistered
from schemas.registry import CashMovementApplied
from schemas.types import AccountRight, OperatorSystem, PositiveMoney
from schemas.users import UserCreated, UserDisabled, UserEnabled
from xbus.trading import prodigy_exchange


def old_flag_off(added: ExchangeAdded) -> ExchangeAdded:
    """``added`` as an older event of an exchange that did not settle through the registry (still read)."""
    return added.model_copy(update={"settles_through_registry": False})


ACCOUNT = "XS:0001"
AUD = PositiveMoney(amount=Decimal("100"), currency="AUD")
OPENED = TradingAccountOpened(
    account_id=ACCOUNT,
    owner="XS",
    name="Pat's account",
    classification="Retail",
    default_currency="AUD",
    investor=Investor(investor_id="inv-1", full_name="Pat Kim", country="AU", type="individual"),
)
OPERATOR = OperatorRegistered(
    operator_id="op1",
    login_id="u1",
    systems=(OperatorSystem.OMS, OperatorSystem.REGISTRY, OperatorSystem.PRODIGY),
)

#: Every flow starter: (event, session policy, steps with the registry, steps without it).
TABLE: list[tuple[Event, bool, tuple[str, ...], tuple[str, ...]]] = [
    (
        UserCreated(login_id="u1", username="pat", email="pat@example.com", display_name="Pat"),
        True,
        ("authentication.login", "authorisation.permissions", "sessions.limits"),
        ("authentication.login", "authorisation.permissions", "sessions.limits"),
    ),
    (
        UserDisabled(login_id="u1", reason="left"),
        False,
        ("authentication.disable", "authorisation.revoke", "sessions.end"),
        ("authentication.disable", "authorisation.revoke", "sessions.end"),
    ),
    (
        UserEnabled(login_id="u1"),
        False,
        ("authentication.enable", "authorisation.enable"),
        ("authentication.enable", "authorisation.enable"),
    ),
    (
        OPERATOR,
        False,
        ("oms.operator", "registry.operator", "prodigy.operator"),
        ("oms.operator", "prodigy.operator"),
    ),
    (
        OPENED,
        False,
        ("authorisation.access", "oms.account", "registry.account"),
        ("authorisation.access", "oms.account"),
    ),
    (
        AccountLoginLinked(account_id=ACCOUNT, login_id="u1", rights=(AccountRight.VIEW,)),
        False,
        ("authorisation.access",),
        ("authorisation.access",),
    ),
    (
        AccountLoginUnlinked(account_id=ACCOUNT, login_id="u1"),
        False,
        ("authorisation.revoke",),
        ("authorisation.revoke",),
    ),
    (
        TradingAccountSuspended(account_id=ACCOUNT, reason="fraud check"),
        False,
        ("oms.account_state", "registry.account_state"),
        ("oms.account_state",),
    ),
    (
        TradingAccountClosed(account_id=ACCOUNT),
        False,
        ("registry.account_state", "oms.account_state", "authorisation.revoke"),
        ("oms.account_state", "authorisation.revoke"),
    ),
    (FundsDeposited(account_id=ACCOUNT, amount=AUD, reference="D1"), False, ("registry.cash",), ("oms.cash",)),
    (FundsWithdrawn(account_id=ACCOUNT, amount=AUD, reference="W1"), False, ("registry.cash",), ("oms.cash",)),
    (
        prodigy_exchange("XSX"),
        False,
        ("market_data.feed", "gateway.adapter", "registry.settlement"),
        ("market_data.feed", "gateway.adapter"),
    ),
    (
        # an older event's per-exchange flag is read and ignored: the deployment decides
        old_flag_off(prodigy_exchange("XSX")),
        False,
        ("market_data.feed", "gateway.adapter", "registry.settlement"),
        ("market_data.feed", "gateway.adapter"),
    ),
    (
        ExchangeSuspended(code="XSX", reason="halted"),
        False,
        ("market_data.feed_stop", "gateway.adapter_stop"),
        ("market_data.feed_stop", "gateway.adapter_stop"),
    ),
    (
        ExchangeRemoved(code="XSX"),
        False,
        ("market_data.feed_stop", "gateway.adapter_stop"),
        ("market_data.feed_stop", "gateway.adapter_stop"),
    ),
]
IDS = [f"{event.event_type}-{index}" for index, (event, *_) in enumerate(TABLE)]


@pytest.mark.parametrize(("event", "policy", "with_registry", "without"), TABLE, ids=IDS)
def test_each_flow_expects_the_steps_of_its_deployment(
    event: Event, policy: bool, with_registry: tuple[str, ...], without: tuple[str, ...]
) -> None:
    assert plan(event, session_policy=policy, registry=True).steps == with_registry
    assert plan(event, session_policy=policy, registry=False).steps == without


@pytest.mark.parametrize(("event", "policy", "with_registry", "without"), TABLE, ids=IDS)
def test_the_plan_follows_the_setting_when_not_told(
    event: Event,
    policy: bool,
    with_registry: tuple[str, ...],
    without: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """handlers.py asks for a plan without saying; the process's XBUS_REGISTRY decides."""
    assert plan(event, session_policy=policy).steps == with_registry
    monkeypatch.setenv("XBUS_REGISTRY", "false")
    deployment.forget()
    try:
        without_registry = plan(event, session_policy=policy)
    finally:
        monkeypatch.undo()
        deployment.forget()
    assert without_registry.steps == without
    assert without_registry.manual == plan(event, session_policy=policy).manual


def test_the_prodigy_step_stays_manual_without_the_registry() -> None:
    [manual] = plan(OPERATOR, registry=False).manual
    assert (manual.step, manual.operator_id) == ("prodigy.operator", "op1")


def test_the_book_of_record_reports_the_cash_step() -> None:
    at = dt.datetime.now(dt.UTC)
    for kind, step in ((CashMovementApplied, "registry.cash"), (OmsCashMovementApplied, "oms.cash")):
        report = Report("flow-1", "event-1", kind.event_type, StepState.DONE, at)
        assert step_of(report, FundsDeposited.event_type) == step
        assert step_of(report, FundsWithdrawn.event_type) == step
