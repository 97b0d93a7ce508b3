"""Prodigy's order book and market maker, one rule at a time, on books laid out by hand."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from exchanges.plugins import ExecutionReport
from exchanges.prodigy.book import Book
from exchanges.prodigy.market_maker import open_book, requote
from exchanges.prodigy.pricing import DEPTH, from_ticks, level_spacing, reference_price, to_ticks
from schemas.gateway import ExecutionKind
from schemas.oms import OrderRouted
from schemas.types import OrderLifetime, OrderSide, OrderType

INSTRUMENT = "XS01.XSX"
BUYER = "XS:0001"
SELLER = "XS:0002"


def routed(
    order_id: str,
    side: OrderSide,
    quantity: int,
    *,
    order_type: OrderType = OrderType.LIMIT,
    limit_price: str | None = None,
    protection_price: str | None = None,
    lifetime: OrderLifetime = OrderLifetime.DAY,
    account_id: str = BUYER,
    instrument: str = INSTRUMENT,
) -> OrderRouted:
    return OrderRouted(
        order_id=order_id,
        account_id=account_id,
        exchange=instrument.split(".")[1],
        adapter="prodigy",
        instrument=instrument,
        side=side,
        order_type=order_type,
        quantity=quantity,
        limit_price=None if limit_price is None else Decimal(limit_price),
        protection_price=None if protection_price is None else Decimal(protection_price),
        lifetime=lifetime,
        currency="AUD",
        settles_through_registry=True,
    )


def kinds(reports: list[ExecutionReport]) -> list[tuple[str, ExecutionKind]]:
    return [(report.order_id, report.kind) for report in reports]


def fills(reports: list[ExecutionReport], order_id: str) -> list[tuple[int, Decimal | None]]:
    return [
        (report.fill_quantity, report.fill_price)
        for report in reports
        if report.order_id == order_id and report.kind is ExecutionKind.FILLED
    ]


def empty_book() -> Book:
    return Book(INSTRUMENT, Decimal("10.00"))


def with_asks(*levels: tuple[str, int]) -> Book:
    """A book whose asks are the market maker's, at ``(price, quantity)`` in the order given."""
    book = empty_book()
    for price, quantity in levels:
        book.rest(OrderSide.SELL, None, None, Decimal(price), quantity)
    return book


def with_bids(*levels: tuple[str, int]) -> Book:
    book = empty_book()
    for price, quantity in levels:
        book.rest(OrderSide.BUY, None, None, Decimal(price), quantity)
    return book


def resting_ids(book: Book) -> list[str | None]:
    return [order.order_id for _, order in book.resting()]


def test_a_buy_takes_the_lowest_asks_first_at_their_prices() -> None:
    book = with_asks(("10.03", 100), ("10.01", 100), ("10.02", 100))
    reports = book.submit(routed("b1", OrderSide.BUY, 250, limit_price="10.05"))
    assert fills(reports, "b1") == [(100, Decimal("10.01")), (100, Decimal("10.02")), (50, Decimal("10.03"))]
    assert [(report.cumulative_quantity, report.leaves_quantity) for report in reports] == [
        (0, 250),
        (100, 150),
        (200, 50),
        (250, 0),
    ]
    assert book.last_price == Decimal("10.03")
    assert [order.leaves for order in book.asks] == [50]


def test_orders_at_one_price_fill_in_the_order_they_arrived() -> None:
    book = empty_book()
    book.submit(routed("s1", OrderSide.SELL, 100, limit_price="10.01", account_id=SELLER))
    book.submit(routed("s2", OrderSide.SELL, 100, limit_price="10.01", account_id=SELLER))
    book.submit(routed("s0", OrderSide.SELL, 100, limit_price="10.02", account_id=SELLER))
    reports = book.submit(routed("b1", OrderSide.BUY, 150, limit_price="10.02"))
    assert [(report.order_id, report.fill_quantity) for report in reports if report.order_id != "b1"] == [
        ("s1", 100),
        ("s2", 50),
    ]
    assert resting_ids(book) == ["s2", "s0"]


