"""The OMS's rules, on a FakeUnitOfWork over in-memory books: operators and accounts as provisioning
opens, suspends and closes them (the registry's closures and failed openings, early or late), the
cash the registry moves, logins' trade rights, exchanges and their adapters, orders vetted against
all of that and accepted (with what they reserve) or rejected, cancels, and the execution reports
that move an order's state, book its fills into the positions and complete it. Vetting's rules one
by one are in test_oms_vetting.py; the SQL, its constraints and the runtime are proven on the real
stack in test_oms*.py."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import structlog
from aiokafka import ConsumerRecord

import schemas
from consumers.oms.account_store import Standing
from consumers.oms.orders import OrderState
from consumers.oms.positions import CashPosition, HoldingPosition
from consumers.oms.service import SERVICE
from consumers.oms.store import OmsBooks
from consumers.oms.vetting import ExchangeState
from consumers.runtime import DomainError, FakeUnitOfWork, MissingPrerequisite
from infrastructure.catalogue import Catalogue
from infrastructure.reader import decode
from infrastructure.settings import PROJECT_ROOT
from schemas import Envelope, Event
from schemas.accounts import (
    AccountLogin,
    Investor,
    TradingAccountOpened,
    TradingAccountSuspended,
    TradingAccountUpdated,
    VettingLimits,
)
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted, RevokedScope
from schemas.exchanges import ExchangeRemoved, ExchangeSuspended, ExchangeUpdated, Market
from schemas.gateway import (
    ExecutionKind,
    ExecutionReported,
    InstrumentPrice,
    OmsAdapterRegistered,
    OmsAdapterStopped,
    TradeType,
)
from schemas.money import money
from schemas.oms import (
    AccountState,
    OmsAccountProvisioned,
    OmsAccountStateChanged,
    OmsOperatorRegistered,
    OrderAccepted,
    OrderCancelRejected,
    OrderCancelRouted,
    OrderCompleted,
    OrderOutcome,
    OrderRejected,
    OrderRejectedV1,
    OrderRouted,
    RejectionCode,
    RejectionCodeV1,
    RequestStatus,
    VettingRule,
)
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.orders import OrderCancelRequested, OrderPlaced
from schemas.provisioning import FlowKind, ProvisioningFailed, StepFailed, StepWaiting
from schemas.registry import CashMovementApplied, RegistryAccountStateChanged
from schemas.types import (
    AccountRight,
    InvestorType,
    Money,
    OmsFeature,
    OperatorSystem,
    OrderLifetime,
    OrderSide,
    OrderType,
    PositiveMoney,
)
from tests.support.memory_oms import MemoryBooks
from xbus.trading import prodigy_exchange

ACCOUNT = "XS:acct1"
LOGIN = "login-1"
EXCHANGE = "XSUT"
INSTRUMENT = "XS01.XSUT"
OTHER_INSTRUMENT = "XS02.XSUT"

E = TypeVar("E", bound=Event)


async def handle(event: Event, books: MemoryBooks) -> FakeUnitOfWork[OmsBooks]:
    unit: FakeUnitOfWork[OmsBooks] = FakeUnitOfWork.handling(event, books, service="oms")
    await SERVICE.by_type[event.event_type](event, unit)
    return unit


def opened(account_id: str = ACCOUNT, *, vetting: VettingLimits | None = None) -> TradingAccountOpened:
    return TradingAccountOpened(
        account_id=account_id,
        owner="XS",
        name="Pat's account",
        classification="Retail",
        default_currency="AUD",
        investor=Investor(investor_id="inv-1", full_name="Pat Kim", country="AU", type=InvestorType.INDIVIDUAL),
        allowed_exchanges=(EXCHANGE,),
        vetting=vetting or VettingLimits(),
    )


def registry_closed(flow_id: str = "close-1", state: AccountState = AccountState.CLOSED) -> RegistryAccountStateChanged:
    return RegistryAccountStateChanged(flow_id=flow_id, account_id=ACCOUNT, state=state, reason="closed by the owner")


def opening_failed(flow_id: str, *, service: str = "registry", kind: FlowKind = FlowKind.ACCOUNT) -> ProvisioningFailed:
    return ProvisioningFailed(
        flow_id=flow_id, kind=kind, entity_id=ACCOUNT, service=service, step="registry.account", reason="no investor"
    )


def cash_moved(amount: str) -> CashMovementApplied:
    return CashMovementApplied(
        flow_id="deposit-1",
        account_id=ACCOUNT,
        delta=Money(amount=Decimal(amount), currency="AUD"),
        balance=Money(amount=Decimal(amount), currency="AUD"),
        reference="D1",
    )


def granted(*rights: AccountRight, login_id: str = LOGIN, account_id: str = ACCOUNT) -> AccountAccessGranted:
    return AccountAccessGranted(
        flow_id="grant-1", account_id=account_id, logins=(AccountLogin(login_id=login_id, rights=rights),)
    )


def revoked(scope: RevokedScope, subject_id: str, login_ids: tuple[str, ...] = ()) -> AccessRevoked:
    return AccessRevoked(flow_id="revoke-1", scope=scope, subject_id=subject_id, login_ids=login_ids, reason="gone")


def adapter_registered(price: str = "10.00") -> OmsAdapterRegistered:
    return OmsAdapterRegistered(
        flow_id="onboard-1",
        exchange=EXCHANGE,
        adapter="prodigy",
        reference_prices=(InstrumentPrice(instrument=INSTRUMENT, price=Decimal(price)),),
    )


def placed(
    order_id: str = "o1",
    side: OrderSide = OrderSide.BUY,
    quantity: int = 100,
    limit: str | None = "10.00",
    instrument: str = INSTRUMENT,
    login_id: str = LOGIN,
) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        account_id=ACCOUNT,
        login_id=login_id,
        instrument=instrument,
        side=side,
        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
        quantity=quantity,
        limit_price=Decimal(limit) if limit is not None else None,
        lifetime=OrderLifetime.DAY,
    )


def report(
    kind: ExecutionKind,
    order_id: str = "o1",
    *,
    side: OrderSide = OrderSide.BUY,
    fill: tuple[int, str] | None = None,
    trade: str = "T1",
    leaves: int = 0,
    account_id: str = ACCOUNT,
    reason: str | None = None,
) -> ExecutionReported:
    """``fill``: (quantity, price) of a FILLED report; ``leaves``: what stays open after it."""
    quantity, price = fill if fill is not None else (0, None)
    return ExecutionReported(
        exchange=EXCHANGE,
        order_id=order_id,
        account_id=account_id,
        instrument=INSTRUMENT,
        side=side,
        kind=kind,
        currency="AUD",
        settles_through_registry=True,
        fill_quantity=quantity,
        fill_price=Decimal(price) if price is not None else None,
        venue_trade_id=trade if fill is not None else None,
        cumulative_quantity=quantity,
        leaves_quantity=leaves,
        reason=reason,
    )


def cancel(order_id: str = "o1", login_id: str = LOGIN, account_id: str = ACCOUNT) -> OrderCancelRequested:
    return OrderCancelRequested(order_id=order_id, account_id=account_id, login_id=login_id, reason="changed my mind")


async def trading(cash: str = "5000", *, vetting: VettingLimits | None = None) -> MemoryBooks:
    """An exchange taking orders (last price 10.00), an account with ``cash`` AUD, and a login that trades on it."""
    books = MemoryBooks()
    await handle(prodigy_exchange(EXCHANGE, markets=1, symbols=2), books)
    await handle(adapter_registered(), books)
    await handle(opened(vetting=vetting), books)
    await handle(granted(AccountRight.VIEW, AccountRight.TRADE), books)
    await handle(cash_moved(cash), books)
    return books


async def holding_shares(quantity: int = 100) -> MemoryBooks:
    """:func:`trading`, and ``quantity`` of INSTRUMENT bought at 10.00 (order ``buy``)."""
    books = await trading()
    await handle(placed("buy", quantity=quantity), books)
    await handle(report(ExecutionKind.FILLED, "buy", fill=(quantity, "10.00"), trade="T0"), books)
    return books


def only(unit: FakeUnitOfWork[OmsBooks], kind: type[E]) -> E:
    """The one event the handler recorded, of that kind."""
    [event] = unit.events
    assert isinstance(event, kind), unit.events
    return event


def rejection(unit: FakeUnitOfWork[OmsBooks]) -> RejectionCode:
    return only(unit, OrderRejected).code


def markets_of(code: str) -> tuple[Market, ...]:
    return prodigy_exchange(code, markets=1).markets


# --- operators ------------------------------------------------------------------------------------


async def test_an_oms_operator_is_registered_and_reported() -> None:
    books = MemoryBooks()
    event = OperatorRegistered(
        operator_id="op-1",
        login_id="login-op",
        systems=(OperatorSystem.OMS,),
        oms_features=(OmsFeature.ADMIN,),
        owners=("XS",),
    )
    unit = await handle(event, books)
    assert unit.events == [
        OmsOperatorRegistered(flow_id=unit.flow_id, operator_id="op-1", features=(OmsFeature.ADMIN,), owners=("XS",))
    ]
    assert books.operators["op-1"].registered == event


async def test_an_operator_of_other_systems_only_is_nothing_to_the_oms() -> None:
    books = MemoryBooks()
    unit = await handle(OperatorRegistered(operator_id="op-1", login_id="l", systems=(OperatorSystem.REGISTRY,)), books)
    assert (unit.events, books.operators) == ([], {})


async def test_a_deregistered_operator_keeps_its_record_with_the_reason() -> None:
    books = MemoryBooks()
    await handle(OperatorRegistered(operator_id="op-1", login_id="l", systems=(OperatorSystem.OMS,)), books)
    unit = await handle(OperatorDeregistered(operator_id="op-1", reason="left"), books)
    assert unit.events == []
    assert (books.operators["op-1"].deregistered, books.operators["op-1"].deregistered_reason) == (True, "left")


async def test_a_registration_again_without_the_oms_deregisters_the_operator_here_and_one_with_it_restores_it() -> None:
    books = MemoryBooks()
    await handle(OperatorRegistered(operator_id="op-1", login_id="l", systems=(OperatorSystem.OMS,)), books)
    without = OperatorRegistered(operator_id="op-1", login_id="l", systems=(OperatorSystem.REGISTRY,))
    unit = await handle(without, books)
    assert unit.events == []  # no oms.operator step in that flow
    stored = books.operators["op-1"]
    assert stored.deregistered and stored.registered.systems == (OperatorSystem.OMS,)
    assert stored.deregistered_reason == f"registered again by flow {unit.flow_id} without the OMS"
    again = await handle(OperatorRegistered(operator_id="op-1", login_id="l", systems=(OperatorSystem.OMS,)), books)
    assert [type(e) for e in again.events] == [OmsOperatorRegistered] and not books.operators["op-1"].deregistered


# --- accounts -------------------------------------------------------------------------------------


async def test_an_opened_account_is_active_and_provisioned_under_the_account_lock() -> None:
    books = MemoryBooks()
    limits = VettingLimits(max_order_quantity=500)
    unit = await handle(opened(vetting=limits), books)
    assert unit.events == [
        OmsAccountProvisioned(
            flow_id=unit.flow_id, account_id=ACCOUNT, currency="AUD", allowed_exchanges=(EXCHANGE,), vetting=limits
        )
    ]
    assert await books.standing(ACCOUNT) == Standing(AccountState.ACTIVE, unit.flow_id, unit.flow_id)
    assert unit.locked == [f"account:{ACCOUNT}"]


async def test_an_account_opened_twice_fails_the_step_and_keeps_the_first() -> None:
    books = MemoryBooks()
    first = await handle(opened(), books)
    failed = only(await handle(opened(), books), StepFailed)
    assert failed.step == "oms.account"
    assert f"already exists in the OMS (active, opened by flow {first.flow_id})" in failed.reason
    assert books.accounts[ACCOUNT].opened_by_flow == first.flow_id


async def test_an_update_replaces_the_allowed_exchanges_and_the_limits_as_a_whole() -> None:
    books = MemoryBooks()
    await handle(opened(vetting=VettingLimits(max_order_quantity=10)), books)
    limits = VettingLimits(max_order_value=PositiveMoney(amount=Decimal(100), currency="AUD"))
    unit = await handle(
        TradingAccountUpdated(account_id=ACCOUNT, allowed_exchanges=("XSUT", "XASX"), vetting=limits), books
    )
    assert unit.events == []
    assert (books.accounts[ACCOUNT].allowed_exchanges, books.accounts[ACCOUNT].limits) == (("XSUT", "XASX"), limits)


async def test_an_update_of_an_account_not_opened_here_waits_for_its_opening() -> None:
    with pytest.raises(MissingPrerequisite) as waiting:
        await handle(TradingAccountUpdated(account_id=ACCOUNT, name="New name"), MemoryBooks())
    assert waiting.value.waits_for == ACCOUNT and "TradingAccountOpened" in str(waiting.value)


async def test_a_suspension_is_reported_once_per_flow() -> None:
    books = MemoryBooks()
    await handle(opened(), books)
    suspension = TradingAccountSuspended(account_id=ACCOUNT, reason="KYC review")
    unit = await handle(suspension, books)
    assert unit.events == [
        OmsAccountStateChanged(
            flow_id=unit.flow_id, account_id=ACCOUNT, state=AccountState.SUSPENDED, reason="KYC review"
        )
    ]
    assert (books.accounts[ACCOUNT].state, books.accounts[ACCOUNT].state_reason) == (
        AccountState.SUSPENDED,
        "KYC review",
    )
    again = dataclasses.replace(unit, recorded=[])  # the same event (the same flow) applied again
    await SERVICE.by_type[suspension.event_type](suspension, again)
    assert again.events == []


@pytest.mark.parametrize("closed", [False, True])
async def test_an_account_unknown_or_closed_cannot_be_suspended(closed: bool) -> None:
    books = MemoryBooks()
    if closed:
        await handle(opened(), books)
        await handle(registry_closed(), books)
    failed = only(await handle(TradingAccountSuspended(account_id=ACCOUNT, reason="KYC"), books), StepFailed)
    assert failed.step == "oms.account_state"
    assert ("closed in the OMS" if closed else "unknown to the OMS") in failed.reason
    assert closed is (ACCOUNT in books.accounts and books.accounts[ACCOUNT].state is AccountState.CLOSED)


async def test_the_registrys_closure_closes_the_account_for_its_flow_and_its_suspension_is_ignored() -> None:
    books = MemoryBooks()
    await handle(opened(), books)
    assert (await handle(registry_closed(state=AccountState.SUSPENDED), books)).events == []
    assert books.accounts[ACCOUNT].state is AccountState.ACTIVE
    unit = await handle(registry_closed(), books)
    assert unit.events == [
        OmsAccountStateChanged(
            flow_id="close-1", account_id=ACCOUNT, state=AccountState.CLOSED, reason="closed by the owner"
        )
    ]
    assert unit.locked == [f"account:{ACCOUNT}"]
    assert (await handle(registry_closed(), books)).events == []  # the same flow's closure again


async def test_a_closure_before_the_opening_waits_and_closes_the_account_when_it_opens() -> None:
    books = MemoryBooks()
    waiting = only(await handle(registry_closed(), books), StepWaiting)
    assert (waiting.flow_id, waiting.step, waiting.waiting_for) == (
        "close-1",
        "oms.account_state",
        (f"account:{ACCOUNT}",),
    )
    assert ACCOUNT not in books.accounts
    unit = await handle(opened(), books)
    assert [type(e) for e in unit.events] == [OmsAccountProvisioned, OmsAccountStateChanged]
    assert unit.events[1] == OmsAccountStateChanged(
        flow_id="close-1", account_id=ACCOUNT, state=AccountState.CLOSED, reason="closed by the owner"
    )
    assert books.accounts[ACCOUNT].state is AccountState.CLOSED and books.pending == []


async def test_a_failed_opening_closes_the_account_that_flow_opened_and_no_other() -> None:
    books = MemoryBooks()
    opening = await handle(opened(), books)
    assert (await handle(opening_failed("another-flow"), books)).events == []
    unit = await handle(opening_failed(opening.flow_id), books)
    assert unit.events == [
        OmsAccountStateChanged(
            flow_id=opening.flow_id,
            account_id=ACCOUNT,
            state=AccountState.CLOSED,
            reason="opening failed: registry refused registry.account: no investor",
        )
    ]
    assert unit.locked == [f"account:{ACCOUNT}"]


@pytest.mark.parametrize(
    ("service", "kind"), [("oms", FlowKind.ACCOUNT), ("registry", FlowKind.USER), ("registry", FlowKind.EXCHANGE)]
)
async def test_a_failure_of_the_oms_itself_or_of_another_kind_of_flow_undoes_nothing(
    service: str, kind: FlowKind
) -> None:
    books = MemoryBooks()
    opening = await handle(opened(), books)
    assert (await handle(opening_failed(opening.flow_id, service=service, kind=kind), books)).events == []
    assert books.accounts[ACCOUNT].state is AccountState.ACTIVE and books.pending == []


async def test_a_failure_before_the_opening_closes_only_the_account_its_flow_opens() -> None:
    books = MemoryBooks()
    other = await handle(opening_failed("flow-of-another-opening"), books)
    assert other.events == [] and len(books.pending) == 1
    unit = await handle(opened(), books)
    assert [type(e) for e in unit.events] == [OmsAccountProvisioned]
    assert books.accounts[ACCOUNT].state is AccountState.ACTIVE and books.pending == []

    books = MemoryBooks()
    event = opened()
    unit = FakeUnitOfWork.handling(event, books, service="oms")
    await handle(opening_failed(unit.flow_id), books)
    await SERVICE.by_type[event.event_type](event, unit)
    assert [type(e) for e in unit.events] == [OmsAccountProvisioned, OmsAccountStateChanged]
    assert books.accounts[ACCOUNT].state is AccountState.CLOSED


async def test_a_long_failure_reason_is_cut_to_what_the_state_change_carries() -> None:
    books = MemoryBooks()
    opening = await handle(opened(), books)
    prefix = "opening failed: registry refused registry.account: "
    for length, cut in ((200, False), (201, True)):
        failure = opening_failed(opening.flow_id).model_copy(update={"reason": "x" * (length - len(prefix))})
        books.accounts[ACCOUNT].state = AccountState.ACTIVE
        changed = only(await handle(failure, books), OmsAccountStateChanged)
        assert changed.reason is not None
        assert len(changed.reason) == 200 and changed.reason.endswith("…") is cut


async def test_the_registrys_cash_movements_are_booked_by_their_delta() -> None:
    books = MemoryBooks()
    await handle(cash_moved("1000"), books)
    unit = await handle(cash_moved("-250.50"), books)
    assert books.cash_positions[(ACCOUNT, "AUD")] == CashPosition("AUD", Decimal("749.50"), Decimal(0))
    assert unit.events == [] and unit.locked == [f"account:{ACCOUNT}"]


# --- rights ---------------------------------------------------------------------------------------


async def test_granted_rights_are_in_force_and_replace_those_granted_before() -> None:
    books = MemoryBooks()
    await handle(granted(AccountRight.VIEW, AccountRight.TRADE), books)
    assert await books.rights(ACCOUNT, LOGIN) == {AccountRight.VIEW, AccountRight.TRADE}
    await handle(granted(AccountRight.VIEW), books)
    assert await books.rights(ACCOUNT, LOGIN) == {AccountRight.VIEW}


async def test_a_disabled_login_keeps_its_grants_out_of_force_until_it_is_enabled() -> None:
    books = MemoryBooks()
    await handle(revoked(RevokedScope.LOGIN, LOGIN), books)
    await handle(granted(AccountRight.TRADE), books)  # a grant read after the disable
    assert await books.rights(ACCOUNT, LOGIN) == frozenset()
    await handle(PermissionsGranted(flow_id="f", login_id=LOGIN, permissions=("market-data:XSUT",)), books)
    assert await books.rights(ACCOUNT, LOGIN) == {AccountRight.TRADE}


@pytest.mark.parametrize(
    ("permissions", "login_active", "enabled"),
    [
        ((), True, True),
        (("market-data:XSUT",), False, False),
        ((), None, False),
        (("market-data:XSUT",), None, True),
    ],
)
async def test_permissions_enable_a_login_only_if_it_is_active(
    permissions: tuple[str, ...], login_active: bool | None, enabled: bool
) -> None:
    books = MemoryBooks()
    await handle(granted(AccountRight.TRADE), books)
    await handle(revoked(RevokedScope.LOGIN, LOGIN), books)
    await handle(
        PermissionsGranted(flow_id="f", login_id=LOGIN, permissions=permissions, login_active=login_active), books
    )
    assert (LOGIN not in books.disabled_logins) is enabled


async def test_an_unlink_takes_the_named_logins_rights_and_a_closure_every_logins() -> None:
    books = MemoryBooks()
    for login in ("a", "b", "c"):
        await handle(granted(AccountRight.TRADE, login_id=login), books)
    await handle(granted(AccountRight.TRADE, login_id="a", account_id="XS:other"), books)
    await handle(revoked(RevokedScope.ACCOUNT_LOGIN, ACCOUNT, login_ids=("a", "b")), books)
    assert sorted(books.granted) == [("XS:acct1", "c"), ("XS:other", "a")]
    await handle(revoked(RevokedScope.ACCOUNT, ACCOUNT), books)
    assert sorted(books.granted) == [("XS:other", "a")]


# --- exchanges ------------------------------------------------------------------------------------


async def test_an_added_exchange_lists_its_instruments_and_takes_orders_once_its_adapter_runs() -> None:
    books = MemoryBooks()
    await handle(prodigy_exchange(EXCHANGE, markets=1, symbols=2), books)
    assert sorted(books.instruments) == [INSTRUMENT, OTHER_INSTRUMENT]
    listed = await books.listing(INSTRUMENT)
    assert listed is not None and not listed[1].active
    await handle(adapter_registered("12.50"), books)
    listed = await books.listing(INSTRUMENT)
    assert listed is not None and listed[1].active and listed[0].last_price == Decimal("12.50")


async def test_a_market_listed_by_another_exchange_is_refused_and_its_own_are_not() -> None:
    books = MemoryBooks()
    await handle(prodigy_exchange(EXCHANGE, markets=1), books)
    await handle(prodigy_exchange(EXCHANGE, markets=1, symbols=1), books)  # added again: its own market
    assert sorted(books.instruments) == [INSTRUMENT]
    clash = prodigy_exchange("XOTH", markets=1).model_copy(update={"markets": markets_of(EXCHANGE)})
    with pytest.raises(DomainError, match=r"lists markets another exchange already lists: XSUT \(by XSUT\)"):
        await handle(clash, books)
    with pytest.raises(DomainError, match="another exchange already lists"):
        await handle(ExchangeUpdated(code="XOTH", markets=markets_of(EXCHANGE)), books)
    assert "XOTH" not in books.exchanges


async def test_an_update_changes_what_it_carries_and_replaces_the_instruments() -> None:
    books = MemoryBooks()
    await handle(prodigy_exchange(EXCHANGE, markets=1, symbols=2), books)
    await handle(ExchangeUpdated(code=EXCHANGE, oms_adapter="other", settles_through_registry=False), books)
    assert (books.exchanges[EXCHANGE].adapter, books.exchanges[EXCHANGE].settles_through_registry) == ("other", False)
    assert sorted(books.instruments) == [INSTRUMENT, OTHER_INSTRUMENT]
    await handle(
        ExchangeUpdated(code=EXCHANGE, markets=prodigy_exchange(EXCHANGE, markets=1, symbols=1).markets), books
    )
    assert sorted(books.instruments) == [INSTRUMENT]


@pytest.mark.parametrize(
    "event",
    [ExchangeUpdated(code=EXCHANGE, name="Renamed"), ExchangeSuspended(code=EXCHANGE, reason="outage")],
)
async def test_an_update_or_suspension_of_an_exchange_not_added_waits_for_it(event: Event) -> None:
    with pytest.raises(MissingPrerequisite) as waiting:
        await handle(event, MemoryBooks())
    assert waiting.value.waits_for == EXCHANGE and "ExchangeAdded" in str(waiting.value)


async def test_a_suspended_or_removed_exchange_takes_no_orders_and_a_removal_of_none_is_nothing() -> None:
    books = await trading()
    await handle(ExchangeSuspended(code=EXCHANGE, reason="outage"), books)
    assert (books.exchanges[EXCHANGE].state, books.exchanges[EXCHANGE].state_reason) == (
        ExchangeState.SUSPENDED,
        "outage",
    )
    assert rejection(await handle(placed(), books)) is RejectionCode.EXCHANGE_NOT_ACTIVE
    await handle(ExchangeRemoved(code=EXCHANGE, reason="delisted"), books)
    assert (books.exchanges[EXCHANGE].state, books.exchanges[EXCHANGE].state_reason) == (
        ExchangeState.REMOVED,
        "delisted",
    )
    assert (await handle(ExchangeRemoved(code="XNONE"), books)).events == []
    assert "XNONE" not in books.exchanges


async def test_a_removed_exchange_stays_removed_whatever_suspension_or_update_comes_after_until_added_again() -> None:
    books = await trading()
    await handle(ExchangeRemoved(code=EXCHANGE, reason="delisted"), books)
    with structlog.testing.capture_logs() as logs:
        suspended = await handle(ExchangeSuspended(code=EXCHANGE, reason="outage"), books)
    assert suspended.events == []
    assert [(log["event"], log["exchange"], log["state"], log["reason"]) for log in logs] == [
        ("oms.exchange_suspension_ignored", EXCHANGE, "removed", "outage")
    ]
    await handle(ExchangeUpdated(code=EXCHANGE, name="Renamed"), books)
    assert (books.exchanges[EXCHANGE].state, books.exchanges[EXCHANGE].state_reason) == (
        ExchangeState.REMOVED,
        "delisted",
    )
    assert "removed (delisted)" in only(await handle(placed(), books), OrderRejected).reason
    await handle(ExchangeRemoved(code=EXCHANGE, reason="gone for good"), books)  # removing again keeps it removed
    assert books.exchanges[EXCHANGE].state_reason == "gone for good"
    await handle(prodigy_exchange(EXCHANGE, markets=1, symbols=2), books)  # only an ExchangeAdded lists it anew
    assert books.exchanges[EXCHANGE].state is ExchangeState.LISTED
    with structlog.testing.capture_logs() as logs:
        await handle(ExchangeSuspended(code=EXCHANGE, reason="outage"), books)
    assert books.exchanges[EXCHANGE].state is ExchangeState.SUSPENDED and logs == []


async def test_a_stopped_adapter_stops_orders_and_a_registered_one_keeps_the_first_reference_price() -> None:
    books = await trading()
    await handle(OmsAdapterStopped(flow_id="f", exchange=EXCHANGE, adapter="prodigy", reason="plugin crashed"), books)
    rejected = only(await handle(placed(), books), OrderRejected)
    assert "(plugin crashed)" in rejected.reason
    await handle(adapter_registered("99.00"), books)
    assert books.adapters[EXCHANGE] == (True, None) and books.reference_prices[INSTRUMENT] == Decimal("10.00")
    assert [type(e) for e in (await handle(placed("o2"), books)).events] == [OrderAccepted, OrderRouted]


# --- placing --------------------------------------------------------------------------------------


async def test_an_accepted_buy_reserves_its_value_and_is_routed_to_the_exchanges_adapter() -> None:
    books = await trading()
    unit = await handle(placed(quantity=100, limit="10.50"), books)
    terms: dict[str, Any] = dict(
        order_id="o1",
        account_id=ACCOUNT,
        exchange=EXCHANGE,
        instrument=INSTRUMENT,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=100,
        limit_price=Decimal("10.50"),
        protection_price=None,
        lifetime=OrderLifetime.DAY,
        expiry_date=None,
    )
    assert unit.events == [
        OrderAccepted(**terms, login_id=LOGIN, reserved=money(Decimal("1050.00"), "AUD")),
        OrderRouted(**terms, adapter="prodigy", currency="AUD", settles_through_registry=True),
    ]
    assert unit.locked == [f"account:{ACCOUNT}"]
    assert books.cash_positions[(ACCOUNT, "AUD")] == CashPosition("AUD", Decimal(5000), Decimal("1050.00"))
    order = books.orders["o1"]
    assert (order.state, order.exchange, order.price, order.reserved) == (
        OrderState.ROUTED,
        EXCHANGE,
        Decimal("10.50"),
        Decimal("1050.00"),
    )


async def test_an_accepted_sell_holds_its_quantity_back_and_reserves_no_cash() -> None:
    books = await holding_shares(100)
    unit = await handle(placed("s1", side=OrderSide.SELL, quantity=60), books)
    accepted = unit.events[0]
    assert isinstance(accepted, OrderAccepted) and accepted.reserved is None
    assert books.holdings[(ACCOUNT, INSTRUMENT)] == HoldingPosition(INSTRUMENT, 100, 60)
    assert books.cash_positions[(ACCOUNT, "AUD")] == CashPosition("AUD", Decimal(4000), Decimal(0))
    assert (books.orders["s1"].held_back, books.orders["s1"].reserved) == (60, Decimal(0))
    # what is held back is not available to the next sell
    assert rejection(await handle(placed("s2", side=OrderSide.SELL, quantity=41), books)) is (
        RejectionCode.QUANTITY_INSUFFICIENT
    )


async def test_a_market_buy_is_valued_and_routed_at_its_protection_price() -> None:
    books = await trading()
    unit = await handle(placed(limit=None, quantity=10), books)
    routed = unit.events[1]
    assert isinstance(routed, OrderRouted) and routed.protection_price == Decimal("11.00")
    assert books.cash_positions[(ACCOUNT, "AUD")].unfilled_buys == Decimal("110.00")


async def test_open_buys_reserve_cash_that_later_buys_cannot_use() -> None:
    books = await trading("1500")
    await handle(placed("o1", quantity=100), books)
    assert rejection(await handle(placed("o2", quantity=51), books)) is RejectionCode.BALANCE_EXCEED
    assert [type(e) for e in (await handle(placed("o3", quantity=50), books)).events] == [OrderAccepted, OrderRouted]


async def test_a_rejected_order_is_kept_with_its_code_and_reason_and_its_id_stays_taken() -> None:
    books = await trading("100")
    unit = await handle(placed(quantity=100), books)
    rejected = only(unit, OrderRejected)
    assert rejected == OrderRejected(
        order_id="o1",
        account_id=ACCOUNT,
        login_id=LOGIN,
        instrument=INSTRUMENT,
        code=RejectionCode.BALANCE_EXCEED,
        rule=VettingRule.FUNDING_CHECK,
        parameters=("100.00",),
        reason=rejected.reason,
    )
    order = books.orders["o1"]
    assert (order.state, order.rejection_code, order.exchange) == (
        OrderState.REJECTED,
        RejectionCode.BALANCE_EXCEED,
        None,
    )
    assert books.cash_positions[(ACCOUNT, "AUD")].unfilled_buys == Decimal(0)
    # the same id again is a duplicate, and the first order stays as it was
    assert rejection(await handle(placed(quantity=1), books)) is RejectionCode.ORDER_DUPLICATE
    assert books.orders["o1"] == order


async def test_an_accepted_orders_id_is_taken_too() -> None:
    books = await trading()
    await handle(placed(), books)
    assert rejection(await handle(placed(), books)) is RejectionCode.ORDER_DUPLICATE
    assert books.orders["o1"].state is OrderState.ROUTED


async def test_vetting_sees_the_account_as_the_oms_holds_it() -> None:
    books = await trading()
    assert rejection(await handle(placed(instrument="XS09.XSUT"), books)) is RejectionCode.INSTRUMENT_UNKNOWN
    assert rejection(await handle(placed("o2", login_id="stranger"), books)) is RejectionCode.LOGIN_NO_TRADE_RIGHT
    await handle(TradingAccountUpdated(account_id=ACCOUNT, vetting=VettingLimits(max_order_quantity=5)), books)
    assert rejection(await handle(placed("o3"), books)) is RejectionCode.ACCOUNT_MAX_ORDER_QUANTITY
    await handle(TradingAccountUpdated(account_id=ACCOUNT, allowed_exchanges=()), books)
    assert rejection(await handle(placed("o4", quantity=1), books)) is RejectionCode.EXCHANGE_NOT_ALLOWED
    await handle(TradingAccountUpdated(account_id=ACCOUNT, allowed_exchanges=(EXCHANGE,)), books)
    await handle(TradingAccountSuspended(account_id=ACCOUNT, reason="KYC"), books)
    assert rejection(await handle(placed("o5", quantity=1), books)) is RejectionCode.ACCOUNT_INACTIVE
    await handle(registry_closed(), books)
    assert rejection(await handle(placed("o6", quantity=1), books)) is RejectionCode.ACCOUNT_INACTIVE


async def test_a_rejection_names_the_rule_of_vetting_config_and_the_parameters_it_states() -> None:
    """plxtra/xosp Config/Zenith/Vetting.config, OMS.Compliance: ``FAIL WITH [OrderPrice.TooFarAbove,
    '10.0%'] IF (100 * (details.price - market.lastorclose) / market.lastorclose) > 10.0`` for a bid:
    the event carries the code, the rule and its parameter as the rule states them."""
    books = await trading()
    unit = await handle(placed(quantity=10, limit="11.01"), books)  # last price 10.00
    assert only(unit, OrderRejected) == OrderRejected(
        order_id="o1",
        account_id=ACCOUNT,
        login_id=LOGIN,
        instrument=INSTRUMENT,
        code=RejectionCode.ORDER_PRICE_TOO_FAR_ABOVE,
        rule=VettingRule.COMPLIANCE,
        parameters=("10.0%",),
        reason="the bid's price 11.01 is more than 10 % above XS01.XSUT's last price 10.00 (at most 11.00); "
        "bid no higher",
    )
    assert books.orders["o1"].rejection_code is RejectionCode.ORDER_PRICE_TOO_FAR_ABOVE


async def test_a_bid_far_below_the_market_and_an_order_without_a_last_price_are_accepted() -> None:
    """Vetting.config, OMS.Compliance: a bid is refused only ``> 10.0`` % above last-or-close, and
    ``RUN IF market HAS lastorclose  # Must have a price to work with``: with none, no price check."""
    books = await trading()
    low = await handle(placed("low", quantity=10, limit="5.00"), books)  # half the last price 10.00
    assert [type(e) for e in low.events] == [OrderAccepted, OrderRouted]
    unpriced = await handle(placed("new", quantity=10, limit="150.00", instrument=OTHER_INSTRUMENT), books)
    assert [type(e) for e in unpriced.events] == [OrderAccepted, OrderRouted]


