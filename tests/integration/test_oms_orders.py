"""The OMS's order flow on the real stack: vetting (a rejection per check and per rule of
plxtra/xosp Config/Zenith/Vetting.config, with the rule and its parameters), routing, fills into
positions, completion, cancels, and redelivered reports. The test publishes what the exchanges,
the gateway, Resource Authorisation and the registry would; each test has an exchange and
accounts of its own."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import pytest_asyncio

from consumers.oms import queries
from consumers.oms.orders import OrderState
from consumers.oms.service import SERVICE
from producers import Outgoing
from schemas import Event
from schemas.accounts import AccountLogin, Investor, TradingAccountOpened, TradingAccountSuspended, VettingLimits
from schemas.authorisation import AccessRevoked, AccountAccessGranted, RevokedScope
from schemas.exchanges import ExchangeRemoved, ExchangeSuspended, ExchangeUpdated
from schemas.gateway import (
    FINAL_KINDS,
    ExecutionKind,
    ExecutionReported,
    InstrumentPrice,
    OmsAdapterRegistered,
    OmsAdapterStopped,
    TradeType,
)
from schemas.oms import (
    AccountState,
    OrderAccepted,
    OrderCancelRejected,
    OrderCancelRouted,
    OrderCompleted,
    OrderOutcome,
    OrderRejected,
    OrderRouted,
    RejectionCode,
    RejectionCodeV1,
    RequestStatus,
    VettingRule,
)
from schemas.orders import OrderCancelRequested, OrderPlaced
from schemas.registry import CashMovementApplied, RegistryAccountStateChanged
from schemas.types import AccountRight, InvestorType, Money, OrderLifetime, OrderSide, OrderType, PositiveMoney
from tests.conftest import Stack, XbusCli
from tests.integration.test_pending_prerequisites import dlq
from tests.support.exchanges import new_exchange_code
from tests.support.service_under_test import Handled, ServiceUnderTest, module_settings
from xbus.trading import prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

LOGIN = "login-1"
#: The reference price of an exchange's first instrument; its second has none.
REFERENCE = Decimal("10.00")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def oms(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await module_settings(stack)) as service:
        yield service


@dataclass(frozen=True)
class Venue:
    """An exchange of the test's own: its first instrument has a reference price, its second none."""

    code: str
    instrument: str
    unpriced: str

    def listing(self, *, registered: bool = True) -> list[Event]:
        """What lists it in the OMS: ``ExchangeAdded`` and, unless not ``registered``, its adapter."""
        added = prodigy_exchange(self.code, markets=1, symbols=2)
        return [added, adapter_registered(self)] if registered else [added]


def adapter_registered(venue: Venue) -> OmsAdapterRegistered:
    return OmsAdapterRegistered(
        flow_id=str(uuid.uuid4()),
        exchange=venue.code,
        adapter="prodigy",
        reference_prices=(InstrumentPrice(instrument=venue.instrument, price=REFERENCE),),
    )


@pytest.fixture
def venue() -> Venue:
    """A new exchange, not yet listed: :func:`open_account` lists it with the account (one round trip)."""
    code = new_exchange_code()
    return Venue(code, f"XS01.{code}", f"XS02.{code}")


async def open_account(
    oms: ServiceUnderTest,
    venue: Venue,
    *,
    cash: str | None = "5000.00",
    rights: tuple[AccountRight, ...] = (AccountRight.VIEW, AccountRight.TRADE),
    vetting: VettingLimits = VettingLimits(),
    allowed: tuple[str, ...] | None = None,
    listing: list[Event] | None = None,
    login: str = LOGIN,
) -> str:
    """An account allowed on ``venue``, ``login`` granted ``rights`` on it, ``cash`` AUD deposited; and
    ``venue`` listed by ``listing`` (its exchange and adapter unless told otherwise)."""
    account_id = f"XS:{uuid.uuid4().hex[:12]}"
    events: list[Event] = [
        *(venue.listing() if listing is None else listing),
        TradingAccountOpened(
            account_id=account_id,
            owner="XS",
            name="Growth fund",
            classification="Retail",
            default_currency="AUD",
            investor=Investor(investor_id="INV-1", full_name="Jo Citizen", country="AU", type=InvestorType.INDIVIDUAL),
            allowed_exchanges=(venue.code,) if allowed is None else allowed,
            vetting=vetting,
        ),
        AccountAccessGranted(
            flow_id=str(uuid.uuid4()), account_id=account_id, logins=(AccountLogin(login_id=login, rights=rights),)
        ),
    ]
    if cash is not None:
        events.append(deposit(account_id, cash))
    await oms.handle(*events)
    return account_id


def deposit(account_id: str, amount: str) -> CashMovementApplied:
    return CashMovementApplied(
        flow_id=str(uuid.uuid4()),
        account_id=account_id,
        delta=Money(amount=Decimal(amount), currency="AUD"),
        balance=Money(amount=Decimal(amount), currency="AUD"),
        reference=f"dep-{uuid.uuid4().hex[:8]}",
    )