@pytest.mark.parametrize("lifetime", [OrderLifetime.DAY, OrderLifetime.GOOD_TILL_CANCEL])
def test_a_limit_order_rests_with_what_it_could_not_fill(lifetime: OrderLifetime) -> None:
    book = with_asks(("10.01", 100), ("10.04", 100))
    reports = book.submit(routed("b1", OrderSide.BUY, 300, limit_price="10.02", lifetime=lifetime))
    assert kinds(reports) == [("b1", ExecutionKind.ACKNOWLEDGED), ("b1", ExecutionKind.FILLED)]
    assert reports[-1].leaves_quantity == 200
    [(side, resting)] = [entry for entry in book.resting() if entry[1].order_id == "b1"]
    assert (side, resting.price, resting.leaves, resting.filled) == (OrderSide.BUY, Decimal("10.02"), 200, 100)
    [_, _, later] = book.submit(routed("s1", OrderSide.SELL, 50, limit_price="10.02", account_id=SELLER))
    assert (later.order_id, later.cumulative_quantity, later.leaves_quantity) == ("b1", 150, 150)


def test_immediate_or_cancel_fills_what_it_can_and_cancels_the_rest() -> None:
    book = with_asks(("10.01", 100), ("10.04", 100))
    reports = book.submit(
        routed("b1", OrderSide.BUY, 300, limit_price="10.02", lifetime=OrderLifetime.IMMEDIATE_OR_CANCEL)
    )
    assert kinds(reports) == [
        ("b1", ExecutionKind.ACKNOWLEDGED),
        ("b1", ExecutionKind.FILLED),
        ("b1", ExecutionKind.CANCELLED),
    ]
    assert (reports[-1].cumulative_quantity, reports[-1].leaves_quantity) == (100, 0)
    assert reports[-1].reason == "immediate or cancel: 200 left unfilled at 10.02 or better"
    assert "b1" not in resting_ids(book)


def test_fill_or_kill_without_enough_at_its_price_is_cancelled_and_trades_nothing() -> None:
    book = with_asks(("10.01", 100), ("10.02", 100), ("10.03", 500))
    before = book.to_state()
    reports = book.submit(routed("b1", OrderSide.BUY, 201, limit_price="10.02", lifetime=OrderLifetime.FILL_OR_KILL))
    assert kinds(reports) == [("b1", ExecutionKind.ACKNOWLEDGED), ("b1", ExecutionKind.CANCELLED)]
    assert reports[-1].reason == "fill or kill: only 200 of 201 available at 10.02 or better"
    assert book.to_state() == before


def test_fill_or_kill_with_enough_at_its_price_fills_completely() -> None:
    book = with_asks(("10.01", 100), ("10.02", 100), ("10.03", 500))
    reports = book.submit(routed("b1", OrderSide.BUY, 200, limit_price="10.02", lifetime=OrderLifetime.FILL_OR_KILL))
    assert fills(reports, "b1") == [(100, Decimal("10.01")), (100, Decimal("10.02"))]
    assert reports[-1].leaves_quantity == 0


@pytest.mark.parametrize("order_type", [OrderType.MARKET, OrderType.MARKET_TO_LIMIT])
def test_a_market_buy_never_pays_above_its_protection_price_nor_rests(order_type: OrderType) -> None:
    book = with_asks(("10.01", 100), ("10.05", 100), ("10.06", 100))
    reports = book.submit(
        routed(
            "b1",
            OrderSide.BUY,
            500,
            order_type=order_type,
            protection_price="10.05",
            lifetime=OrderLifetime.GOOD_TILL_CANCEL,
        )
    )
    assert fills(reports, "b1") == [(100, Decimal("10.01")), (100, Decimal("10.05"))]
    assert reports[-1].kind is ExecutionKind.CANCELLED
    assert reports[-1].reason == "market order: 300 left unfilled within its protection price 10.05"
    assert resting_ids(book) == [None]


def test_a_market_sell_never_sells_below_its_protection_price() -> None:
    book = with_bids(("9.99", 100), ("9.95", 100), ("9.90", 100))
    reports = book.submit(routed("s1", OrderSide.SELL, 250, order_type=OrderType.MARKET, protection_price="9.951"))
    assert fills(reports, "s1") == [(100, Decimal("9.99"))]
    assert reports[-1].kind is ExecutionKind.CANCELLED and reports[-1].cumulative_quantity == 100


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (
            routed("x", OrderSide.BUY, 1, order_type=OrderType.STOP, limit_price="10.00"),
            "order type STOP is not supported",
        ),
        (routed("x", OrderSide.BUY, 1, order_type=OrderType.STOP_LIMIT, limit_price="10.00"), "order type STOP_LIMIT"),
        (routed("x", OrderSide.BUY, 1, limit_price="10.00", lifetime=OrderLifetime.GOOD_TILL_DATE), "GOOD_TILL_DATE"),
        (routed("x", OrderSide.SHORTSELL, 1, limit_price="10.00"), "side SHORTSELL is not supported"),
        (routed("x", OrderSide.BUY, 1), "a LIMIT order needs a limit price"),
        (routed("x", OrderSide.BUY, 1, limit_price="10.005"), "not a multiple of the tick size 0.01"),
        (routed("x", OrderSide.BUY, 1, order_type=OrderType.MARKET), "needs a protection price"),
    ],
)
def test_orders_prodigy_does_not_take_are_rejected_with_the_reason(order: OrderRouted, reason: str) -> None:
    book = with_asks(("10.00", 100))
    before = book.to_state()
    [report] = book.submit(order)
    assert (report.kind, report.cumulative_quantity, report.leaves_quantity) == (ExecutionKind.REJECTED, 0, 0)
    assert report.reason is not None and reason in report.reason
    assert book.to_state() == before