async def test_a_maximum_order_value_in_another_currency_refuses_the_order_rather_than_being_skipped() -> None:
    """Issue 20, defect 6: the account's max order value in USD was skipped on an AUD market."""
    limit = VettingLimits(max_order_value=PositiveMoney(amount=Decimal("1000000"), currency="USD"))
    books = await trading(vetting=limit)
    rejected = only(await handle(placed(quantity=1), books), OrderRejected)
    assert (rejected.code, rejected.rule, rejected.parameters) == (
        RejectionCode.ACCOUNT_LIMIT_CURRENCY,
        None,
        ("USD", "AUD"),
    )


async def test_an_order_on_an_account_not_opened_here_is_rejected() -> None:
    books = MemoryBooks()
    assert rejection(await handle(placed(), books)) is RejectionCode.ACCOUNT_UNKNOWN
    assert books.orders["o1"].state is OrderState.REJECTED


# --- cancels --------------------------------------------------------------------------------------


async def test_the_cancel_of_an_open_order_is_routed_to_the_adapter_it_went_to() -> None:
    books = await trading()
    await handle(placed(), books)
    unit = await handle(cancel(), books)
    assert unit.events == [
        OrderCancelRouted(
            order_id="o1",
            account_id=ACCOUNT,
            exchange=EXCHANGE,
            adapter="prodigy",
            instrument=INSTRUMENT,
            reason="changed my mind",
        )
    ]
    assert unit.locked == [f"account:{ACCOUNT}"] and books.orders["o1"].state is OrderState.ROUTED


