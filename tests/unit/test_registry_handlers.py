"""The Foundry Registry's rules, on a FakeUnitOfWork over an in-memory ledger: who owns an account,
what cash may move in and out of it and in what state, which fills it settles and how, and what a
failed opening leaves behind (the arithmetic alone is in test_registry_ledger_*.py; the SQL, its
constraints and the runtime are proven on the real stack in test_registry*.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from consumers.registry.service import SERVICE
from consumers.registry.store import Ledger
from consumers.runtime import DomainError, FakeUnitOfWork, MissingPrerequisite
from schemas import Event
from schemas.accounts import (
    FundsDeposited,
    FundsWithdrawn,
    Investor,
    TradingAccountClosed,
    TradingAccountOpened,
    TradingAccountSuspended,
)
from schemas.exchanges import ExchangeUpdated
from schemas.gateway import ExecutionKind, ExecutionReported
from schemas.money import money
from schemas.oms import AccountState
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.provisioning import FlowKind, ProvisioningFailed, StepFailed
from schemas.registry import (
    CashMovementApplied,
    RegistryAccountOpened,
    RegistryAccountStateChanged,
    RegistryOperatorRegistered,
    RegistrySettlementEnabled,
    SettlementApplied,
)
from schemas.types import OperatorSystem, OrderSide, PositiveMoney
from tests.support.memory_registry import MemoryLedger
from xbus.trading import prodigy_exchange

ACCOUNT = "XS:acct1"
INVESTOR = Investor(investor_id="inv-1", full_name="Pat Kim", country="AU", type="individual")


async def handle(event: Event, ledger: MemoryLedger) -> FakeUnitOfWork[Ledger]:
    unit: FakeUnitOfWork[Ledger] = FakeUnitOfWork.handling(event, ledger, service="registry")
    await SERVICE.by_type[event.event_type](event, unit)
    return unit


def opened(investor: Investor = INVESTOR, account_id: str = ACCOUNT) -> TradingAccountOpened:
    return TradingAccountOpened(
        account_id=account_id,
        owner="XS",
        name="Pat's account",
        classification="Retail",
        default_currency="AUD",
        investor=investor,
    )


def deposit(amount: str, reference: str = "D1") -> FundsDeposited:
    return FundsDeposited(
        account_id=ACCOUNT, amount=PositiveMoney(amount=Decimal(amount), currency="AUD"), reference=reference
    )


def withdrawal(amount: str) -> FundsWithdrawn:
    return FundsWithdrawn(
        account_id=ACCOUNT, amount=PositiveMoney(amount=Decimal(amount), currency="AUD"), reference="W1"
    )


def fill(side: OrderSide, quantity: int, price: str, trade: str = "T1", *, settles: bool = True) -> ExecutionReported:
    return ExecutionReported(
        exchange="XSUT",
        order_id=f"o-{trade}",
        account_id=ACCOUNT,
        instrument="XS01.XSUT",
        side=side,
        kind=ExecutionKind.FILLED,
        currency="AUD",
        settles_through_registry=settles,
        fill_quantity=quantity,
        fill_price=Decimal(price),
        venue_trade_id=trade,
        cumulative_quantity=quantity,
        leaves_quantity=0,
    )


async def funded(amount: str = "1000") -> MemoryLedger:
    ledger = MemoryLedger()
    await handle(opened(), ledger)
    await handle(deposit(amount), ledger)
    return ledger


def failed_step(unit: FakeUnitOfWork[Ledger]) -> StepFailed:
    [failed] = unit.events
    assert isinstance(failed, StepFailed), unit.events
    return failed


# --- accounts -------------------------------------------------------------------------------


async def test_an_opening_records_the_investor_and_an_active_account_with_zero_cash() -> None:
    ledger = MemoryLedger()
    unit = await handle(opened(), ledger)
    assert unit.events == [
        RegistryAccountOpened(flow_id=unit.cause.id, account_id=ACCOUNT, investor_id="inv-1", currency="AUD")
    ]
    assert ledger.accounts[ACCOUNT].state is AccountState.ACTIVE
    assert (ledger.investors["inv-1"], ledger.cash[(ACCOUNT, "AUD")]) == (INVESTOR, Decimal(0))
    assert unit.locked == [f"account:{ACCOUNT}"]


async def test_an_account_opened_twice_fails_the_step_and_changes_nothing() -> None:
    ledger = MemoryLedger()
    await handle(opened(), ledger)
    failed = failed_step(await handle(opened(), ledger))
    assert failed.step == "registry.account" and "already in the registry" in failed.reason


async def test_an_opening_that_names_someone_else_under_a_recorded_investor_id_is_refused() -> None:
    ledger = MemoryLedger()
    await handle(opened(), ledger)
    other = INVESTOR.model_copy(update={"full_name": "Sam Lee"})
    failed = failed_step(await handle(opened(other, account_id="XS:acct2"), ledger))
    assert "full name 'Pat Kim' (the opening says 'Sam Lee')" in failed.reason
    assert "XS:acct2" not in ledger.accounts


async def test_a_second_account_of_the_same_investor_fills_in_a_missing_pii_hash() -> None:
    ledger = MemoryLedger()
    await handle(opened(), ledger)
    hashed = INVESTOR.model_copy(update={"pii_hash": "a" * 64})
    await handle(opened(hashed, account_id="XS:acct2"), ledger)
    assert ledger.investors["inv-1"].pii_hash == "a" * 64 and "XS:acct2" in ledger.accounts


async def test_another_pii_hash_under_the_same_investor_id_is_someone_else_and_the_same_one_is_not() -> None:
    ledger = MemoryLedger()
    await handle(opened(INVESTOR.model_copy(update={"pii_hash": "a" * 64})), ledger)
    other = INVESTOR.model_copy(update={"pii_hash": "b" * 64})
    assert "another PII hash" in failed_step(await handle(opened(other, account_id="XS:acct2"), ledger)).reason
    same = INVESTOR.model_copy(update={"pii_hash": "a" * 64})
    assert [type(e) for e in (await handle(opened(same, account_id="XS:acct3"), ledger)).events] == [
        RegistryAccountOpened
    ]


# --- cash -----------------------------------------------------------------------------------


async def test_a_deposit_is_booked_on_settled_cash_and_reported_with_the_new_balance() -> None:
    ledger = await funded("1000")
    unit = await handle(deposit("250.50", "D2"), ledger)
    assert unit.events == [
        CashMovementApplied(
            flow_id=unit.cause.id,
            account_id=ACCOUNT,
            delta=money(Decimal("250.50"), "AUD"),
            balance=money(Decimal("1250.50"), "AUD"),
            reference="D2",
        )
    ]
    assert ledger.cash[(ACCOUNT, "AUD")] == Decimal("1250.50")
    assert [m.delta for m in ledger.movements] == [Decimal(1000), Decimal("250.50")]


async def test_a_withdrawal_beyond_settled_cash_is_refused_and_moves_nothing() -> None:
    ledger = await funded("100")
    failed = failed_step(await handle(withdrawal("100.01"), ledger))
    assert failed.step == "registry.cash"
    assert ledger.cash[(ACCOUNT, "AUD")] == Decimal(100) and len(ledger.movements) == 1


async def test_a_withdrawal_of_all_settled_cash_leaves_zero() -> None:
    ledger = await funded("100")
    [applied] = (await handle(withdrawal("100"), ledger)).events
    assert isinstance(applied, CashMovementApplied) and applied.balance == money(Decimal(0), "AUD")


async def test_a_suspended_account_takes_deposits_and_refuses_withdrawals() -> None:
    ledger = await funded("100")
    await handle(TradingAccountSuspended(account_id=ACCOUNT, reason="review"), ledger)
    assert [type(e) for e in (await handle(deposit("5", "D2"), ledger)).events] == [CashMovementApplied]
    failed = failed_step(await handle(withdrawal("1"), ledger))
    assert "is suspended" in failed.reason and ledger.cash[(ACCOUNT, "AUD")] == Decimal(105)


@pytest.mark.parametrize("movement", [deposit("5", "D2"), withdrawal("1")])
async def test_a_closed_or_unknown_account_refuses_every_movement(movement: Event) -> None:
    assert "is unknown to the registry" in failed_step(await handle(movement, MemoryLedger())).reason
    ledger = MemoryLedger()
    await handle(opened(), ledger)
    await handle(TradingAccountClosed(account_id=ACCOUNT), ledger)
    assert "is closed" in failed_step(await handle(movement, ledger)).reason
    assert ledger.movements == []


async def test_a_deposit_sent_again_under_a_new_event_id_is_refused_naming_the_earlier_credit() -> None:
    ledger = MemoryLedger()
    await handle(opened(), ledger)
    credited = await handle(deposit("1000", "BANK-7"), ledger)
    again = await handle(deposit("1000", "BANK-7"), ledger)
    failed = failed_step(again)
    assert (failed.flow_id, failed.step) == (again.flow_id, "registry.cash")
    when = f"{credited.cause.time.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    assert failed.reason == (
        f"account {ACCOUNT} was credited under bank reference BANK-7 already (1000.00 AUD, flow "
        f"{credited.flow_id}, {when}): deposit of 1000.00 AUD (reference BANK-7) refused; a transfer is credited once"
    )
    assert ledger.cash[(ACCOUNT, "AUD")] == Decimal(1000) and len(ledger.movements) == 1
    assert again.locked == [f"account:{ACCOUNT}"]


async def test_a_bank_reference_is_credited_once_per_account_and_a_withdrawals_reference_is_not_a_credit() -> None:
    ledger = await funded("100")  # reference D1
    await handle(opened(account_id="XS:acct2"), ledger)
    other = deposit("5").model_copy(update={"account_id": "XS:acct2"})
    assert [type(e) for e in (await handle(other, ledger)).events] == [CashMovementApplied]
    await handle(
        FundsWithdrawn(account_id=ACCOUNT, amount=PositiveMoney(amount=Decimal(1), currency="AUD"), reference="W9"),
        ledger,
    )
    assert [type(e) for e in (await handle(deposit("5", "W9"), ledger)).events] == [CashMovementApplied]
    assert [type(e) for e in (await handle(withdrawal("1"), ledger)).events] == [CashMovementApplied]
    assert [type(e) for e in (await handle(withdrawal("1"), ledger)).events] == [CashMovementApplied]
    assert ledger.cash[(ACCOUNT, "AUD")] == Decimal(102)


# --- account state --------------------------------------------------------------------------


async def test_suspending_reports_the_new_state_and_suspending_again_reports_it_again() -> None:
    ledger = await funded()
    assert ACCOUNT not in ledger.state_reasons
    for _ in range(2):
        unit = await handle(TradingAccountSuspended(account_id=ACCOUNT, reason="review"), ledger)
        assert unit.events == [
            RegistryAccountStateChanged(
                flow_id=unit.cause.id, account_id=ACCOUNT, state=AccountState.SUSPENDED, reason="review"
            )
        ]
        assert (ledger.accounts[ACCOUNT].state, ledger.state_reasons[ACCOUNT]) == (AccountState.SUSPENDED, "review")


async def test_an_account_that_holds_cash_or_shares_is_not_closed_and_says_what_it_holds() -> None:
    ledger = await funded("100")
    await handle(fill(OrderSide.BUY, 3, "10"), ledger)
    failed = failed_step(await handle(TradingAccountClosed(account_id=ACCOUNT, reason="bye"), ledger))
    assert "still holds settled cash 70.00 AUD and holdings 3 XS01.XSUT" in failed.reason
    assert ledger.accounts[ACCOUNT].state is AccountState.ACTIVE


async def test_an_empty_account_is_closed_and_a_closed_one_cannot_be_suspended() -> None:
    ledger = MemoryLedger()
    await handle(opened(), ledger)
    [closed] = (await handle(TradingAccountClosed(account_id=ACCOUNT, reason="bye"), ledger)).events
    assert isinstance(closed, RegistryAccountStateChanged)
    assert (closed.state, closed.reason, ledger.state_reasons[ACCOUNT]) == (AccountState.CLOSED, "bye", "bye")
    failed = failed_step(await handle(TradingAccountSuspended(account_id=ACCOUNT, reason="x"), ledger))
    assert failed.step == "registry.account_state" and "closed account cannot be suspended" in failed.reason


@pytest.mark.parametrize(
    "change", [TradingAccountSuspended(account_id=ACCOUNT, reason="x"), TradingAccountClosed(account_id=ACCOUNT)]
)
async def test_a_state_change_of_an_account_never_opened_fails_the_step(change: Event) -> None:
    assert failed_step(await handle(change, MemoryLedger())).step == "registry.account_state"


# --- operators ------------------------------------------------------------------------------


async def test_an_operator_given_the_registry_is_registered_and_one_without_it_is_not() -> None:
    ledger = MemoryLedger()
    given = OperatorRegistered(operator_id="op-1", login_id="pk-1", systems=(OperatorSystem.REGISTRY,))
    [registered] = (await handle(given, ledger)).events
    assert isinstance(registered, RegistryOperatorRegistered) and registered.operator_id == "op-1"
    without = OperatorRegistered(operator_id="op-2", login_id="pk-2", systems=(OperatorSystem.OMS,))
    assert (await handle(without, ledger)).events == [] and set(ledger.operators) == {"op-1"}


async def test_a_registration_again_without_the_registry_deregisters_the_operator_here() -> None:
    ledger = MemoryLedger()
    await handle(OperatorRegistered(operator_id="op-1", login_id="pk-1", systems=(OperatorSystem.REGISTRY,)), ledger)
    unit = await handle(OperatorRegistered(operator_id="op-1", login_id="pk-1", systems=(OperatorSystem.OMS,)), ledger)
    assert unit.events == []  # no registry.operator step in that flow
    assert ledger.operators["op-1"][2:] == (
        "deregistered",
        f"registered again by flow {unit.flow_id} without the registry",
    )
    given = OperatorRegistered(operator_id="op-1", login_id="pk-1", systems=(OperatorSystem.REGISTRY,))
    assert [type(e) for e in (await handle(given, ledger)).events] == [RegistryOperatorRegistered]
    assert ledger.operators["op-1"][2:] == ("registered", None)


async def test_a_deregistered_operator_is_kept_with_the_reason() -> None:
    ledger = MemoryLedger()
    await handle(OperatorRegistered(operator_id="op-1", login_id="pk-1", systems=(OperatorSystem.REGISTRY,)), ledger)
    unit = await handle(OperatorDeregistered(operator_id="op-1", reason="left"), ledger)
    assert unit.events == [] and ledger.operators["op-1"][2:] == ("deregistered", "left")


# --- settlement -----------------------------------------------------------------------------


@pytest.mark.parametrize("old_flag", [True, False])
async def test_every_exchange_settles_here_whatever_its_old_flag_says(old_flag: bool) -> None:
    """A deployment that runs the registry settles every exchange through it (XBUS_REGISTRY;
    plxtra/xosp account-deposit.ps1: "Deposits into Foundry will flow through to OMS
    automatically"): an ``ExchangeAdded`` of either flag enables settlement, and an update's flag,
    still read in old events, changes nothing."""
    ledger = MemoryLedger()
    unit = await handle(prodigy_exchange("XSUT").model_copy(update={"settles_through_registry": old_flag}), ledger)
    assert unit.events == [RegistrySettlementEnabled(flow_id=unit.flow_id, exchange="XSUT")]
    assert (await handle(ExchangeUpdated(code="XSUT", settles_through_registry=not old_flag), ledger)).events == []
    assert (await handle(ExchangeUpdated(code="XSUT", name="renamed"), ledger)).events == []
    assert ledger.exchanges["XSUT"] == unit.flow_id


async def test_a_buy_fill_pays_cash_adds_the_holding_and_is_reported_and_booked_once() -> None:
    ledger = await funded("1000")
    unit = await handle(fill(OrderSide.BUY, 10, "12.345"), ledger)
    [settled] = unit.events
    assert isinstance(settled, SettlementApplied)
    assert (settled.cash_delta, settled.cash_balance) == (
        money(Decimal("-123.45"), "AUD"),
        money(Decimal("876.55"), "AUD"),
    )
    assert (settled.holding_delta, settled.holding_after) == (10, 10)
    assert (ledger.cash[(ACCOUNT, "AUD")], ledger.holdings[(ACCOUNT, "XS01.XSUT")]) == (Decimal("876.55"), 10)
    assert (await handle(fill(OrderSide.BUY, 10, "12.345"), ledger)).events == []  # the same fill again
    assert ledger.cash[(ACCOUNT, "AUD")] == Decimal("876.55")


async def test_a_sell_fill_is_paid_and_delivers_the_holding() -> None:
    ledger = await funded("100")
    await handle(fill(OrderSide.BUY, 5, "10"), ledger)
    [settled] = (await handle(fill(OrderSide.SELL, 2, "11", trade="T2"), ledger)).events
    assert isinstance(settled, SettlementApplied) and settled.holding_after == 3
    assert ledger.cash[(ACCOUNT, "AUD")] == Decimal(72)


async def test_a_buy_beyond_settled_cash_is_booked_below_zero_not_refused() -> None:
    ledger = await funded("10")
    [settled] = (await handle(fill(OrderSide.BUY, 2, "10"), ledger)).events
    assert isinstance(settled, SettlementApplied) and ledger.cash[(ACCOUNT, "AUD")] == Decimal(-10)


async def test_a_sell_beyond_the_holding_cannot_be_settled_and_is_left_for_a_person() -> None:
    ledger = await funded("100")
    with pytest.raises(DomainError, match="cannot be settled"):
        await handle(fill(OrderSide.SELL, 1, "10"), ledger)
    assert ledger.settlements == {} and ledger.cash[(ACCOUNT, "AUD")] == Decimal(100)


async def test_a_fill_for_a_closed_account_is_left_for_a_person_and_one_for_an_unopened_account_waits() -> None:
    with pytest.raises(MissingPrerequisite) as waiting:
        await handle(fill(OrderSide.BUY, 1, "10"), MemoryLedger())
    assert waiting.value.waits_for == ACCOUNT
    ledger = MemoryLedger()
    await handle(opened(), ledger)
    await handle(TradingAccountClosed(account_id=ACCOUNT), ledger)
    with pytest.raises(DomainError, match="was closed in the registry") as refused:
        await handle(fill(OrderSide.BUY, 1, "10"), ledger)
    assert not isinstance(refused.value, MissingPrerequisite)


async def test_a_fill_stamped_as_not_settling_here_is_settled_all_the_same() -> None:
    """Issue 20, defect 1: a fill the registry skipped was booked by the OMS alone, and the books
    drifted apart. The flag, still on old reports, is ignored: the fill is settled."""
    ledger = await funded("100")
    [settled] = (await handle(fill(OrderSide.BUY, 1, "10", settles=False), ledger)).events
    assert isinstance(settled, SettlementApplied) and ledger.cash[(ACCOUNT, "AUD")] == Decimal(90)


async def test_reports_other_than_fills_move_nothing() -> None:
    ledger = await funded("100")
    acknowledged = fill(OrderSide.BUY, 1, "10").model_copy(
        update={"kind": ExecutionKind.ACKNOWLEDGED, "fill_quantity": 0, "fill_price": None, "venue_trade_id": None}
    )
    assert (await handle(acknowledged, ledger)).events == []
    assert ledger.settlements == {} and ledger.cash[(ACCOUNT, "AUD")] == Decimal(100)


# --- compensation ---------------------------------------------------------------------------


def failure(flow_id: str, service: str = "oms") -> ProvisioningFailed:
    return ProvisioningFailed(
        flow_id=flow_id,
        kind=FlowKind.ACCOUNT,
        entity_id=ACCOUNT,
        service=service,
        step=f"{service}.account",
        reason="no",
    )


async def test_an_opening_that_failed_elsewhere_is_undone_with_the_failed_flows_id() -> None:
    ledger = MemoryLedger()
    flow_id = (await handle(opened(), ledger)).cause.id
    [closed] = (await handle(failure(flow_id), ledger)).events
    assert isinstance(closed, RegistryAccountStateChanged)
    assert (closed.flow_id, closed.state, closed.reason) == (
        flow_id,
        AccountState.CLOSED,
        "opening failed: oms.account: no",
    )
    assert ledger.accounts[ACCOUNT].state is AccountState.CLOSED


async def test_a_failure_that_arrives_before_its_opening_undoes_the_opening_as_it_is_applied() -> None:
    ledger = MemoryLedger()
    opening: FakeUnitOfWork[Ledger] = FakeUnitOfWork.handling(opened(), ledger, service="registry")
    await handle(failure(opening.cause.id), ledger)
    await SERVICE.by_type[opening.cause.type](opened(), opening)
    assert [type(e) for e in opening.events] == [RegistryAccountOpened, RegistryAccountStateChanged]
    assert ledger.accounts[ACCOUNT].state is AccountState.CLOSED and ledger.failed_openings == {}
    closed = opening.events[1]
    assert isinstance(closed, RegistryAccountStateChanged) and closed.reason == "opening failed: oms.account: no"


async def test_a_failure_reported_again_after_the_undo_changes_nothing() -> None:
    ledger = MemoryLedger()
    flow_id = (await handle(opened(), ledger)).cause.id
    await handle(failure(flow_id), ledger)
    assert (await handle(failure(flow_id), ledger)).events == []


async def test_a_long_failure_reason_is_cut_to_what_the_state_change_carries() -> None:
    ledger = MemoryLedger()
    flow_id = (await handle(opened(), ledger)).cause.id
    [closed] = (await handle(failure(flow_id).model_copy(update={"reason": "x" * 500}), ledger)).events
    assert isinstance(closed, RegistryAccountStateChanged)
    assert closed.reason is not None and len(closed.reason) == 200 and closed.reason.endswith("x…")


async def test_an_opening_that_already_holds_money_is_not_undone_but_reported_for_a_person() -> None:
    ledger = MemoryLedger()
    flow_id = (await handle(opened(), ledger)).cause.id
    await handle(deposit("50"), ledger)
    failed = failed_step(await handle(failure(flow_id), ledger))
    assert (failed.flow_id, failed.step) == (flow_id, "registry.compensation") and "50.00 AUD" in failed.reason
    assert ledger.accounts[ACCOUNT].state is AccountState.ACTIVE


async def test_a_failure_of_the_registrys_own_step_or_of_another_flow_kind_undoes_nothing() -> None:
    ledger = MemoryLedger()
    flow_id = (await handle(opened(), ledger)).cause.id
    assert (await handle(failure(flow_id, service="registry"), ledger)).events == []
    of_our_step = failure(flow_id).model_copy(update={"step": "registry.account"})
    assert (await handle(of_our_step, ledger)).events == []
    other_kind = failure(flow_id).model_copy(update={"kind": FlowKind.USER})
    assert (await handle(other_kind, ledger)).events == []
    assert ledger.accounts[ACCOUNT].state is AccountState.ACTIVE