def test_an_order_id_already_resting_is_rejected_as_a_duplicate() -> None:
    book = empty_book()
    book.submit(routed("b1", OrderSide.BUY, 100, limit_price="9.00"))
    [report] = book.submit(routed("b1", OrderSide.SELL, 100, limit_price="8.00", account_id=SELLER))
    assert report.kind is ExecutionKind.REJECTED
    assert report.reason == "order id b1 is already resting in the book; use a new order id"
    assert [order.leaves for _, order in book.resting()] == [100]


def test_a_platform_buy_meeting_a_platform_sell_fills_both_under_one_trade_id() -> None:
    book = empty_book()
    book.submit(routed("s1", OrderSide.SELL, 100, limit_price="10.01", account_id=SELLER))
    reports = book.submit(routed("b1", OrderSide.BUY, 40, limit_price="10.02"))
    assert kinds(reports) == [
        ("b1", ExecutionKind.ACKNOWLEDGED),
        ("b1", ExecutionKind.FILLED),
        ("s1", ExecutionKind.FILLED),
    ]
    buy, sell = reports[1], reports[2]
    assert (buy.side, sell.side, sell.account_id) == (OrderSide.BUY, OrderSide.SELL, SELLER)
    assert (buy.fill_quantity, buy.fill_price) == (sell.fill_quantity, sell.fill_price) == (40, Decimal("10.01"))
    assert buy.venue_trade_id == sell.venue_trade_id == "XS01.XSX-T1"
    assert (sell.cumulative_quantity, sell.leaves_quantity) == (40, 60)


def test_venue_trade_ids_number_the_instruments_trades() -> None:
    book = with_asks(("10.01", 10), ("10.02", 10))
    first = book.submit(routed("b1", OrderSide.BUY, 15, limit_price="10.02"))
    second = book.submit(routed("b2", OrderSide.BUY, 5, limit_price="10.02"))
    assert [report.venue_trade_id for report in first + second if report.venue_trade_id] == [
        "XS01.XSX-T1",
        "XS01.XSX-T2",
        "XS01.XSX-T3",
    ]


def test_a_cancel_takes_the_accounts_resting_order_out() -> None:
    book = with_bids(("9.00", 30))
    book.submit(routed("s1", OrderSide.SELL, 100, limit_price="9.00", account_id=SELLER))
    [report] = book.cancel("s1", SELLER, None)
    assert (report.kind, report.side, report.cumulative_quantity, report.leaves_quantity) == (
        ExecutionKind.CANCELLED,
        OrderSide.SELL,
        30,
        0,
    )
    assert report.reason == "cancelled on request"
    assert resting_ids(book) == []


@pytest.mark.parametrize(("order_id", "account_id"), [("gone", BUYER), ("b1", SELLER)])
def test_a_cancel_of_no_resting_order_of_that_account_reports_nothing(order_id: str, account_id: str) -> None:
    book = empty_book()
    book.submit(routed("b1", OrderSide.BUY, 100, limit_price="9.00"))
    assert book.cancel(order_id, account_id, "no longer wanted") == []
    assert resting_ids(book) == ["b1"]


def test_the_state_reads_back_as_the_same_book() -> None:
    book = open_book("XSX", INSTRUMENT)
    book.submit(routed("b1", OrderSide.BUY, 700, limit_price=format(book.reference_price + Decimal("0.50"), "f")))
    book.submit(routed("s1", OrderSide.SELL, 10, limit_price="199.99", account_id=SELLER))
    state = book.to_state()
    assert Book.from_state(json.loads(json.dumps(state))).to_state() == state