async def test_a_cancel_is_never_vetted() -> None:
    """Vetting.config runs every rule ``RUN IF request.type IN ['Place', 'Amend']  # Can always cancel
    an order``: the cancel of an order on an account suspended since (``Account.Inactive`` to a new
    order) is routed."""
    books = await trading()
    await handle(placed(), books)
    await handle(TradingAccountSuspended(account_id=ACCOUNT, reason="KYC"), books)
    assert rejection(await handle(placed("o2", quantity=1), books)) is RejectionCode.ACCOUNT_INACTIVE
    assert [type(e) for e in (await handle(cancel(), books)).events] == [OrderCancelRouted]


async def test_a_cancel_of_a_partly_filled_order_is_routed() -> None:
    books = await trading()
    await handle(placed(), books)
    await handle(report(ExecutionKind.FILLED, fill=(40, "10.00"), leaves=60), books)
    assert [type(e) for e in (await handle(cancel(), books)).events] == [OrderCancelRouted]


async def test_a_cancel_is_refused_with_the_reason_for_whoever_asked() -> None:
    books = await trading()
    await handle(granted(AccountRight.VIEW, login_id="viewer"), books)
    await handle(placed("o1"), books)
    await handle(placed("big", quantity=10_000), books)  # rejected: no cash for it
    await handle(placed("done", quantity=1), books)
    await handle(report(ExecutionKind.CANCELLED, "done"), books)
    refusals = {
        "unknown": cancel("nope"),
        "another account's": cancel("o1", account_id="XS:other"),
        "no trade right": cancel("o1", login_id="viewer"),
        "rejected": cancel("big"),
        "over": cancel("done"),
    }
    reasons = {}
    for what, request in refusals.items():
        refused = only(await handle(request, books), OrderCancelRejected)
        assert (refused.order_id, refused.account_id, refused.login_id) == (
            request.order_id,
            request.account_id,
            request.login_id,
        )
        reasons[what] = refused.reason
    assert "has no order nope" in reasons["unknown"] and "has no order o1" in reasons["another account's"]
    assert "no trade right" in reasons["no trade right"]
    assert "was rejected (Balance.Exceed)" in reasons["rejected"]
    assert "already over (cancelled)" in reasons["over"]


