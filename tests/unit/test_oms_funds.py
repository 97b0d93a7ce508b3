"""The OMS as the book of record of a deployment without the registry (``XBUS_REGISTRY=false``):
deposits, withdrawals and closings on its own positions, on a FakeUnitOfWork over in-memory books.

plxtra/xosp ``Config/Tasks/account-deposit.ps1``: "If there's no Foundry for asset tracking, we can
submit deposits into OMS directly" (``OMS2.Control Balance Transfer XOSP $OwnerCode $AccountCode
$Currency $Amount``); ``account-withdraw.ps1`` transfers ``-$Amount`` the same way, and with
``-OnlyWithBalance`` withdraws only when ``Balance + UnbookedTransactions`` covers the amount.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from consumers.oms.funds import held_described
from consumers.oms.funds_store import Positions
from consumers.oms.positions import CashPosition, HoldingPosition
from schemas.accounts import FundsDeposited, FundsWithdrawn, TradingAccountClosed, TradingAccountSuspended
from schemas.gateway import ExecutionKind
from schemas.money import money
from schemas.oms import AccountState, OmsAccountStateChanged, OmsCashMovementApplied
from schemas.provisioning import StepFailed
from schemas.types import PositiveMoney
from tests.support.memory_oms import MemoryBooks
from tests.unit.test_oms_handlers import ACCOUNT, INSTRUMENT, handle, opened, placed, report, trading


def deposit(amount: str, reference: str = "D1") -> FundsDeposited:
    return FundsDeposited(
        account_id=ACCOUNT, amount=PositiveMoney(amount=Decimal(amount), currency="AUD"), reference=reference
    )


def withdrawal(amount: str, reference: str = "W1") -> FundsWithdrawn:
    return FundsWithdrawn(
        account_id=ACCOUNT, amount=PositiveMoney(amount=Decimal(amount), currency="AUD"), reference=reference
    )


def closing() -> TradingAccountClosed:
    return TradingAccountClosed(account_id=ACCOUNT, reason="closed by the owner")


async def opened_books() -> MemoryBooks:
    books = MemoryBooks()
    await handle(opened(), books)
    return books


def booked(books: MemoryBooks) -> Decimal:
    return books.cash_positions[(ACCOUNT, "AUD")].balance


def refusal(unit: object) -> StepFailed:
    [failed] = unit.events  # type: ignore[attr-defined]
    assert isinstance(failed, StepFailed), failed
    return failed


async def test_with_the_registry_the_oms_leaves_deposits_withdrawals_and_closings_to_it() -> None:
    """With the registry they "flow through to OMS automatically" (its CashMovementApplied and
    RegistryAccountStateChanged, test_oms_handlers.py): taken here as well, they would count twice."""
    books = await opened_books()
    for event in (deposit("100"), withdrawal("50"), closing()):
        unit = await handle(event, books)
        assert (unit.events, unit.locked) == ([], [])
    assert books.cash_positions == {} and books.cash_movements == []
    assert books.accounts[ACCOUNT].state is AccountState.ACTIVE


@pytest.mark.usefixtures("without_registry")
async def test_a_deposit_is_booked_and_reported_with_the_balance() -> None:
    books = await opened_books()
    await handle(deposit("100", "D1"), books)
    unit = await handle(deposit("25.50", "D2"), books)
    assert unit.events == [
        OmsCashMovementApplied(
            flow_id=unit.flow_id,
            account_id=ACCOUNT,
            delta=money(Decimal("25.50"), "AUD"),
            balance=money(Decimal("125.50"), "AUD"),
            reference="D2",
        )
    ]
    assert booked(books) == Decimal("125.50") and unit.locked == [f"account:{ACCOUNT}"]
    assert [m.delta for m in books.cash_movements] == [Decimal(100), Decimal("25.50")]


@pytest.mark.usefixtures("without_registry")
async def test_a_bank_transfer_is_credited_once() -> None:
    books = await opened_books()
    first = await handle(deposit("100", "BANK-7"), books)
    failed = refusal(await handle(deposit("100", "BANK-7"), books))
    assert failed.step == "oms.cash" and failed.service == "oms"
    assert f"credited under bank reference BANK-7 already (100.00 AUD, flow {first.flow_id}" in failed.reason
    assert booked(books) == Decimal(100)
    # a withdrawal may reuse a reference: only credits are unique
    assert isinstance((await handle(withdrawal("10", "BANK-7"), books)).events[0], OmsCashMovementApplied)


@pytest.mark.usefixtures("without_registry")
async def test_a_withdrawal_takes_only_what_open_buys_do_not_reserve() -> None:
    """Available = Balance − UnfilledBuys (plxtra/oms-api OMS2.md's cash position)."""
    books = await trading(cash="0")
    await handle(deposit("1000"), books)
    await handle(placed("buy", quantity=50), books)  # reserves 500.00
    failed = refusal(await handle(withdrawal("500.01"), books))
    assert failed.step == "oms.cash"
    assert failed.reason == (
        "withdrawal of 500.01 AUD (reference W1) exceeds available cash 500.00 AUD (booked less what open buys reserve)"
    )
    [moved] = (await handle(withdrawal("500", "W2"), books)).events
    assert isinstance(moved, OmsCashMovementApplied) and moved.balance == money(Decimal(500), "AUD")
    assert books.cash_positions[(ACCOUNT, "AUD")].available == Decimal(0)


@pytest.mark.usefixtures("without_registry")
async def test_a_withdrawal_from_an_account_that_never_had_the_currency_is_refused() -> None:
    books = await opened_books()
    failed = refusal(await handle(withdrawal("1"), books))
    assert "exceeds available cash 0.00 AUD" in failed.reason


@pytest.mark.usefixtures("without_registry")
async def test_a_suspended_account_takes_deposits_but_gives_nothing_back() -> None:
    books = await opened_books()
    await handle(deposit("100"), books)
    await handle(TradingAccountSuspended(account_id=ACCOUNT, reason="fraud check"), books)
    assert isinstance((await handle(deposit("5", "D2"), books)).events[0], OmsCashMovementApplied)
    failed = refusal(await handle(withdrawal("5"), books))
    assert failed.reason == (
        f"trading account {ACCOUNT} is suspended: withdrawal of 5.00 AUD (reference W1) refused "
        "(deposits are still taken)"
    )
    assert booked(books) == Decimal(105)


@pytest.mark.usefixtures("without_registry")
@pytest.mark.parametrize("event", [deposit("5"), withdrawal("5")], ids=["deposit", "withdrawal"])
async def test_an_unknown_or_closed_account_takes_no_cash(event: FundsDeposited | FundsWithdrawn) -> None:
    books = MemoryBooks()
    assert refusal(await handle(event, books)).reason.startswith(f"trading account {ACCOUNT} is unknown to the OMS: ")
    await handle(opened(), books)
    await handle(closing(), books)
    assert refusal(await handle(event, books)).reason.startswith(f"trading account {ACCOUNT} is closed: ")
    assert books.cash_movements == []


@pytest.mark.usefixtures("without_registry")
async def test_an_empty_account_closes_and_is_reported_for_each_closing() -> None:
    books = await opened_books()
    await handle(deposit("100"), books)
    await handle(withdrawal("100"), books)
    unit = await handle(closing(), books)
    assert unit.events == [
        OmsAccountStateChanged(
            flow_id=unit.flow_id, account_id=ACCOUNT, state=AccountState.CLOSED, reason="closed by the owner"
        )
    ]
    assert books.accounts[ACCOUNT].state is AccountState.CLOSED and unit.locked == [f"account:{ACCOUNT}"]
    again = await handle(closing(), books)
    assert [type(event) for event in again.events] == [OmsAccountStateChanged]


@pytest.mark.usefixtures("without_registry")
async def test_an_account_holding_cash_shares_or_an_open_buy_is_not_closed() -> None:
    books = await trading(cash="0")
    await handle(deposit("1000"), books)
    await handle(placed("buy", quantity=50), books)
    await handle(report(ExecutionKind.FILLED, "buy", fill=(20, "10.00"), leaves=30), books)
    failed = refusal(await handle(closing(), books))
    assert failed.step == "oms.account_state"
    assert failed.reason == (
        f"trading account {ACCOUNT} cannot be closed: it still holds 800.00 AUD, 300.00 AUD reserved, "
        f"20 {INSTRUMENT}; withdraw the cash and transfer the holdings first"
    )
    assert books.accounts[ACCOUNT].state is AccountState.ACTIVE


@pytest.mark.usefixtures("without_registry")
async def test_closing_an_unknown_account_is_refused() -> None:
    failed = refusal(await handle(closing(), MemoryBooks()))
    assert (failed.step, failed.reason) == ("oms.account_state", f"trading account {ACCOUNT} is unknown to the OMS")


def test_what_keeps_an_account_open_is_named_and_nothing_is_an_empty_account() -> None:
    empty = Positions((CashPosition("AUD"),), (HoldingPosition(INSTRUMENT),))
    assert held_described(empty) == ""
    owing = Positions((CashPosition("AUD", Decimal("-5")), CashPosition("USD", Decimal(0), Decimal(3))), ())
    assert held_described(owing) == "-5.00 AUD, 3.00 USD reserved"


@pytest.mark.usefixtures("without_registry")
async def test_a_suspended_account_holding_cash_is_not_closed_and_a_closed_one_is_reported_closed_again() -> None:
    books = await opened_books()
    await handle(deposit("100"), books)
    await handle(TradingAccountSuspended(account_id=ACCOUNT, reason="fraud check"), books)
    assert refusal(await handle(closing(), books)).step == "oms.account_state"
    books.cash_positions.clear()  # what a person settled by hand
    await handle(closing(), books)
    books.cash_positions[(ACCOUNT, "AUD")] = CashPosition("AUD", Decimal(1))  # a late fill's proceeds
    again = await handle(closing(), books)
    assert [type(event) for event in again.events] == [OmsAccountStateChanged]


@pytest.mark.usefixtures("without_registry")
async def test_a_refusal_naming_many_holdings_is_cut_to_what_a_step_report_carries() -> None:
    books = await opened_books()
    for n in range(200):
        books.holdings[(ACCOUNT, f"XS{n:03d}.XSUT")] = HoldingPosition(f"XS{n:03d}.XSUT", 1)
    reason = refusal(await handle(closing(), books)).reason
    held = ", ".join(f"1 XS{n:03d}.XSUT" for n in range(200))
    assert len(reason) == 2000 and reason.endswith("…")
    assert f"trading account {ACCOUNT} cannot be closed: it still holds {held}".startswith(reason[:-1])