def test_a_new_book_is_the_market_makers_ladder_around_the_reference_price() -> None:
    book = open_book("XSX", INSTRUMENT)
    reference = reference_price("XSX", INSTRUMENT)
    assert book.reference_price == reference and book.last_price is None
    assert len(book.bids) == len(book.asks) == DEPTH
    assert all(order.is_market_maker for _, order in book.resting())
    assert [order.quantity for order in book.asks] == [book.asks[0].quantity * level for level in range(1, DEPTH + 1)]
    assert book.bids[0].price < reference < book.asks[0].price
    assert open_book("XSX", INSTRUMENT).to_state() == book.to_state()


def test_the_market_maker_quotes_afresh_around_the_last_trade() -> None:
    book = open_book("XSX", INSTRUMENT)
    second_ask = book.asks[1].price
    book.submit(
        routed("b1", OrderSide.BUY, book.asks[0].quantity + 1, order_type=OrderType.MARKET, protection_price="500")
    )
    requote(book)
    assert book.last_price == second_ask
    spacing = from_ticks(level_spacing(to_ticks(second_ask)))
    assert [order.price for order in book.bids] == [second_ask - spacing * level for level in range(1, DEPTH + 1)]
    assert [order.price for order in book.asks] == [second_ask + spacing * level for level in range(1, DEPTH + 1)]
    assert all(order.filled == 0 for _, order in book.resting())


@pytest.mark.parametrize("side", [OrderSide.BUY, OrderSide.SELL])
def test_the_market_maker_never_quotes_through_a_platform_order_resting_beyond_its_ladder(side: OrderSide) -> None:
    """An order that swept the market maker's side rests beyond the new ladder's first level: it stays best."""
    book = open_book("XSX", INSTRUMENT)
    swept = book.asks if side is OrderSide.BUY else book.bids
    beyond = swept[-1].price + (Decimal("0.10") if side is OrderSide.BUY else Decimal("-0.10"))
    book.submit(routed("p1", side, 10**6, limit_price=format(beyond, "f")))
    requote(book)
    own_side, other_side = (book.bids, book.asks) if side is OrderSide.BUY else (book.asks, book.bids)
    assert own_side[0].order_id == "p1" and own_side[0].price == beyond
    assert len(other_side) == DEPTH and all(order.is_market_maker for order in other_side)
    assert book.best_bid is not None and book.best_ask is not None and book.best_bid < book.best_ask


def test_the_end_of_the_day_expires_day_orders_with_what_they_filled_and_keeps_the_rest() -> None:
    book = with_asks(("10.01", 100), ("10.50", 100))
    book.submit(routed("b1", OrderSide.BUY, 300, limit_price="10.02"))  # fills 100, rests 200
    book.submit(routed("b2", OrderSide.BUY, 50, limit_price="9.00", lifetime=OrderLifetime.GOOD_TILL_CANCEL))
    book.submit(routed("s1", OrderSide.SELL, 40, limit_price="10.40", account_id=SELLER))
    reports = book.end_of_day()
    assert [
        (
            report.order_id,
            report.account_id,
            report.side,
            report.kind,
            report.cumulative_quantity,
            report.leaves_quantity,
        )
        for report in reports
    ] == [
        ("b1", BUYER, OrderSide.BUY, ExecutionKind.EXPIRED, 100, 0),
        ("s1", SELLER, OrderSide.SELL, ExecutionKind.EXPIRED, 0, 0),
    ]
    assert [report.reason for report in reports] == [
        "day order: the market closed with 200 of 300 unfilled",
        "day order: the market closed with 40 of 40 unfilled",
    ]
    assert resting_ids(book) == ["b2", None]  # the good-till-cancel buy and the market maker's ask
    assert book.end_of_day() == []


def test_a_day_order_rests_in_the_state_with_its_lifetime_and_expires_after_a_round_trip() -> None:
    book = empty_book()
    book.submit(routed("b1", OrderSide.BUY, 10, limit_price="9.00"))
    book.submit(routed("b2", OrderSide.BUY, 10, limit_price="9.00", lifetime=OrderLifetime.GOOD_TILL_CANCEL))
    state = json.loads(json.dumps(book.to_state()))
    assert [order["lifetime"] for order in state["bids"]] == ["DAY", "GOOD_TILL_CANCEL"]
    [expired] = Book.from_state(state).end_of_day()
    assert expired.order_id == "b1"


def test_a_book_stored_before_lifetimes_were_kept_rests_its_orders_until_cancelled() -> None:
    book = empty_book()
    book.submit(routed("b1", OrderSide.BUY, 10, limit_price="9.00"))
    state = book.to_state()
    for order in state["bids"]:
        del order["lifetime"]
    old = Book.from_state(state)
    assert old.end_of_day() == [] and resting_ids(old) == ["b1"]