# --- execution reports ----------------------------------------------------------------------------


async def test_an_acknowledgement_moves_a_routed_order_on_and_books_nothing() -> None:
    books = await trading()
    await handle(placed(), books)
    unit = await handle(report(ExecutionKind.ACKNOWLEDGED, leaves=100), books)
    assert unit.events == [] and unit.locked == [f"account:{ACCOUNT}"]
    assert books.orders["o1"].state is OrderState.ACKNOWLEDGED
    assert books.cash_positions[(ACCOUNT, "AUD")] == CashPosition("AUD", Decimal(5000), Decimal(1000))


async def test_a_partial_fill_of_a_buy_books_its_cost_and_holding_and_releases_its_share() -> None:
    books = await trading()
    await handle(placed(limit="10.00"), books)
    unit = await handle(report(ExecutionKind.FILLED, fill=(40, "9.50"), leaves=60), books)
    assert unit.events == []
    # booked: 5000 - 40 × 9.50; reserved: 1000 - 40 × 10.00 (the reservation price, not the fill's)
    assert books.cash_positions[(ACCOUNT, "AUD")] == CashPosition("AUD", Decimal("4620.00"), Decimal("600.00"))
    assert books.holdings[(ACCOUNT, INSTRUMENT)] == HoldingPosition(INSTRUMENT, 40, 0)
    order = books.orders["o1"]
    assert (order.state, order.filled_quantity, order.filled_value, order.reserved) == (
        OrderState.PARTIALLY_FILLED,
        40,
        Decimal("380.00"),
        Decimal("600.00"),
    )
    assert books.fills == {(EXCHANGE, "T1", "o1")}