def order(
    account_id: str,
    instrument: str,
    quantity: int = 100,
    limit: str | None = "10.00",
    *,
    side: OrderSide = OrderSide.BUY,
    order_id: str | None = None,
    login_id: str = LOGIN,
) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id or f"ord-{uuid.uuid4().hex[:12]}",
        account_id=account_id,
        login_id=login_id,
        instrument=instrument,
        side=side,
        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
        quantity=quantity,
        limit_price=Decimal(limit) if limit is not None else None,
        lifetime=OrderLifetime.DAY,
    )


def report(
    placed: OrderPlaced,
    venue: Venue,
    kind: ExecutionKind,
    *,
    filled: int = 0,
    cumulative: int = 0,
    price: str | None = None,
    trade: str | None = None,
) -> ExecutionReported:
    """What the gateway reports for ``placed``: ``filled`` at ``price`` (a fill), ``cumulative`` so far."""
    return ExecutionReported(
        exchange=venue.code,
        order_id=placed.order_id,
        account_id=placed.account_id,
        instrument=placed.instrument,
        side=placed.side,
        kind=kind,
        currency="AUD",
        settles_through_registry=True,
        fill_quantity=filled,
        fill_price=Decimal(price) if price is not None else None,
        venue_trade_id=(trade or f"T-{uuid.uuid4().hex[:8]}") if kind is ExecutionKind.FILLED else None,
        cumulative_quantity=cumulative,
        leaves_quantity=0 if kind in FINAL_KINDS else placed.quantity - cumulative,
    )


def rejection(handled: Handled) -> OrderRejected:
    [rejected] = handled.follow_ups
    assert isinstance(rejected, OrderRejected), handled.follow_ups
    return rejected


async def rejected_code(oms: ServiceUnderTest, placed: OrderPlaced) -> RejectionCode:
    rejected = rejection(await oms.handle(placed))
    assert (rejected.order_id, rejected.account_id, rejected.login_id) == (
        placed.order_id,
        placed.account_id,
        placed.login_id,
    )
    return rejected.code


async def accept(oms: ServiceUnderTest, placed: OrderPlaced) -> tuple[OrderAccepted, OrderRouted]:
    """The order's acceptance and its instruction to the exchange (on partitions of their own)."""
    follow_ups = (await oms.handle(placed)).follow_ups
    accepted = [event for event in follow_ups if isinstance(event, OrderAccepted)]
    routed = [event for event in follow_ups if isinstance(event, OrderRouted)]
    assert len(accepted) == len(routed) == 1 and len(follow_ups) == 2, follow_ups
    return accepted[0], routed[0]


async def cash_of(oms: ServiceUnderTest, account_id: str) -> tuple[Decimal, Decimal, Decimal]:
    """Balance, unfilled buys and available AUD."""
    cash = (await queries.positions(oms.db, account_id)).cash_in("AUD")
    return cash.balance, cash.unfilled_buys, cash.available


async def holding_of(oms: ServiceUnderTest, account_id: str, instrument: str) -> tuple[int, int, int]:
    """Quantity, unfilled sells and available."""
    holding = (await queries.positions(oms.db, account_id)).holding_of(instrument)
    return holding.quantity, holding.unfilled_sells, holding.available


# --- accepted, routed, filled, completed ---------------------------------------------------------


