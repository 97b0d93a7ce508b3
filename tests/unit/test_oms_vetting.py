"""The OMS's order rules on their own: vetting (each rule, and the first that fails wins), the
protection price, reservations and what fills release, the order's states and cancels."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.oms.orders import Order, OrderState, cancel_refusal, report_problem, state_after
from consumers.oms.positions import CashPosition, HoldingPosition, book_fill
from consumers.oms.vetting import (
    Acceptance,
    Account,
    Exchange,
    ExchangeState,
    Instrument,
    Rejection,
    Snapshot,
    price_band,
    protection_price,
    vet,
)
from schemas.accounts import VettingLimits
from schemas.gateway import ExecutionKind, ExecutionReported
from schemas.oms import AccountState, OrderOutcome, RejectionCode
from schemas.orders import OrderCancelRequested, OrderPlaced
from schemas.types import AccountRight, OrderLifetime, OrderSide, OrderType, PositiveMoney

ACCOUNT = "XS:0001"
INSTRUMENT = "XS01.XSX"
LAST = Decimal("10.00")


def placed(
    side: OrderSide = OrderSide.BUY,
    order_type: OrderType = OrderType.LIMIT,
    quantity: int = 100,
    limit: str | None = "10.00",
    lifetime: OrderLifetime = OrderLifetime.DAY,
    stop: str | None = None,
) -> OrderPlaced:
    return OrderPlaced(
        order_id="ord-1",
        account_id=ACCOUNT,
        login_id="login-1",
        instrument=INSTRUMENT,
        side=side,
        order_type=order_type,
        quantity=quantity,
        limit_price=Decimal(limit)
        if limit is not None and order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        else None,
        stop_price=Decimal(stop) if stop is not None else None,
        lifetime=lifetime,
        expiry_date=dt.date(2030, 1, 1) if lifetime is OrderLifetime.GOOD_TILL_DATE else None,
    )


def snapshot(order: OrderPlaced | None = None, **changes: object) -> Snapshot:
    """A snapshot every rule lets through (a buy of 100 at 10.00 with 5000.00 AUD), changed by ``changes``."""
    passing = Snapshot(
        order=order or placed(),
        order_id_taken=False,
        account=Account(
            account_id=ACCOUNT,
            state=AccountState.ACTIVE,
            state_reason=None,
            allowed_exchanges=("XSX",),
            limits=VettingLimits(
                max_order_value=PositiveMoney(amount=Decimal("2000.00"), currency="AUD"), max_order_quantity=1000
            ),
        ),
        rights=frozenset({AccountRight.VIEW, AccountRight.TRADE}),
        instrument=Instrument(code=INSTRUMENT, exchange="XSX", currency="AUD", last_price=LAST),
        exchange=Exchange(
            code="XSX",
            state=ExchangeState.LISTED,
            state_reason=None,
            adapter="prodigy",
            settles_through_registry=True,
            adapter_running=True,
        ),
        cash=CashPosition("AUD", booked=Decimal("5000.00")),
        holding=HoldingPosition(INSTRUMENT, quantity=500),
    )
    return dataclasses.replace(passing, **changes)  # type: ignore[arg-type]


def code_of(snap: Snapshot) -> RejectionCode:
    decision = vet(snap)
    assert isinstance(decision, Rejection), decision
    return decision.code


def accepted(snap: Snapshot) -> Acceptance:
    decision = vet(snap)
    assert isinstance(decision, Acceptance), decision
    return decision


def with_account(snap: Snapshot, **changes: object) -> Snapshot:
    assert snap.account is not None
    return dataclasses.replace(snap, account=dataclasses.replace(snap.account, **changes))  # type: ignore[arg-type]


def with_limits(snap: Snapshot, **changes: object) -> Snapshot:
    assert snap.account is not None
    return with_account(snap, limits=snap.account.limits.model_copy(update=changes))


def with_exchange(snap: Snapshot, **changes: object) -> Snapshot:
    assert snap.exchange is not None
    return dataclasses.replace(snap, exchange=dataclasses.replace(snap.exchange, **changes))  # type: ignore[arg-type]


def with_last_price(snap: Snapshot, last: Decimal | None) -> Snapshot:
    assert snap.instrument is not None
    return dataclasses.replace(snap, instrument=dataclasses.replace(snap.instrument, last_price=last))


# --- the rules, each on its own -----------------------------------------------------------------


def test_an_order_every_rule_lets_through_is_accepted_and_reserves_its_value() -> None:
    assert accepted(snapshot()) == Acceptance(
        price=Decimal("10.00"),
        protection_price=None,
        value=Decimal("1000.00"),
        reserved_cash=Decimal("1000.00"),
        held_back=0,
    )


def test_a_taken_order_id_is_a_duplicate() -> None:
    decision = vet(snapshot(order_id_taken=True))
    assert decision == Rejection(
        RejectionCode.ORDER_DUPLICATE,
        "order id ord-1 is already used by another order; place the order under a new id",
    )


def test_an_unknown_account_is_rejected() -> None:
    assert code_of(snapshot(account=None)) is RejectionCode.ACCOUNT_UNKNOWN


@pytest.mark.parametrize(
    ("state", "code"),
    [(AccountState.CLOSED, RejectionCode.ACCOUNT_CLOSED), (AccountState.SUSPENDED, RejectionCode.ACCOUNT_SUSPENDED)],
)
def test_a_closed_or_suspended_account_is_rejected_with_its_reason(state: AccountState, code: RejectionCode) -> None:
    decision = vet(with_account(snapshot(), state=state, state_reason="margin call"))
    assert isinstance(decision, Rejection)
    assert decision.code is code
    assert f"trading account XS:0001 is {state} (margin call)" in decision.reason


@pytest.mark.parametrize("rights", [frozenset(), frozenset({AccountRight.VIEW, AccountRight.ADMIN})])
def test_a_login_without_the_trade_right_is_rejected(rights: frozenset[AccountRight]) -> None:
    decision = vet(snapshot(rights=rights))
    assert decision == Rejection(
        RejectionCode.LOGIN_NO_TRADE_RIGHT,
        "login login-1 has no trade right on trading account XS:0001; an administrator of the account can grant it",
    )


def test_an_instrument_no_known_exchange_lists_is_unknown() -> None:
    assert code_of(snapshot(instrument=None, exchange=None)) is RejectionCode.INSTRUMENT_UNKNOWN


@pytest.mark.parametrize("allowed", [(), ("XSY",)])
def test_an_exchange_outside_the_allowed_ones_is_not_allowed(allowed: tuple[str, ...]) -> None:
    decision = vet(with_account(snapshot(), allowed_exchanges=allowed))
    assert isinstance(decision, Rejection)
    assert decision.code is RejectionCode.EXCHANGE_NOT_ALLOWED
    assert decision.reason.endswith(f"(its allowed exchanges: {', '.join(allowed) or 'none'})")


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"adapter_running": False}, "its OMS adapter prodigy is not registered"),
        ({"adapter_running": False, "adapter_stopped_reason": "exchange suspended"}, "adapter was stopped"),
        ({"state": ExchangeState.SUSPENDED, "state_reason": "halted"}, "exchange XSX is suspended (halted)"),
        ({"state": ExchangeState.REMOVED}, "exchange XSX is removed; it takes no orders"),
    ],
)
def test_an_exchange_without_a_running_adapter_or_not_listed_is_not_active(
    changes: dict[str, object], says: str
) -> None:
    decision = vet(with_exchange(snapshot(), **changes))
    assert isinstance(decision, Rejection)
    assert decision.code is RejectionCode.EXCHANGE_NOT_ACTIVE
    assert says in decision.reason


@pytest.mark.parametrize(
    "order",
    [
        placed(side=OrderSide.SHORTSELL),
        placed(order_type=OrderType.STOP, stop="9.00"),
        placed(order_type=OrderType.STOP_LIMIT, stop="9.00"),
        placed(lifetime=OrderLifetime.GOOD_TILL_DATE),
    ],
    ids=["shortsell", "stop", "stop-limit", "good-till-date"],
)
def test_a_side_type_or_lifetime_the_platform_does_not_take_is_unsupported(order: OrderPlaced) -> None:
    assert code_of(snapshot(order)) is RejectionCode.ORDER_UNSUPPORTED


@pytest.mark.parametrize("lifetime", list(OrderLifetime)[:4])
@pytest.mark.parametrize("order_type", [OrderType.MARKET, OrderType.LIMIT, OrderType.MARKET_TO_LIMIT])
def test_supported_types_and_lifetimes_are_accepted(order_type: OrderType, lifetime: OrderLifetime) -> None:
    accepted(snapshot(placed(order_type=order_type, lifetime=lifetime, quantity=10)))


def test_quantity_above_the_limit_is_rejected_and_at_it_accepted() -> None:
    snap = with_limits(snapshot(placed(quantity=100)), max_order_value=None)
    assert code_of(with_limits(snap, max_order_quantity=99)) is RejectionCode.QUANTITY_LIMIT
    accepted(with_limits(snap, max_order_quantity=100))
    accepted(with_limits(snap, max_order_quantity=None))


@pytest.mark.parametrize(("limit", "within"), [("9.00", True), ("11.00", True), ("8.99", False), ("11.01", False)])
def test_a_limit_price_must_be_within_ten_percent_of_the_last_price_ends_included(limit: str, within: bool) -> None:
    snap = with_limits(snapshot(placed(limit=limit)), max_order_value=None)
    if within:
        assert accepted(snap).price == Decimal(limit)
    else:
        decision = vet(snap)
        assert decision == Rejection(
            RejectionCode.PRICE_OUT_OF_RANGE,
            f"limit price {limit} is outside 9.00 to 11.00, 10 % either side of XS01.XSX's last price 10.00; "
            "place it within that range",
        )


def test_a_limit_order_without_a_last_price_is_not_range_checked() -> None:
    assert accepted(with_last_price(snapshot(placed(limit="10.00")), None)).price == Decimal("10.00")


@pytest.mark.parametrize("order_type", [OrderType.MARKET, OrderType.MARKET_TO_LIMIT])
def test_a_market_order_without_a_last_price_cannot_be_protected(order_type: OrderType) -> None:
    decision = vet(with_last_price(snapshot(placed(order_type=order_type)), None))
    assert isinstance(decision, Rejection)
    assert decision.code is RejectionCode.PRICE_OUT_OF_RANGE
    assert "place a limit order" in decision.reason


def test_a_market_sell_whose_floor_is_below_a_cent_cannot_be_protected() -> None:
    sell = placed(side=OrderSide.SELL, order_type=OrderType.MARKET)
    assert code_of(with_last_price(snapshot(sell), Decimal("0.011"))) is RejectionCode.PRICE_OUT_OF_RANGE
    assert accepted(with_last_price(snapshot(sell), Decimal("0.012"))).protection_price == Decimal("0.01")


def test_value_above_the_limit_is_rejected_and_at_it_accepted() -> None:
    snap = snapshot(placed(quantity=100, limit="10.00"))
    limit = PositiveMoney(amount=Decimal("999.99"), currency="AUD")
    decision = vet(with_limits(snap, max_order_value=limit))
    assert decision == Rejection(
        RejectionCode.VALUE_LIMIT,
        "the order's value 1000.00 AUD (100 × 10.00) is above the account's maximum order value of 999.99 AUD; "
        "place a smaller order",
    )
    accepted(with_limits(snap, max_order_value=PositiveMoney(amount=Decimal("1000"), currency="AUD")))


def test_a_value_limit_in_another_currency_is_not_compared() -> None:
    limit = PositiveMoney(amount=Decimal("1.00"), currency="USD")
    accepted(with_limits(snapshot(), max_order_value=limit))


def test_a_market_order_is_valued_at_its_protection_price() -> None:
    market = placed(order_type=OrderType.MARKET, quantity=100)
    snap = with_limits(snapshot(market), max_order_value=PositiveMoney(amount=Decimal("1099.99"), currency="AUD"))
    assert code_of(snap) is RejectionCode.VALUE_LIMIT  # 100 × 11.00
    assert accepted(with_limits(snap, max_order_value=None)).value == Decimal("1100.00")


def test_a_buy_beyond_available_cash_exceeds_the_balance() -> None:
    decision = vet(snapshot(cash=CashPosition("AUD", booked=Decimal("1500.00"), reserved=Decimal("600.00"))))
    assert decision == Rejection(
        RejectionCode.BALANCE_EXCEED,
        "the buy needs 1000.00 AUD (100 × 10.00) but 900.00 AUD is available (booked 1500.00, reserved by open "
        "buys 600.00); deposit funds or place a smaller order",
    )
    accepted(snapshot(cash=CashPosition("AUD", booked=Decimal("1600.00"), reserved=Decimal("600.00"))))


def test_a_buy_with_no_cash_on_record_exceeds_the_balance() -> None:
    assert code_of(snapshot(cash=None)) is RejectionCode.BALANCE_EXCEED


def test_a_sell_needs_no_cash_and_holds_back_its_quantity() -> None:
    sell = accepted(snapshot(placed(side=OrderSide.SELL, quantity=100), cash=None))
    assert (sell.reserved_cash, sell.held_back, sell.value) == (Decimal(0), 100, Decimal("1000.00"))


def test_a_sell_beyond_available_holdings_is_insufficient() -> None:
    sell = placed(side=OrderSide.SELL, quantity=100)
    decision = vet(snapshot(sell, holding=HoldingPosition(INSTRUMENT, quantity=150, held_back=60)))
    assert decision == Rejection(
        RejectionCode.QUANTITY_INSUFFICIENT,
        f"the sell needs 100 {INSTRUMENT} but 90 are available (held 150, held back by open sells 60); "
        "sell no more than is available",
    )
    assert code_of(snapshot(sell, holding=None)) is RejectionCode.QUANTITY_INSUFFICIENT
    accepted(snapshot(sell, holding=HoldingPosition(INSTRUMENT, quantity=160, held_back=60)))


def test_a_sell_is_not_checked_against_cash_nor_a_buy_against_holdings() -> None:
    accepted(snapshot(placed(side=OrderSide.SELL), cash=CashPosition("AUD")))
    accepted(snapshot(holding=None))


# --- the first rule that fails wins -------------------------------------------------------------


def _unsupported(snap: Snapshot) -> Snapshot:
    return dataclasses.replace(snap, order=snap.order.model_copy(update={"side": OrderSide.SHORTSELL}))


def _out_of_band(snap: Snapshot) -> Snapshot:
    return with_last_price(snap, Decimal("20.00")) if snap.instrument else snap


#: One way to break each rule, in the documented order; each touches something of its own, so
#: that all of them can break one snapshot at once.
BREAKERS: list[tuple[RejectionCode, Callable[[Snapshot], Snapshot]]] = [
    (RejectionCode.ORDER_DUPLICATE, lambda s: dataclasses.replace(s, order_id_taken=True)),
    (RejectionCode.ACCOUNT_CLOSED, lambda s: with_account(s, state=AccountState.CLOSED)),
    (RejectionCode.LOGIN_NO_TRADE_RIGHT, lambda s: dataclasses.replace(s, rights=frozenset({AccountRight.VIEW}))),
    (RejectionCode.INSTRUMENT_UNKNOWN, lambda s: dataclasses.replace(s, instrument=None, exchange=None)),
    (RejectionCode.EXCHANGE_NOT_ALLOWED, lambda s: with_account(s, allowed_exchanges=())),
    (RejectionCode.EXCHANGE_NOT_ACTIVE, lambda s: with_exchange(s, adapter_running=False) if s.exchange else s),
    (RejectionCode.ORDER_UNSUPPORTED, _unsupported),
    (RejectionCode.QUANTITY_LIMIT, lambda s: with_limits(s, max_order_quantity=99)),
    (RejectionCode.PRICE_OUT_OF_RANGE, _out_of_band),
    (
        RejectionCode.VALUE_LIMIT,
        lambda s: with_limits(s, max_order_value=PositiveMoney(amount=Decimal("1"), currency="AUD")),
    ),
    (RejectionCode.BALANCE_EXCEED, lambda s: dataclasses.replace(s, cash=CashPosition("AUD", Decimal("999.99")))),
]


@pytest.mark.parametrize("first", range(len(BREAKERS)), ids=[str(code) for code, _ in BREAKERS])
def test_the_first_rule_that_fails_wins(first: int) -> None:
    snap = snapshot()
    for _, breaker in BREAKERS[first:]:
        snap = breaker(snap)
    assert code_of(snap) is BREAKERS[first][0]


@pytest.mark.parametrize("code", [RejectionCode.ACCOUNT_UNKNOWN, RejectionCode.ACCOUNT_SUSPENDED])
def test_the_other_account_rules_come_before_the_trade_right(code: RejectionCode) -> None:
    snap = snapshot(rights=frozenset(), instrument=None, exchange=None)
    if code is RejectionCode.ACCOUNT_UNKNOWN:
        snap = dataclasses.replace(snap, account=None)
    else:
        snap = with_account(snap, state=AccountState.SUSPENDED)
    assert code_of(snap) is code


def test_a_sell_beyond_its_holdings_is_insufficient_only_after_the_value_limit() -> None:
    sell = snapshot(placed(side=OrderSide.SELL, quantity=100), holding=None)
    assert code_of(with_limits(sell, max_order_value=PositiveMoney(amount=Decimal("1"), currency="AUD"))) is (
        RejectionCode.VALUE_LIMIT
    )
    assert code_of(sell) is RejectionCode.QUANTITY_INSUFFICIENT


# --- the protection price -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "buy", "sell"),
    [
        ("10.00", "11.00", "9.00"),
        ("10.01", "11.02", "9.00"),  # 11.011 up, 9.009 down: away from the trade
        ("0.999", "1.10", "0.89"),  # 1.0989 up, 0.8991 down
        ("123.45", "135.80", "111.10"),  # 135.795 up, 111.105 down
    ],
)
def test_protection_price_is_ten_percent_away_to_the_cent_rounded_away_from_the_trade(
    last: str, buy: str, sell: str
) -> None:
    assert protection_price(Decimal(last), OrderSide.BUY) == Decimal(buy)
    assert protection_price(Decimal(last), OrderSide.SELL) == Decimal(sell)


prices = st.decimals(min_value=Decimal("0.02"), max_value=Decimal("1e12"), places=8)


@given(prices)
def test_protection_price_never_lets_a_market_order_trade_beyond_ten_percent(last: Decimal) -> None:
    low, high = price_band(last)
    buy = protection_price(last, OrderSide.BUY)
    sell = protection_price(last, OrderSide.SELL)
    assert buy is not None and high <= buy < high + Decimal("0.01")
    assert sell is not None and low - Decimal("0.01") < sell <= low
    assert buy == buy.quantize(Decimal("0.01")) and sell == sell.quantize(Decimal("0.01"))


def test_a_market_buy_reserves_quantity_times_its_protection_price() -> None:
    market = with_last_price(snapshot(placed(order_type=OrderType.MARKET, quantity=30)), Decimal("10.01"))
    decision = accepted(market)
    assert (decision.protection_price, decision.price, decision.reserved_cash) == (
        Decimal("11.02"),
        Decimal("11.02"),
        Decimal("330.60"),
    )


def test_a_market_sell_is_protected_below_the_last_price_and_reserves_no_cash() -> None:
    decision = accepted(snapshot(placed(side=OrderSide.SELL, order_type=OrderType.MARKET, quantity=30)))
    assert (decision.protection_price, decision.value, decision.reserved_cash, decision.held_back) == (
        Decimal("9.00"),
        Decimal("270.00"),
        Decimal(0),
        30,
    )


def test_amounts_are_exact_however_large() -> None:
    order = placed(quantity=10**12, limit="123456789012345678.12345678")
    snap = with_limits(
        with_last_price(snapshot(order, cash=CashPosition("AUD", Decimal("1e31"))), None),
        max_order_value=None,
        max_order_quantity=None,
    )
    assert accepted(snap).reserved_cash == Decimal("123456789012345678123456780000.00000000")


# --- what fills book and release ----------------------------------------------------------------


def test_a_buy_fill_books_its_cost_and_releases_its_share_at_the_reservation_price() -> None:
    booking = book_fill(OrderSide.BUY, 40, Decimal("9.90"), reservation_price=Decimal("10.00"))
    assert (booking.value, booking.cash, booking.quantity) == (Decimal("396.00"), Decimal("-396.00"), 40)
    assert (booking.cash_released, booking.held_back_released) == (Decimal("400.00"), 0)


def test_a_sell_fill_books_its_proceeds_and_releases_its_held_back_quantity() -> None:
    booking = book_fill(OrderSide.SELL, 40, Decimal("10.10"), reservation_price=Decimal("9.00"))
    assert (booking.value, booking.cash, booking.quantity) == (Decimal("404.00"), Decimal("404.00"), -40)
    assert (booking.cash_released, booking.held_back_released) == (Decimal(0), 40)


@given(
    st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=20),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e9"), places=2),
    st.data(),
)
def test_fills_of_a_whole_buy_release_exactly_its_reservation_and_never_cost_more(
    quantities: list[int], limit: Decimal, data: st.DataObject
) -> None:
    reserved = accepted(
        with_limits(
            with_last_price(
                snapshot(placed(quantity=sum(quantities), limit=str(limit)), cash=CashPosition("AUD", Decimal("1e30"))),
                None,
            ),
            max_order_value=None,
            max_order_quantity=None,
        )
    ).reserved_cash
    bookings = [
        book_fill(
            OrderSide.BUY,
            quantity,
            data.draw(st.decimals(min_value=Decimal("0.01"), max_value=limit, places=2)),
            reservation_price=limit,
        )
        for quantity in quantities
    ]
    assert sum(booking.cash_released for booking in bookings) == reserved
    assert all(-booking.cash <= booking.cash_released for booking in bookings)


# --- an order's life ----------------------------------------------------------------------------


def order(state: OrderState = OrderState.ROUTED, filled: int = 0, **changes: object) -> Order:
    stored = Order(
        order_id="ord-1",
        account_id=ACCOUNT,
        login_id="login-1",
        instrument=INSTRUMENT,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=100,
        limit_price=Decimal("10.00"),
        lifetime=OrderLifetime.DAY,
        expiry_date=None,
        state=state,
        exchange="XSX",
        adapter="prodigy",
        currency="AUD",
        price=Decimal("10.00"),
        protection_price=None,
        reserved=Decimal("1000.00"),
        held_back=0,
        filled_quantity=filled,
        filled_value=Decimal(0),
        outcome=OrderOutcome.FILLED if state is OrderState.COMPLETED else None,
        rejection_code=RejectionCode.BALANCE_EXCEED if state is OrderState.REJECTED else None,
        reason=None,
        placed_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
        changed_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )
    return dataclasses.replace(stored, **changes)  # type: ignore[arg-type]


def report(kind: ExecutionKind, fill: int = 0, leaves: int = 100, account_id: str = ACCOUNT) -> ExecutionReported:
    return ExecutionReported(
        exchange="XSX",
        order_id="ord-1",
        account_id=account_id,
        instrument=INSTRUMENT,
        side=OrderSide.BUY,
        kind=kind,
        currency="AUD",
        settles_through_registry=True,
        fill_quantity=fill,
        fill_price=Decimal("10.00") if fill else None,
        venue_trade_id="T-1" if fill else None,
        cumulative_quantity=100 - leaves,
        leaves_quantity=leaves,
    )


@pytest.mark.parametrize(
    ("current", "reported", "after"),
    [
        (OrderState.ROUTED, report(ExecutionKind.ACKNOWLEDGED), OrderState.ACKNOWLEDGED),
        (OrderState.PARTIALLY_FILLED, report(ExecutionKind.ACKNOWLEDGED), OrderState.PARTIALLY_FILLED),
        (OrderState.ACKNOWLEDGED, report(ExecutionKind.FILLED, fill=40, leaves=60), OrderState.PARTIALLY_FILLED),
        (OrderState.PARTIALLY_FILLED, report(ExecutionKind.FILLED, fill=60, leaves=0), OrderState.COMPLETED),
        (OrderState.ROUTED, report(ExecutionKind.CANCELLED, leaves=0), OrderState.COMPLETED),
        (OrderState.ACKNOWLEDGED, report(ExecutionKind.EXPIRED, leaves=0), OrderState.COMPLETED),
        (OrderState.ROUTED, report(ExecutionKind.REJECTED, leaves=0), OrderState.COMPLETED),
    ],
)
def test_reports_move_the_order_on_and_a_final_one_completes_it(
    current: OrderState, reported: ExecutionReported, after: OrderState
) -> None:
    assert state_after(current, reported) is after


def test_reports_for_orders_not_routed_to_that_account_or_over_or_overfilled_are_problems() -> None:
    fill = report(ExecutionKind.FILLED, fill=40, leaves=60)
    assert report_problem(order(), fill) is None
    assert "routed no such order" in (report_problem(None, fill) or "")
    assert "routed no such order" in (report_problem(order(state=OrderState.REJECTED), fill) or "")
    assert "routed no such order" in (report_problem(order(), report(ExecutionKind.FILLED, 40, 60, "XS:0002")) or "")
    assert "already over (filled)" in (report_problem(order(state=OrderState.COMPLETED), fill) or "")
    assert "more than its open quantity 30" in (report_problem(order(filled=70), fill) or "")


def cancel(account_id: str = ACCOUNT) -> OrderCancelRequested:
    return OrderCancelRequested(order_id="ord-1", account_id=account_id, login_id="login-1")


TRADE = frozenset({AccountRight.TRADE})


def test_an_open_order_of_the_account_is_cancelled_by_a_login_with_the_trade_right() -> None:
    for state in (OrderState.ROUTED, OrderState.ACKNOWLEDGED, OrderState.PARTIALLY_FILLED):
        assert cancel_refusal(order(state), cancel(), TRADE) is None


def test_cancels_of_unknown_foreign_done_or_unauthorised_orders_are_refused_with_the_reason() -> None:
    unknown = "trading account XS:0001 has no order ord-1; check the order id"
    assert (cancel_refusal(None, cancel(), TRADE) or "").startswith(unknown)
    assert (cancel_refusal(order(), cancel("XS:0002"), TRADE) or "").startswith("trading account XS:0002 has no order")
    assert cancel_refusal(order(), cancel(), frozenset({AccountRight.VIEW})) == (
        "login login-1 has no trade right on trading account XS:0001; an administrator of the account can grant it"
    )
    assert cancel_refusal(order(OrderState.COMPLETED), cancel(), TRADE) == (
        "order ord-1 is already over (filled): there is nothing left to cancel"
    )
    assert cancel_refusal(order(OrderState.REJECTED), cancel(), TRADE) == (
        "order ord-1 was rejected (Balance.Exceed): there is nothing to cancel"
    )