async def test_a_late_acknowledgement_does_not_undo_a_fill() -> None:
    books = await trading()
    await handle(placed(), books)
    await handle(report(ExecutionKind.FILLED, fill=(40, "10.00"), leaves=60), books)
    await handle(report(ExecutionKind.ACKNOWLEDGED, leaves=60), books)
    assert books.orders["o1"].state is OrderState.PARTIALLY_FILLED


async def test_the_last_fill_completes_the_buy_and_releases_what_it_still_reserves() -> None:
    books = await trading()
    await handle(placed(limit="10.00"), books)
    await handle(report(ExecutionKind.FILLED, fill=(40, "9.50"), leaves=60), books)
    unit = await handle(report(ExecutionKind.FILLED, fill=(60, "9.00"), trade="T2"), books)
    assert unit.events == [
        OrderCompleted(
            order_id="o1",
            account_id=ACCOUNT,
            instrument=INSTRUMENT,
            outcome=OrderOutcome.FILLED,
            filled_quantity=100,
            filled_value=money(Decimal("920.00"), "AUD"),
            reason=None,
        )
    ]
    assert books.cash_positions[(ACCOUNT, "AUD")] == CashPosition("AUD", Decimal("4080.00"), Decimal(0))
    assert books.holdings[(ACCOUNT, INSTRUMENT)] == HoldingPosition(INSTRUMENT, 100, 0)
    order = books.orders["o1"]
    assert (order.state, order.outcome, order.reserved) == (OrderState.COMPLETED, OrderOutcome.FILLED, Decimal(0))