async def test_an_accepted_buy_is_routed_to_the_exchange_with_its_reservation(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    account_id = await open_account(oms, venue)
    placed = order(account_id, venue.instrument, 100, "10.00")

    accepted, routed = await accept(oms, placed)
    assert accepted == OrderAccepted(
        order_id=placed.order_id,
        account_id=account_id,
        login_id=LOGIN,
        exchange=venue.code,
        instrument=venue.instrument,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=100,
        limit_price=Decimal("10.00"),
        lifetime=OrderLifetime.DAY,
        reserved=Money(amount=Decimal("1000.00"), currency="AUD"),
    )
    assert routed == OrderRouted(
        order_id=placed.order_id,
        account_id=account_id,
        exchange=venue.code,
        adapter="prodigy",
        instrument=venue.instrument,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=100,
        limit_price=Decimal("10.00"),
        lifetime=OrderLifetime.DAY,
        currency="AUD",
        settles_through_registry=True,
    )
    assert routed.aggregate_id == venue.instrument  # keyed by instrument, for the gateway
    assert await cash_of(oms, account_id) == (Decimal("5000"), Decimal("1000"), Decimal("4000"))
    stored = await queries.order(oms.db, placed.order_id)
    assert stored is not None and (stored.state, stored.reserved) == (OrderState.ROUTED, Decimal("1000"))


async def test_a_market_buy_is_protected_and_reserves_at_its_protection_price(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    account_id = await open_account(oms, venue)
    placed = order(account_id, venue.instrument, 100, limit=None)

    accepted, routed = await accept(oms, placed)
    assert (accepted.protection_price, routed.protection_price) == (Decimal("11.00"), Decimal("11.00"))
    assert accepted.reserved == Money(amount=Decimal("1100.00"), currency="AUD")
    assert routed.limit_price is None and routed.order_type is OrderType.MARKET


async def test_partial_fills_then_a_final_fill_complete_the_order_and_book_positions(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    account_id = await open_account(oms, venue)
    placed = order(account_id, venue.instrument, 100, "10.00")
    await accept(oms, placed)

    acknowledged = await oms.handle(report(placed, venue, ExecutionKind.ACKNOWLEDGED))
    first = await oms.handle(
        report(placed, venue, ExecutionKind.FILLED, filled=40, cumulative=40, price="9.90"),
        report(placed, venue, ExecutionKind.FILLED, filled=25, cumulative=65, price="9.95"),
    )
    assert acknowledged.follow_ups == first.follow_ups == []
    partly = await queries.order(oms.db, placed.order_id)
    assert partly is not None
    assert (partly.state, partly.filled_quantity, partly.filled_value) == (
        OrderState.PARTIALLY_FILLED,
        65,
        Decimal("644.75"),
    )
    # each fill released its quantity at the reservation price (10.00), not at its own
    assert await cash_of(oms, account_id) == (Decimal("4355.25"), Decimal("350"), Decimal("4005.25"))

    last = await oms.handle(report(placed, venue, ExecutionKind.FILLED, filled=35, cumulative=100, price="10.00"))
    assert last.follow_ups == [
        OrderCompleted(
            order_id=placed.order_id,
            account_id=account_id,
            instrument=venue.instrument,
            outcome=OrderOutcome.FILLED,
            filled_quantity=100,
            filled_value=Money(amount=Decimal("994.75"), currency="AUD"),
        )
    ]
    assert await cash_of(oms, account_id) == (Decimal("4005.25"), Decimal(0), Decimal("4005.25"))
    assert await holding_of(oms, account_id, venue.instrument) == (100, 0, 100)
    done = await queries.order(oms.db, placed.order_id)
    assert done is not None
    assert (done.state, done.outcome, done.filled_quantity, done.reserved) == (
        OrderState.COMPLETED,
        OrderOutcome.FILLED,
        100,
        Decimal(0),
    )


async def test_the_latest_fill_price_becomes_the_last_price_a_market_order_is_protected_by(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    account_id = await open_account(oms, venue)
    first = order(account_id, venue.instrument, 10, "10.50")
    await accept(oms, first)
    await oms.handle(report(first, venue, ExecutionKind.FILLED, filled=10, cumulative=10, price="10.50"))

    # neither an adapter's reference price nor a fill reported as earlier moves it back
    earlier = order(account_id, venue.instrument, 10, "10.00")
    await accept(oms, earlier)
    late = report(earlier, venue, ExecutionKind.FILLED, filled=10, cumulative=10, price="10.00")
    await oms.handle(adapter_registered(venue), Outgoing(late, time=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)))

    accepted, _ = await accept(oms, order(account_id, venue.instrument, 10, limit=None))
    assert accepted.protection_price == Decimal("11.55")  # 10.50 + 10 %


async def test_an_accepted_sell_holds_back_its_quantity_and_its_fill_books_the_proceeds(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    account_id = await open_account(oms, venue)
    bought = order(account_id, venue.instrument, 100, "10.00")
    await accept(oms, bought)
    await oms.handle(report(bought, venue, ExecutionKind.FILLED, filled=100, cumulative=100, price="10.00"))

    sold = order(account_id, venue.instrument, 60, "10.50", side=OrderSide.SELL)
    accepted, routed = await accept(oms, sold)
    assert accepted.reserved is None and routed.side is OrderSide.SELL
    assert await holding_of(oms, account_id, venue.instrument) == (100, 60, 40)

    handled = await oms.handle(
        report(sold, venue, ExecutionKind.FILLED, filled=20, cumulative=20, price="10.50"),
        report(sold, venue, ExecutionKind.EXPIRED, cumulative=20),
    )
    [completed] = handled.follow_ups
    assert isinstance(completed, OrderCompleted)
    assert (completed.outcome, completed.filled_quantity, completed.filled_value.amount) == (
        OrderOutcome.EXPIRED,
        20,
        Decimal("210.00"),
    )
    assert await holding_of(oms, account_id, venue.instrument) == (80, 0, 80)
    assert await cash_of(oms, account_id) == (Decimal("4210.00"), Decimal(0), Decimal("4210.00"))


# --- cancels --------------------------------------------------------------------------------------


async def test_a_cancel_of_an_open_order_is_routed_and_the_final_report_releases_the_reservation(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    account_id = await open_account(oms, venue)
    placed = order(account_id, venue.instrument, 100, "10.00")
    await accept(oms, placed)
    await oms.handle(report(placed, venue, ExecutionKind.FILLED, filled=30, cumulative=30, price="10.00"))

    cancel = OrderCancelRequested(order_id=placed.order_id, account_id=account_id, login_id=LOGIN, reason="changed")
    assert (await oms.handle(cancel)).follow_ups == [
        OrderCancelRouted(
            order_id=placed.order_id,
            account_id=account_id,
            exchange=venue.code,
            adapter="prodigy",
            instrument=venue.instrument,
            reason="changed",
        )
    ]
    assert await cash_of(oms, account_id) == (Decimal("4700"), Decimal("700"), Decimal("4000"))

    cancelled = await oms.handle(report(placed, venue, ExecutionKind.CANCELLED, cumulative=30))
    [completed] = cancelled.follow_ups
    assert completed == OrderCompleted(
        order_id=placed.order_id,
        account_id=account_id,
        instrument=venue.instrument,
        outcome=OrderOutcome.CANCELLED,
        filled_quantity=30,
        filled_value=Money(amount=Decimal("300.00"), currency="AUD"),
    )
    assert await cash_of(oms, account_id) == (Decimal("4700"), Decimal(0), Decimal("4700"))


async def test_a_cancel_of_an_unknown_or_completed_order_is_rejected(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)
    placed = order(account_id, venue.instrument, 10, "10.00")
    await accept(oms, placed)
    await oms.handle(report(placed, venue, ExecutionKind.FILLED, filled=10, cumulative=10, price="10.00"))

    unknown = OrderCancelRequested(order_id="ord-nobody", account_id=account_id, login_id=LOGIN)
    completed = OrderCancelRequested(order_id=placed.order_id, account_id=account_id, login_id=LOGIN)
    handled = await oms.handle(unknown, completed)
    assert [
        (event.order_id, event.reason) for event in handled.follow_ups if isinstance(event, OrderCancelRejected)
    ] == [
        (
            "ord-nobody",
            f"trading account {account_id} has no order ord-nobody; check the order id (an order that has just "
            "been placed may not be known yet)",
        ),
        (placed.order_id, f"order {placed.order_id} is already over (filled): there is nothing left to cancel"),
    ]
    assert len(handled.follow_ups) == 2


async def test_a_cancel_by_a_login_without_the_trade_right_is_rejected(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)
    placed = order(account_id, venue.instrument, 10, "10.00")
    await accept(oms, placed)

    handled = await oms.handle(OrderCancelRequested(order_id=placed.order_id, account_id=account_id, login_id="peeker"))
    [refused] = handled.follow_ups
    assert isinstance(refused, OrderCancelRejected) and "peeker has no trade right" in refused.reason


# --- reports delivered twice ---------------------------------------------------------------------


async def test_a_redelivered_execution_report_changes_nothing(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)
    placed = order(account_id, venue.instrument, 100, "10.00")
    await accept(oms, placed)
    fill = report(placed, venue, ExecutionKind.FILLED, filled=40, cumulative=40, price="10.00")
    event_id = str(uuid.uuid4())
    await oms.handle(Outgoing(fill, event_id=event_id))
    before = (await cash_of(oms, account_id), await holding_of(oms, account_id, venue.instrument))

    # the acknowledgement after it on the same partition tells when the OMS has read the copy
    again = await oms.handle(Outgoing(fill, event_id=event_id), report(placed, venue, ExecutionKind.ACKNOWLEDGED))
    assert again.follow_ups == []
    assert (await cash_of(oms, account_id), await holding_of(oms, account_id, venue.instrument)) == before
    stored = await queries.order(oms.db, placed.order_id)
    assert stored is not None and (stored.filled_quantity, stored.filled_value) == (40, Decimal("400"))


async def test_a_fill_reported_again_under_a_new_event_id_is_booked_once(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)
    placed = order(account_id, venue.instrument, 100, "10.00")
    await accept(oms, placed)
    fill = report(placed, venue, ExecutionKind.FILLED, filled=40, cumulative=40, price="10.00", trade="T-same")

    handled = await oms.handle(fill, fill)
    assert handled.follow_ups == []
    assert await cash_of(oms, account_id) == (Decimal("4600"), Decimal("600"), Decimal("4000"))
    assert await holding_of(oms, account_id, venue.instrument) == (40, 0, 40)


async def test_a_report_for_an_order_never_routed_goes_to_dead_letter(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)
    never = order(account_id, venue.instrument, 10, "10.00")

    handled = await oms.handle(report(never, venue, ExecutionKind.FILLED, filled=10, cumulative=10, price="10.00"))
    assert handled.follow_ups == []
    assert await oms.dead_lettered(handled.flow_id)
    assert await holding_of(oms, account_id, venue.instrument) == (0, 0, 0)


# --- request statuses and trade types (plxtra/oms-api OMS2.md) ------------------------------------


async def test_each_request_reports_and_keeps_its_status_as_the_platforms_oms_names_it(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    """plxtra/oms-api OMS2.md ``ClientRequestState``: "Status: The current status of the Request";
    plxtra/xosp Config/Init/oms-init.ps1 defines ``Submitted -Normal -Transition``,
    ``Rejected -Completed`` and ``Completed -Normal -Completed`` for XOSP."""
    account_id = await open_account(oms, venue, cash="1500.00")
    filled, refused = (order(account_id, venue.instrument, 100, "10.00") for _ in range(2))
    halted = order(account_id, venue.instrument, 10, "10.00")

    accepted, _ = await accept(oms, filled)
    assert accepted.request_status is RequestStatus.SUBMITTED
    assert await request_status(oms, filled) is RequestStatus.SUBMITTED
    await oms.handle(report(filled, venue, ExecutionKind.ACKNOWLEDGED))
    assert await request_status(oms, filled) is RequestStatus.COMPLETED
    [completed] = (
        await oms.handle(report(filled, venue, ExecutionKind.FILLED, filled=100, cumulative=100, price="10.00"))
    ).follow_ups
    assert isinstance(completed, OrderCompleted) and completed.request_status is RequestStatus.COMPLETED

    assert rejection(await oms.handle(refused)).request_status is RequestStatus.REJECTED  # 500 AUD left
    assert await request_status(oms, refused) is RequestStatus.REJECTED

    await accept(oms, halted)
    [ended] = (await oms.handle(report(halted, venue, ExecutionKind.REJECTED))).follow_ups
    assert isinstance(ended, OrderCompleted) and ended.request_status is RequestStatus.REJECTED
    assert await request_status(oms, halted) is RequestStatus.REJECTED


async def test_a_trade_cancellation_goes_to_dead_letter_and_books_nothing(oms: ServiceUnderTest, venue: Venue) -> None:
    """plxtra/oms-api OMS2.md ``OrderTradeType``: ``Cancel`` (12) is a "Trade cancellation", not a
    "Trade execution" (``Trade``, 10): the OMS does not book it as a fill."""
    account_id = await open_account(oms, venue)
    placed = order(account_id, venue.instrument, 100, "10.00")
    await accept(oms, placed)
    bust = report(placed, venue, ExecutionKind.FILLED, filled=40, cumulative=40, price="10.00")

    handled = await oms.handle(bust.model_copy(update={"trade_type": TradeType.CANCEL}))
    assert handled.follow_ups == []
    assert await oms.dead_lettered(handled.flow_id)
    assert await holding_of(oms, account_id, venue.instrument) == (0, 0, 0)


async def request_status(oms: ServiceUnderTest, placed: OrderPlaced) -> RequestStatus:
    stored = await queries.order(oms.db, placed.order_id)
    assert stored is not None
    return stored.request_status


# --- exchanges ----------------------------------------------------------------------------------


async def test_an_updated_exchange_lists_its_new_instruments_and_a_removed_one_takes_no_orders(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    account_id = await open_account(oms, venue)
    third = f"XS03.{venue.code}"
    assert await rejected_code(oms, order(account_id, third)) is RejectionCode.INSTRUMENT_UNKNOWN

    markets = prodigy_exchange(venue.code, markets=1, symbols=3).markets
    await oms.handle(ExchangeUpdated(code=venue.code, markets=markets))
    await accept(oms, order(account_id, third, 10, "10.00"))  # no last price yet: the limit is not range-checked

    await oms.handle(ExchangeRemoved(code=venue.code, reason="delisted"))
    assert await rejected_code(oms, order(account_id, third, 10, "10.00")) is RejectionCode.EXCHANGE_NOT_ACTIVE


async def test_a_removed_exchange_stays_removed_when_a_suspension_comes_after(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    account_id = await open_account(oms, venue)
    await oms.handle(ExchangeRemoved(code=venue.code, reason="delisted"))

    suspended = await oms.handle(ExchangeSuspended(code=venue.code, reason="trading halted"))
    assert suspended.follow_ups == [] and not await oms.dead_lettered(suspended.flow_id)
    rejected = rejection(await oms.handle(order(account_id, venue.instrument)))
    assert rejected.code is RejectionCode.EXCHANGE_NOT_ACTIVE
    assert f"exchange {venue.code} is removed (delisted)" in rejected.reason
    await oms.handle(*venue.listing())  # added again: listed anew, and then it can be suspended
    await oms.handle(ExchangeSuspended(code=venue.code, reason="trading halted"))
    rejected = rejection(await oms.handle(order(account_id, venue.instrument)))
    assert f"exchange {venue.code} is suspended (trading halted)" in rejected.reason


async def test_an_exchange_listing_a_market_another_exchange_lists_goes_to_dead_letter(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    await oms.handle(*venue.listing())
    rival = prodigy_exchange(new_exchange_code(), markets=1).model_copy(
        update={"markets": prodigy_exchange(venue.code, markets=1).markets}
    )
    handled = await oms.handle(rival)
    assert await oms.dead_lettered(handled.flow_id)


# --- a rejection per check, and per rule of Vetting.config's OMS.General ------------------------


async def test_an_order_id_used_before_is_a_duplicate(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)
    first = order(account_id, venue.instrument, 10, "10.00")
    await accept(oms, first)

    assert await rejected_code(oms, order(account_id, venue.instrument, 20, "10.00", order_id=first.order_id)) is (
        RejectionCode.ORDER_DUPLICATE
    )
    stored = await queries.order(oms.db, first.order_id)
    assert stored is not None and (stored.quantity, stored.state) == (10, OrderState.ROUTED)


async def test_an_order_for_an_unknown_account_is_rejected_and_kept(oms: ServiceUnderTest, venue: Venue) -> None:
    placed = order(f"XS:{uuid.uuid4().hex[:12]}", venue.instrument)
    rejected = rejection(await oms.handle(placed))
    assert rejected.code is RejectionCode.ACCOUNT_UNKNOWN
    assert rejected.reason.startswith(f"trading account {placed.account_id} is not known to the OMS")
    stored = await queries.order(oms.db, placed.order_id)
    assert stored is not None
    assert (stored.state, stored.rejection_code, stored.reason) == (
        OrderState.REJECTED,
        RejectionCode.ACCOUNT_UNKNOWN,
        rejected.reason,
    )


async def test_an_order_rejected_under_a_retired_code_is_still_read_as_it_was_stored(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    """An order the OMS rejected before the codes became Vetting.config's keeps its code: it is read
    back (and a cancel of it refused naming it), not refused as an unknown value."""
    account_id = await open_account(oms, venue)
    order_id = f"ord-{uuid.uuid4().hex[:12]}"
    await oms.db.execute(
        "insert into orders (order_id, account_id, login_id, instrument, side, order_type, quantity, limit_price,"
        " lifetime, state, rejection_code, reason, placed_at, changed_at)"
        " values ($1, $2, $3, $4, 'BUY', 'LIMIT', 10, 8.99, 'DAY', 'rejected', 'Price.OutOfRange', 'out of range',"
        " now(), now())",
        order_id,
        account_id,
        LOGIN,
        venue.instrument,
    )

    stored = await queries.order(oms.db, order_id)
    assert stored is not None and stored.rejection_code is RejectionCodeV1.PRICE_OUT_OF_RANGE
    [refused] = (
        await oms.handle(OrderCancelRequested(order_id=order_id, account_id=account_id, login_id=LOGIN))
    ).follow_ups
    assert isinstance(refused, OrderCancelRejected)
    assert refused.reason == f"order {order_id} was rejected (Price.OutOfRange): there is nothing to cancel"


async def test_an_order_for_a_suspended_account_is_rejected(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)
    await oms.handle(TradingAccountSuspended(account_id=account_id, reason="margin call"))

    rejected = rejection(await oms.handle(order(account_id, venue.instrument)))
    assert (rejected.code, rejected.rule, rejected.parameters) == (
        RejectionCode.ACCOUNT_INACTIVE,
        VettingRule.IMPLICIT,
        (),
    )


async def test_an_order_for_an_account_the_registry_closed_is_rejected(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)
    await oms.handle(
        RegistryAccountStateChanged(flow_id=str(uuid.uuid4()), account_id=account_id, state=AccountState.CLOSED)
    )

    assert await rejected_code(oms, order(account_id, venue.instrument)) is RejectionCode.ACCOUNT_INACTIVE


async def test_a_login_never_granted_the_trade_right_is_rejected(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue, rights=(AccountRight.VIEW,))

    assert await rejected_code(oms, order(account_id, venue.instrument)) is RejectionCode.LOGIN_NO_TRADE_RIGHT
    assert await rejected_code(oms, order(account_id, venue.instrument, login_id="stranger")) is (
        RejectionCode.LOGIN_NO_TRADE_RIGHT
    )


@pytest.mark.parametrize("scope", list(RevokedScope))
async def test_a_login_whose_trade_right_was_revoked_is_rejected(
    oms: ServiceUnderTest, venue: Venue, scope: RevokedScope
) -> None:
    login = f"login-{uuid.uuid4().hex[:8]}"  # a login disabled stays so: not the module's LOGIN
    account_id = await open_account(oms, venue, login=login)
    await accept(oms, order(account_id, venue.instrument, 10, login_id=login))
    subject = login if scope is RevokedScope.LOGIN else account_id
    await oms.handle(
        AccessRevoked(
            flow_id=str(uuid.uuid4()),
            scope=scope,
            subject_id=subject,
            login_ids=(login,),
            account_id=None if scope is RevokedScope.LOGIN else account_id,
            reason="login disabled",
        )
    )

    assert await rejected_code(oms, order(account_id, venue.instrument, 10, login_id=login)) is (
        RejectionCode.LOGIN_NO_TRADE_RIGHT
    )


async def test_an_instrument_no_exchange_lists_is_unknown(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)

    assert await rejected_code(oms, order(account_id, f"NOPE.{venue.code}")) is RejectionCode.INSTRUMENT_UNKNOWN


async def test_an_exchange_the_account_is_not_allowed_on_is_rejected(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue, allowed=("XSX",))

    assert await rejected_code(oms, order(account_id, venue.instrument)) is RejectionCode.EXCHANGE_NOT_ALLOWED


async def test_an_exchange_whose_adapter_is_not_registered_yet_is_not_active(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    account_id = await open_account(oms, venue, listing=venue.listing(registered=False))

    assert await rejected_code(oms, order(account_id, venue.instrument)) is RejectionCode.EXCHANGE_NOT_ACTIVE
    await oms.handle(adapter_registered(venue))
    await accept(oms, order(account_id, venue.instrument))


async def test_a_suspended_exchange_is_not_active(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)
    await oms.handle(ExchangeSuspended(code=venue.code, reason="trading halted"))

    rejected = rejection(await oms.handle(order(account_id, venue.instrument)))
    assert rejected.code is RejectionCode.EXCHANGE_NOT_ACTIVE
    assert f"exchange {venue.code} is suspended (trading halted)" in rejected.reason


async def test_an_exchange_whose_adapter_stopped_is_not_active(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)
    await oms.handle(
        OmsAdapterStopped(flow_id=str(uuid.uuid4()), exchange=venue.code, adapter="prodigy", reason="exchange removed")
    )

    assert await rejected_code(oms, order(account_id, venue.instrument)) is RejectionCode.EXCHANGE_NOT_ACTIVE


async def test_a_short_sell_is_unsupported(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)

    placed = order(account_id, venue.instrument, side=OrderSide.SHORTSELL)
    assert await rejected_code(oms, placed) is RejectionCode.ORDER_UNSUPPORTED


async def test_a_quantity_above_the_accounts_limit_is_rejected(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue, vetting=VettingLimits(max_order_quantity=50))

    assert await rejected_code(oms, order(account_id, venue.instrument, 51)) is (
        RejectionCode.ACCOUNT_MAX_ORDER_QUANTITY
    )


async def test_a_bid_too_far_above_the_last_price_is_refused_with_its_rule_and_one_far_below_is_accepted(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    """Vetting.config, OMS.Compliance: ``RUN IF order.side IS Bid { FAIL WITH [OrderPrice.TooFarAbove,
    '10.0%'] IF (100 * (details.price - market.lastorclose) / market.lastorclose) > 10.0 }``; an ask
    ``< -10.0`` below is ``[OrderPrice.TooFarBelow, '-10.0%']``. A bid below the market, or an ask
    above it, is no risk: accepted (the OMS refused both within ±10 % before)."""
    account_id = await open_account(oms, venue)

    too_high = order(account_id, venue.instrument, 10, "11.01")
    rejected = rejection(await oms.handle(too_high))
    assert (rejected.code, rejected.rule, rejected.parameters) == (
        RejectionCode.ORDER_PRICE_TOO_FAR_ABOVE,
        VettingRule.COMPLIANCE,
        ("10.0%",),
    )
    stored = await queries.order(oms.db, too_high.order_id)
    assert stored is not None and (stored.state, stored.rejection_code) == (
        OrderState.REJECTED,
        RejectionCode.ORDER_PRICE_TOO_FAR_ABOVE,
    )
    await accept(oms, order(account_id, venue.instrument, 10, "11.00"))
    await accept(oms, order(account_id, venue.instrument, 10, "5.00"))  # half the last price

    bought = order(account_id, venue.instrument, 100, "10.00")
    await accept(oms, bought)
    await oms.handle(report(bought, venue, ExecutionKind.FILLED, filled=100, cumulative=100, price="10.00"))
    rejected = rejection(await oms.handle(order(account_id, venue.instrument, 10, "8.99", side=OrderSide.SELL)))
    assert (rejected.code, rejected.parameters) == (RejectionCode.ORDER_PRICE_TOO_FAR_BELOW, ("-10.0%",))
    await accept(oms, order(account_id, venue.instrument, 10, "20.00", side=OrderSide.SELL))  # twice the last


async def test_an_order_without_a_last_price_is_not_price_checked_but_the_platforms_limits_hold(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    """Vetting.config, OMS.Compliance: ``RUN IF market HAS lastorclose  # Must have a price to work
    with``, else nothing fails; OMS.Limits: ``FAIL WITH [OrderPrice.Exceed, '200.00'] IF details.price
    > 200.00``."""
    account_id = await open_account(oms, venue)

    await accept(oms, order(account_id, venue.unpriced, 10, "150.00"))
    rejected = rejection(await oms.handle(order(account_id, venue.unpriced, 1, "200.01")))
    assert (rejected.code, rejected.rule, rejected.parameters) == (
        RejectionCode.ORDER_PRICE_EXCEED,
        VettingRule.LIMITS,
        ("200.00",),
    )


async def test_a_market_order_on_an_instrument_without_a_last_price_cannot_be_priced(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    account_id = await open_account(oms, venue)

    rejected = rejection(await oms.handle(order(account_id, venue.unpriced, 10, limit=None)))
    assert (rejected.code, rejected.rule) == (RejectionCode.ORDER_UNPRICED, None)
    assert rejected.reason.endswith(
        "can be given no protection price to be valued and reserved at; place a limit order"
    )


async def test_a_value_above_the_accounts_limit_is_rejected(oms: ServiceUnderTest, venue: Venue) -> None:
    limit = PositiveMoney(amount=Decimal("999.99"), currency="AUD")
    account_id = await open_account(oms, venue, vetting=VettingLimits(max_order_value=limit))

    rejected = rejection(await oms.handle(order(account_id, venue.instrument, 100, "10.00")))
    assert (rejected.code, rejected.parameters) == (RejectionCode.ACCOUNT_MAX_ORDER_VALUE, ("999.99", "AUD"))


async def test_a_value_limit_in_another_currency_than_the_markets_refuses_the_order(
    oms: ServiceUnderTest, venue: Venue
) -> None:
    """Issue 20, defect 6: an account's max order value was silently skipped when its currency
    differed from the market's; the OMS has no exchange rates, so it refuses the order instead."""
    limit = PositiveMoney(amount=Decimal("1000000.00"), currency="USD")
    account_id = await open_account(oms, venue, vetting=VettingLimits(max_order_value=limit))

    rejected = rejection(await oms.handle(order(account_id, venue.instrument, 1, "10.00")))
    assert (rejected.code, rejected.rule, rejected.parameters) == (
        RejectionCode.ACCOUNT_LIMIT_CURRENCY,
        None,
        ("USD", "AUD"),
    )


async def test_a_buy_beyond_available_cash_exceeds_the_balance(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue, cash=None)
    assert await rejected_code(oms, order(account_id, venue.instrument, 10)) is RejectionCode.BALANCE_EXCEED

    await oms.handle(deposit(account_id, "1500.00"))
    await accept(oms, order(account_id, venue.instrument, 100, "10.00"))
    # the 1000.00 the open buy reserves is not available to a second one
    rejected = rejection(await oms.handle(order(account_id, venue.instrument, 60, "10.00")))
    assert (rejected.code, rejected.rule, rejected.parameters) == (
        RejectionCode.BALANCE_EXCEED,
        VettingRule.FUNDING_CHECK,
        ("500.00",),
    )
    assert "500.00 AUD is available (booked 1500.00, reserved by open buys 1000.00)" in rejected.reason
    await accept(oms, order(account_id, venue.instrument, 50, "10.00"))


async def test_a_withdrawal_booked_by_the_registry_reduces_available_cash(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue, cash="1000.00")
    withdrawal = CashMovementApplied(
        flow_id=str(uuid.uuid4()),
        account_id=account_id,
        delta=Money(amount=Decimal("-400.00"), currency="AUD"),
        balance=Money(amount=Decimal("600.00"), currency="AUD"),
        reference="wd-1",
    )
    await oms.handle(withdrawal)

    assert await cash_of(oms, account_id) == (Decimal("600"), Decimal(0), Decimal("600"))
    assert await rejected_code(oms, order(account_id, venue.instrument, 61, "10.00")) is RejectionCode.BALANCE_EXCEED


async def test_a_sell_beyond_available_holdings_is_insufficient(oms: ServiceUnderTest, venue: Venue) -> None:
    account_id = await open_account(oms, venue)
    sell = order(account_id, venue.instrument, 10, side=OrderSide.SELL)
    assert await rejected_code(oms, sell) is RejectionCode.QUANTITY_INSUFFICIENT

    bought = order(account_id, venue.instrument, 100, "10.00")
    await accept(oms, bought)
    await oms.handle(report(bought, venue, ExecutionKind.FILLED, filled=100, cumulative=100, price="10.00"))
    await accept(oms, order(account_id, venue.instrument, 60, side=OrderSide.SELL))
    # 40 left once the open sell's 60 are held back
    assert await rejected_code(oms, order(account_id, venue.instrument, 41, side=OrderSide.SELL)) is (
        RejectionCode.QUANTITY_INSUFFICIENT
    )
    await accept(oms, order(account_id, venue.instrument, 40, side=OrderSide.SELL))


async def _discard(oms: ServiceUnderTest, xbus: XbusCli, event_id: str) -> None:
    done = await asyncio.to_thread(dlq(xbus, oms.settings), "discard", "oms", "--id", event_id, "--reason", "adapter")
    assert done.code == 0 and f"discarded {event_id}" in done.stdout, done.stdout + done.stderr


async def test_the_advice_for_a_report_after_the_final_one_works_when_followed(
    oms: ServiceUnderTest, venue: Venue, xbus: XbusCli
) -> None:
    account_id = await open_account(oms, venue)
    placed = order(account_id, venue.instrument, 10, "10.00")
    await accept(oms, placed)
    await oms.handle(report(placed, venue, ExecutionKind.FILLED, filled=10, cumulative=10, price="10.00"))
    [late] = (await oms.handle(report(placed, venue, ExecutionKind.ACKNOWLEDGED))).event_ids
    reason = await oms.db.fetchval("select error_message from xbus_dead_letters where event_id = $1", late)
    assert "a report after the final one is a fault of the exchange's adapter: discard it" in reason
    following = order(account_id, venue.instrument, 5, "10.00")
    [parked] = (await oms.handle(following)).event_ids  # the account's next order waits behind it

    await _discard(oms, xbus, late)
    assert await oms.db.fetchval("select 1 from xbus_inbox where event_id = $1", parked)
    stored = await queries.order(oms.db, following.order_id)
    assert stored is not None and stored.state is OrderState.ROUTED


async def test_the_advice_for_a_fill_beyond_the_open_quantity_works_when_followed(
    oms: ServiceUnderTest, venue: Venue, xbus: XbusCli
) -> None:
    account_id = await open_account(oms, venue)
    placed = order(account_id, venue.instrument, 10, "10.00")
    await accept(oms, placed)
    await oms.handle(report(placed, venue, ExecutionKind.FILLED, filled=8, cumulative=8, price="10.00"))
    overfill = report(placed, venue, ExecutionKind.FILLED, filled=5, cumulative=10, price="10.00")  # 2 were open
    [wrong] = (await oms.handle(overfill)).event_ids
    reason = await oms.db.fetchval("select error_message from xbus_dead_letters where event_id = $1", wrong)
    assert "check the exchange's adapter, then discard or correct the report" in reason
    correct = report(placed, venue, ExecutionKind.FILLED, filled=2, cumulative=10, price="10.00")
    [corrected] = (await oms.handle(correct)).event_ids  # the adapter's correction waits behind it

    await _discard(oms, xbus, wrong)
    assert await oms.db.fetchval("select 1 from xbus_inbox where event_id = $1", corrected)
    stored = await queries.order(oms.db, placed.order_id)
    assert stored is not None and (stored.state, stored.filled_quantity) == (OrderState.COMPLETED, 10)