async def test_a_cancel_after_a_partial_fill_releases_the_rest_of_the_reservation() -> None:
    books = await trading()
    await handle(placed(limit="10.00"), books)
    await handle(report(ExecutionKind.FILLED, fill=(40, "10.00"), leaves=60), books)
    unit = await handle(report(ExecutionKind.CANCELLED, reason="cancelled by the client"), books)
    completed = only(unit, OrderCompleted)
    assert completed == OrderCompleted(
        order_id="o1",
        account_id=ACCOUNT,
        instrument=INSTRUMENT,
        outcome=OrderOutcome.CANCELLED,
        filled_quantity=40,
        filled_value=money(Decimal("400.00"), "AUD"),
        reason="cancelled by the client",
    )
    assert books.cash_positions[(ACCOUNT, "AUD")] == CashPosition("AUD", Decimal("4600.00"), Decimal(0))
    assert (books.orders["o1"].outcome, books.orders["o1"].reason) == (
        OrderOutcome.CANCELLED,
        "cancelled by the client",
    )


async def test_a_sell_fill_books_its_proceeds_and_its_expiry_releases_what_it_still_holds_back() -> None:
    books = await holding_shares(100)
    await handle(placed("s1", side=OrderSide.SELL, quantity=60, limit="10.00"), books)
    await handle(report(ExecutionKind.FILLED, "s1", side=OrderSide.SELL, fill=(20, "10.50"), leaves=40), books)
    assert books.cash_positions[(ACCOUNT, "AUD")] == CashPosition("AUD", Decimal("4210.00"), Decimal(0))
    assert books.holdings[(ACCOUNT, INSTRUMENT)] == HoldingPosition(INSTRUMENT, 80, 40)
    unit = await handle(report(ExecutionKind.EXPIRED, "s1", side=OrderSide.SELL), books)
    completed = only(unit, OrderCompleted)
    assert (completed.outcome, completed.filled_quantity, completed.filled_value) == (
        OrderOutcome.EXPIRED,
        20,
        money(Decimal("210.00"), "AUD"),
    )
    assert books.holdings[(ACCOUNT, INSTRUMENT)] == HoldingPosition(INSTRUMENT, 80, 0)
    assert books.orders["s1"].held_back == 0


async def test_an_order_the_exchange_rejects_ends_rejected_and_reserves_nothing() -> None:
    books = await trading()
    await handle(placed(), books)
    completed = only(await handle(report(ExecutionKind.REJECTED, reason="halted"), books), OrderCompleted)
    assert completed.outcome is OrderOutcome.REJECTED
    assert completed.filled_value == money(Decimal(0), "AUD")
    assert books.cash_positions[(ACCOUNT, "AUD")] == CashPosition("AUD", Decimal(5000), Decimal(0))


async def test_a_fill_reported_twice_is_booked_once() -> None:
    books = await trading()
    await handle(placed(), books)
    fill = report(ExecutionKind.FILLED, fill=(40, "10.00"), leaves=60)
    await handle(fill, books)
    unit = await handle(fill, books)
    assert unit.events == []
    assert books.holdings[(ACCOUNT, INSTRUMENT)] == HoldingPosition(INSTRUMENT, 40, 0)
    assert books.orders["o1"].filled_quantity == 40


async def test_the_latest_fill_price_is_the_last_price_the_next_market_order_is_protected_from() -> None:
    books = await trading()
    await handle(placed(limit="11.00"), books)
    await handle(report(ExecutionKind.FILLED, fill=(10, "10.90"), leaves=90), books)
    routed = (await handle(placed("m1", limit=None, quantity=10), books)).events[1]
    assert isinstance(routed, OrderRouted) and routed.protection_price == Decimal("11.99")


@pytest.mark.parametrize(
    ("problem", "matching"),
    [
        (report(ExecutionKind.ACKNOWLEDGED, "nope", leaves=1), "routed no such order"),
        (report(ExecutionKind.ACKNOWLEDGED, account_id="XS:other", leaves=1), "routed no such order"),
        (report(ExecutionKind.ACKNOWLEDGED, "big", leaves=1), "routed no such order"),
        (report(ExecutionKind.FILLED, fill=(61, "10.00"), trade="T2"), "more than its open quantity 60"),
        (report(ExecutionKind.ACKNOWLEDGED, "done", leaves=1), "already over"),
    ],
)
async def test_a_report_the_oms_cannot_apply_is_a_fault_upstream(problem: ExecutionReported, matching: str) -> None:
    books = await trading()
    await handle(placed(), books)
    await handle(report(ExecutionKind.FILLED, fill=(40, "10.00"), leaves=60), books)
    await handle(placed("big", quantity=10_000), books)  # rejected by vetting: never routed
    await handle(placed("done", quantity=1), books)
    await handle(report(ExecutionKind.EXPIRED, "done"), books)
    before = (dict(books.orders), dict(books.cash_positions))
    with pytest.raises(DomainError, match=matching):
        await handle(problem, books)
    assert (books.orders, books.cash_positions) == before


# --- the retired xosp.order.rejected.v1 -----------------------------------------------------------


def test_an_old_order_rejected_v1_record_still_parses_and_stays_routed_to_the_oms_topic() -> None:
    """Records of ``xosp.order.rejected.v1`` (codes such as ``Price.OutOfRange``, before the codes
    became Vetting.config's) stay on xosp.oms.events and in dead letters: `xbus tail`, replays and
    redrives must still read them. The OMS now sends ``xosp.order.rejected.v2``."""
    data = {
        "order_id": "ord-old",
        "account_id": ACCOUNT,
        "login_id": LOGIN,
        "instrument": INSTRUMENT,
        "code": "Price.OutOfRange",
        "reason": "limit price 8.99 is outside 9.00 to 11.00",
    }
    envelope = Envelope.new(type=OrderRejectedV1.event_type, subject=ACCOUNT, source="xbus/oms")
    record = ConsumerRecord(
        topic="xosp.oms.events",
        partition=0,
        offset=3,
        timestamp=0,
        timestamp_type=0,
        key=ACCOUNT.encode(),
        value=json.dumps(data).encode(),
        checksum=None,
        serialized_key_size=-1,
        serialized_value_size=-1,
        headers=envelope.to_headers(),
    )

    read = decode(record)
    assert read.problem is None and read.envelope is not None
    event = schemas.event_types.parse(read.envelope.type, json.dumps(read.data))
    assert isinstance(event, OrderRejectedV1)
    assert (event.order_id, event.code) == ("ord-old", RejectionCodeV1.PRICE_OUT_OF_RANGE)
    catalogue = Catalogue.load(PROJECT_ROOT / "topics.yaml", schemas.event_types)
    for type_name in (OrderRejectedV1.event_type, OrderRejected.event_type):
        assert catalogue.carriers(type_name) == ["xosp.oms.events"]
    assert (OrderRejectedV1.event_type, OrderRejected.event_type) == (
        "xosp.order.rejected.v1",
        "xosp.order.rejected.v2",
    )
    assert "no longer emitted" in (OrderRejectedV1.__doc__ or "")


# --- request statuses and trade types, as the platform's OMS names them ---------------------------


def test_the_request_statuses_are_those_xosp_defines_for_its_oms() -> None:
    """plxtra/xosp Config/Init/oms-init.ps1, "Define the request statuses used by XOSP":
    ``Pending -Normal -Transition``, ``Queued -Normal -CanAmend -CanCancel``, ``Submitted -Normal
    -Transition``, ``Rejected -Completed``, ``Completed -Normal -Completed``; the flags are those of
    plxtra/oms-api OMS2.md ``RequestStatusDetails`` (IsNormal, IsTransition, IsCompleted, ...)."""
    assert [str(status) for status in RequestStatus] == ["Pending", "Queued", "Submitted", "Rejected", "Completed"]
    assert {status for status in RequestStatus if status.is_completed} == {
        RequestStatus.REJECTED,
        RequestStatus.COMPLETED,
    }
    assert {status for status in RequestStatus if status.is_transition} == {
        RequestStatus.PENDING,
        RequestStatus.SUBMITTED,
    }
    assert {status for status in RequestStatus if not status.is_normal} == {RequestStatus.REJECTED}
    assert {status for status in RequestStatus if status.can_cancel} == {RequestStatus.QUEUED}


async def test_an_accepted_order_is_submitted_and_completed_once_the_exchange_answers() -> None:
    """plxtra/oms-api OMS2.md ``ClientRequestState``: "Status: The current status of the Request",
    "IsCompleted: Whether the request is considered complete"; oms-init.ps1: ``Submitted`` is a
    transition (it moves on by itself, when the exchange answers), ``Completed`` is completed."""
    books = await trading()
    accepted = (await handle(placed(), books)).events[0]
    assert isinstance(accepted, OrderAccepted) and accepted.request_status is RequestStatus.SUBMITTED
    assert books.orders["o1"].request_status is RequestStatus.SUBMITTED
    await handle(report(ExecutionKind.ACKNOWLEDGED, leaves=100), books)
    assert books.orders["o1"].request_status is RequestStatus.COMPLETED
    completed = only(await handle(report(ExecutionKind.FILLED, fill=(100, "10.00")), books), OrderCompleted)
    assert completed.request_status is RequestStatus.COMPLETED
    assert books.orders["o1"].request_status is RequestStatus.COMPLETED


async def test_a_request_vetting_refuses_or_the_exchange_rejects_is_rejected() -> None:
    """oms-init.ps1: ``Rejected -Completed`` (completed, and not normal); OMS2.md ``OrderUpdateReason``:
    "Rejected: Order changed due to being rejected"."""
    books = await trading("100")
    assert only(await handle(placed(quantity=100), books), OrderRejected).request_status is RequestStatus.REJECTED
    assert books.orders["o1"].request_status is RequestStatus.REJECTED
    books = await trading()
    await handle(placed(), books)
    completed = only(await handle(report(ExecutionKind.REJECTED, reason="halted"), books), OrderCompleted)
    assert completed.request_status is RequestStatus.REJECTED
    assert books.orders["o1"].request_status is RequestStatus.REJECTED


@pytest.mark.parametrize(
    ("outcome", "status"),
    [(OrderOutcome.REJECTED, RequestStatus.REJECTED), (OrderOutcome.CANCELLED, RequestStatus.COMPLETED)],
)
def test_an_order_completed_recorded_before_request_statuses_reads_with_the_one_its_outcome_gives(
    outcome: OrderOutcome, status: RequestStatus
) -> None:
    """An ``xosp.order.completed.v1`` already on the topic has no status: the exchange's rejection is
    ``Rejected`` and every other end ``Completed`` (oms-init.ps1), as the OMS reports them now."""
    old = {
        "order_id": "o1",
        "account_id": ACCOUNT,
        "instrument": INSTRUMENT,
        "outcome": str(outcome),
        "filled_quantity": 0,
        "filled_value": {"amount": "0", "currency": "AUD"},
    }
    assert OrderCompleted.model_validate(old).request_status is status
    with pytest.raises(ValueError, match="request status"):
        OrderCompleted.model_validate({**old, "request_status": "Submitted"})


def test_trade_types_are_oms2s() -> None:
    """plxtra/oms-api OMS2.md ``OrderTradeType``: ``Trade`` (10, "Trade execution"), ``Correction``
    (11, "Trade correction"), ``Cancel`` (12, "Trade cancellation"); ``OrderTrade.Type``: "The type
    of trade". A fill recorded before trade types reads as a ``Trade``; only a fill has one."""
    assert [str(kind) for kind in TradeType] == ["Trade", "Correction", "Cancel"]
    fill = report(ExecutionKind.FILLED, fill=(40, "10.00"), leaves=60)
    assert fill.trade_type is TradeType.TRADE
    old = json.loads(fill.model_dump_json(exclude={"trade_type"}))
    assert ExecutionReported.model_validate(old).trade_type is TradeType.TRADE
    ack = report(ExecutionKind.ACKNOWLEDGED, leaves=100)
    assert ack.trade_type is None
    with pytest.raises(ValueError, match="trade_type"):
        ExecutionReported.model_validate({**json.loads(ack.model_dump_json()), "trade_type": "Trade"})


@pytest.mark.parametrize("trade_type", [TradeType.CORRECTION, TradeType.CANCEL])
async def test_a_trade_correction_or_cancellation_is_not_booked_as_a_fill(trade_type: TradeType) -> None:
    """OMS2.md ``OrderUpdateReason``: ``TradeCorrection`` and ``TradeCancel`` change an order
    otherwise than a ``Trade`` does; until the OMS applies them, it books neither as a fill."""
    books = await trading()
    await handle(placed(), books)
    await handle(report(ExecutionKind.FILLED, fill=(40, "10.00"), leaves=60), books)
    corrected = report(ExecutionKind.FILLED, fill=(40, "9.00"), trade="T2", leaves=20)
    with pytest.raises(DomainError, match=f"trade {trade_type}"):
        await handle(corrected.model_copy(update={"trade_type": trade_type}), books)
    assert (books.orders["o1"].filled_quantity, books.holdings[(ACCOUNT, INSTRUMENT)]) == (
        40,
        HoldingPosition(INSTRUMENT, 40, 0),
    )


async def test_positions_carry_the_fields_oms2_names() -> None:
    """plxtra/oms-api OMS2.md ``CashPosition``: "Balance: The booked (settled) balance",
    "UnfilledBuys: The total of unfilled buy orders"; ``AssetPosition``: "Quantity: The quantity of
    units held", "UnfilledSells: The quantity of unfilled sell orders"."""
    books = await holding_shares(100)
    await handle(placed("s1", side=OrderSide.SELL, quantity=60), books)
    await handle(placed("b1", quantity=10, limit="10.00"), books)
    cash = books.cash_positions[(ACCOUNT, "AUD")]
    holding = books.holdings[(ACCOUNT, INSTRUMENT)]
    assert (cash.balance, cash.unfilled_buys, cash.available) == (Decimal(4000), Decimal(100), Decimal(3900))
    assert (holding.quantity, holding.unfilled_sells, holding.available) == (100, 60, 40)
