"""Prodigy's OMS adapter: reference prices, properties of random instruction streams on one
instrument, and the end of the day after them.

Every stream runs through the adapter as the gateway runs it: the state of one instruction is
the input of the next, starting from None (a book seeded by the market maker).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchanges.plugins import AdapterResult, ExecutionReport
from exchanges.prodigy import ProdigyOmsAdapter
from exchanges.prodigy.book import Book, RestingOrder
from exchanges.prodigy.market_maker import open_book
from exchanges.prodigy.plugins import BookMismatch, NoBook
from exchanges.prodigy.pricing import DEPTH, from_ticks, level_spacing, reference_price, to_ticks
from schemas.gateway import ExecutionKind, ExecutionReported
from schemas.oms import OrderCancelRouted, OrderRouted
from schemas.types import OrderLifetime, OrderSide, OrderType
from tests.unit.test_prodigy_book import routed
from tests.unit.test_prodigy_feed import exchange

Instruction = OrderRouted | OrderCancelRouted
ACCOUNTS = ("XS:0001", "XS:0002", "XS:0003")
MARKET_TYPES = (OrderType.MARKET, OrderType.MARKET_TO_LIMIT)
RESTING = (OrderLifetime.DAY, OrderLifetime.GOOD_TILL_CANCEL)
NOT_RESTING = (OrderLifetime.IMMEDIATE_OR_CANCEL, OrderLifetime.FILL_OR_KILL)

ROOT = Path(__file__).resolve().parents[2]

adapter = ProdigyOmsAdapter()


@dataclass(frozen=True)
class Step:
    instruction: Instruction
    before: Mapping[str, Any] | None
    reports: tuple[ExecutionReport, ...]
    state: Mapping[str, Any]


def replay(instructions: list[Instruction], *, through_json: bool = False) -> list[Step]:
    """Apply ``instructions`` in order, as the gateway does; ``through_json`` stores each state as JSON between them."""

    async def run() -> list[Step]:
        steps: list[Step] = []
        state: Mapping[str, Any] | None = None
        for instruction in instructions:
            if isinstance(instruction, OrderRouted):
                result = await adapter.submit(instruction, state)
            else:
                result = await adapter.cancel(instruction, state)
            steps.append(Step(instruction, state, result.reports, result.state))
            state = json.loads(json.dumps(result.state)) if through_json else result.state
        return steps

    return asyncio.run(run())


@st.composite
def streams(draw: st.DrawFn) -> list[Instruction]:
    """Orders and cancels on one instrument, up to a few levels either side of its reference price.

    Quantities reach beyond the market maker's whole side, so orders sweep it and rest behind it;
    order ids repeat now and then. The instruments differ in reference price (1.02 to 166.90),
    level spacing and market-maker size.
    """
    instrument = f"{draw(st.sampled_from(['XS01', 'ZZTOP', 'XS02', 'S77']))}.XSX"
    reference = to_ticks(reference_price("XSX", instrument))
    spacing = level_spacing(reference)
    levels = st.integers(-8, 8).map(lambda level: level * spacing)
    quantities = st.one_of(st.integers(1, 400), st.integers(1_500, 6_000))
    order_ids = st.integers(0, 25).map(lambda number: f"o{number}")
    accounts = st.sampled_from(ACCOUNTS)

    def price(offset: int) -> str:
        return format(from_ticks(max(1, reference + offset)), "f")

    @st.composite
    def submit(draw_order: st.DrawFn) -> OrderRouted:
        side = draw_order(st.sampled_from([*[OrderSide.BUY, OrderSide.SELL] * 4, OrderSide.SHORTSELL]))
        order_type = draw_order(
            st.sampled_from([*[OrderType.LIMIT] * 6, *MARKET_TYPES, OrderType.MARKET, OrderType.STOP])
        )
        lifetime = draw_order(st.sampled_from([*[*RESTING, *NOT_RESTING] * 3, OrderLifetime.GOOD_TILL_DATE]))
        protection = abs(draw_order(levels))
        limit = draw_order(levels) + draw_order(st.integers(-1, 1))
        return routed(
            draw_order(order_ids),
            side,
            draw_order(quantities),
            order_type=order_type,
            limit_price=None if order_type in MARKET_TYPES else price(limit),
            protection_price=price(protection if side is OrderSide.BUY else -protection),
            lifetime=lifetime,
            account_id=draw_order(accounts),
            instrument=instrument,
        )

    cancel = st.builds(
        OrderCancelRouted,
        order_id=order_ids,
        account_id=accounts,
        exchange=st.just("XSX"),
        adapter=st.just("prodigy"),
        instrument=st.just(instrument),
    )
    return draw(st.lists(st.one_of(submit(), submit(), submit(), cancel), min_size=8, max_size=30))


def resting(state: Mapping[str, Any] | None) -> dict[tuple[str | None, str | None], RestingOrder]:
    """The platform's resting orders by (order id, account)."""
    if state is None:
        return {}
    return {
        (order.order_id, order.account_id): order
        for _, order in Book.from_state(state).resting()
        if not order.is_market_maker
    }


def own(step: Step) -> list[ExecutionReport]:
    """The reports of the instruction's own order."""
    return [report for report in step.reports if report.order_id == step.instruction.order_id]


def accepted(step: Step) -> OrderRouted | None:
    """The instruction, when it is an order the exchange acknowledged."""
    order = step.instruction
    reports = own(step)
    if isinstance(order, OrderRouted) and reports and reports[0].kind is ExecutionKind.ACKNOWLEDGED:
        return order
    return None


def bound(order: OrderRouted) -> Decimal:
    price = order.protection_price if order.order_type in MARKET_TYPES else order.limit_price
    assert price is not None
    return price


@settings(max_examples=400)
@given(streams())
def test_the_book_is_never_left_crossed_nor_without_liquidity(stream: list[Instruction]) -> None:
    for step in replay(stream):
        book = Book.from_state(step.state)
        assert book.best_bid is not None and book.best_ask is not None
        assert book.best_bid < book.best_ask


@given(streams())
def test_the_buyer_and_the_seller_of_a_trade_report_the_same_fill(stream: list[Instruction]) -> None:
    trade_ids: list[str] = []
    for step in replay(stream):
        by_trade: dict[str, list[ExecutionReport]] = defaultdict(list)
        for report in step.reports:
            if report.venue_trade_id is not None:
                by_trade[report.venue_trade_id].append(report)
        for trade_id, reports in by_trade.items():
            assert reports[0].order_id == step.instruction.order_id, "the new order takes part in every trade"
            assert len(reports) <= 2
            if len(reports) == 2:
                buyer, seller = sorted(reports, key=lambda report: report.side is OrderSide.SELL)
                assert (buyer.side, seller.side) == (OrderSide.BUY, OrderSide.SELL)
                assert (buyer.fill_quantity, buyer.fill_price) == (seller.fill_quantity, seller.fill_price), trade_id
            trade_ids.append(trade_id)
    instrument = stream[0].instrument
    assert trade_ids == [f"{instrument}-T{number}" for number in range(1, len(trade_ids) + 1)]


@given(streams())
def test_a_fill_or_kill_fills_completely_exactly_when_the_book_held_enough(stream: list[Instruction]) -> None:
    for step in replay(stream):
        order = accepted(step)
        if order is None or order.lifetime is not OrderLifetime.FILL_OR_KILL:
            continue
        before = Book.from_state(step.before) if step.before is not None else open_book("XSX", order.instrument)
        limit = bound(order)
        if order.side is OrderSide.BUY:
            available = sum(ask.leaves for ask in before.asks if ask.price <= limit)
        else:
            available = sum(bid.leaves for bid in before.bids if bid.price >= limit)
        filled = sum(report.fill_quantity for report in own(step))
        assert filled == (order.quantity if available >= order.quantity else 0)
        if not filled:
            assert [report.kind for report in own(step)] == [ExecutionKind.ACKNOWLEDGED, ExecutionKind.CANCELLED]


@given(streams())
def test_immediate_or_cancel_and_market_orders_never_rest(stream: list[Instruction]) -> None:
    for step in replay(stream):
        order = accepted(step)
        if order is None or (order.lifetime not in NOT_RESTING and order.order_type not in MARKET_TYPES):
            continue
        assert (order.order_id, order.account_id) not in resting(step.state)
        last = own(step)[-1]
        assert last.kind is ExecutionKind.CANCELLED or (last.kind is ExecutionKind.FILLED and last.leaves_quantity == 0)


@given(streams())
def test_a_market_order_never_fills_beyond_its_protection_price(stream: list[Instruction]) -> None:
    for step in replay(stream):
        order = accepted(step)
        if order is None or order.order_type not in MARKET_TYPES:
            continue
        for report in own(step):
            if report.fill_price is not None:
                protection = bound(order)
                assert (
                    report.fill_price <= protection if order.side is OrderSide.BUY else report.fill_price >= protection
                )


@given(streams())
def test_an_orders_fills_and_leaves_add_up_to_its_quantity(stream: list[Instruction]) -> None:
    quantity: dict[str, int] = {}
    filled: dict[str, int] = {}
    for step in replay(stream):
        for report in step.reports:
            ExecutionReported(
                **asdict(report),
                exchange="XSX",
                instrument=stream[0].instrument,
                currency="AUD",
                settles_through_registry=True,
            )
            if report.kind is ExecutionKind.REJECTED:
                assert (report.cumulative_quantity, report.leaves_quantity) == (0, 0)
                continue
            if report.kind is ExecutionKind.ACKNOWLEDGED:
                assert isinstance(step.instruction, OrderRouted)
                quantity[report.order_id] = step.instruction.quantity
                filled[report.order_id] = 0
            filled[report.order_id] += report.fill_quantity
            assert report.cumulative_quantity == filled[report.order_id]
            if report.kind is ExecutionKind.CANCELLED:
                assert report.leaves_quantity == 0
            else:
                assert report.cumulative_quantity + report.leaves_quantity == quantity[report.order_id]
        for (order_id, _), order in resting(step.state).items():
            assert order_id is not None and (order.quantity, order.filled) == (quantity[order_id], filled[order_id])


@given(streams())
def test_an_order_is_rejected_exactly_when_prodigy_does_not_take_it(stream: list[Instruction]) -> None:
    for step in replay(stream):
        order = step.instruction
        if not isinstance(order, OrderRouted):
            continue
        unsupported = (
            order.side is OrderSide.SHORTSELL
            or order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
            or order.lifetime is OrderLifetime.GOOD_TILL_DATE
            or order.order_id in {order_id for order_id, _ in resting(step.before)}
        )
        assert (own(step)[0].kind is ExecutionKind.REJECTED) == unsupported
        assert (len(step.reports) == 1) if unsupported else (own(step)[0].kind is ExecutionKind.ACKNOWLEDGED)


@given(streams())
def test_a_cancel_takes_out_the_accounts_resting_order_or_reports_nothing(stream: list[Instruction]) -> None:
    for step in replay(stream):
        cancel = step.instruction
        if not isinstance(cancel, OrderCancelRouted):
            continue
        key = (cancel.order_id, cancel.account_id)
        was_resting = resting(step.before).get(key)
        if was_resting is None:
            assert step.reports == ()
        else:
            [report] = step.reports
            assert (report.kind, report.cumulative_quantity, report.leaves_quantity) == (
                ExecutionKind.CANCELLED,
                was_resting.filled,
                0,
            )
        assert key not in resting(step.state)


@given(streams())
def test_storing_the_state_as_json_between_instructions_changes_no_outcome(stream: list[Instruction]) -> None:
    direct = replay(stream)
    stored = replay(stream, through_json=True)
    assert [step.reports for step in direct] == [step.reports for step in stored]
    assert [json.dumps(step.state) for step in direct] == [json.dumps(step.state) for step in stored]


@given(streams())
def test_the_same_stream_gives_byte_identical_reports_and_states(stream: list[Instruction]) -> None:
    def outputs() -> list[str]:
        return [
            json.dumps([asdict(report) for report in step.reports], default=str) + json.dumps(step.state)
            for step in replay(stream)
        ]

    assert outputs() == outputs()


def test_reference_prices_cover_every_instrument_between_1_and_200_in_cents() -> None:
    prices = adapter.reference_prices(exchange())
    assert sorted(prices) == ["XS01.XSX", "XS01.XSY", "XS02.XSX", "XS03.XSX"]
    assert all(
        Decimal(1) <= price <= Decimal(200) and price == price.quantize(Decimal("0.01")) for price in prices.values()
    )
    assert len(set(prices.values())) == len(prices)
    assert prices != adapter.reference_prices(exchange("XSZ"))


def test_reference_prices_are_the_same_in_every_process() -> None:
    script = (
        "from tests.unit.test_prodigy_feed import exchange\n"
        "from exchanges.prodigy import ProdigyOmsAdapter\n"
        "print(sorted(ProdigyOmsAdapter().reference_prices(exchange()).items()))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {f"{sorted(adapter.reference_prices(exchange()).items())}\n"}


async def test_an_instruments_first_order_meets_a_book_seeded_at_its_reference_price() -> None:
    reference = adapter.reference_prices(exchange())["XS02.XSX"]
    order = routed("b1", OrderSide.BUY, 1, order_type=OrderType.MARKET, protection_price="500", instrument="XS02.XSX")
    result = await adapter.submit(order, None)
    assert [report.kind for report in result.reports] == [ExecutionKind.ACKNOWLEDGED, ExecutionKind.FILLED]
    assert result.state["reference_price"] == format(reference, "f")
    assert reference < result.reports[1].fill_price <= reference * Decimal("1.01")  # type: ignore[operator]


async def test_a_cancel_before_any_order_reports_nothing_and_opens_the_book() -> None:
    cancel = OrderCancelRouted(
        order_id="o1", account_id="XS:0001", exchange="XSX", adapter="prodigy", instrument="XS01.XSX"
    )
    result = await adapter.cancel(cancel, None)
    assert result.reports == ()
    book = Book.from_state(result.state)
    assert len(book.bids) == len(book.asks) == DEPTH and not resting(result.state)


async def test_another_instruments_state_is_refused() -> None:
    opened = await adapter.submit(routed("b1", OrderSide.BUY, 1, limit_price="1.00", instrument="XS01.XSX"), None)
    with pytest.raises(BookMismatch, match=r"the book of XS01\.XSX was passed for an instruction on XS02\.XSX"):
        await adapter.submit(routed("b2", OrderSide.BUY, 1, limit_price="1.00", instrument="XS02.XSX"), opened.state)


def closed(instrument: str, state: Mapping[str, Any] | None) -> AdapterResult:
    """The adapter's end of the day for ``instrument``, as the gateway's timer calls it."""
    return asyncio.run(adapter.end_of_day(instrument, state))


@given(streams())
def test_the_end_of_the_day_expires_exactly_the_resting_day_orders_with_what_they_filled(
    stream: list[Instruction],
) -> None:
    instrument = stream[0].instrument
    state = replay(stream)[-1].state
    before = resting(state)
    result = closed(instrument, state)

    day = {key: order for key, order in before.items() if order.lifetime is OrderLifetime.DAY}
    assert len(result.reports) == len(day)
    assert {
        (report.order_id, report.account_id): (report.kind, report.cumulative_quantity, report.leaves_quantity)
        for report in result.reports
    } == {key: (ExecutionKind.EXPIRED, order.filled, 0) for key, order in day.items()}
    for report in result.reports:
        ExecutionReported(
            **asdict(report), exchange="XSX", instrument=instrument, currency="AUD", settles_through_registry=True
        )
    assert resting(result.state) == {key: order for key, order in before.items() if key not in day}
    book = Book.from_state(result.state)
    assert book.best_bid is not None and book.best_ask is not None and book.best_bid < book.best_ask

    again = closed(instrument, result.state)
    assert again.reports == () and again.state == result.state


@given(streams())
def test_the_end_of_the_day_gives_byte_identical_outcomes_from_a_state_stored_as_json(
    stream: list[Instruction],
) -> None:
    instrument = stream[0].instrument
    state = replay(stream)[-1].state

    def outcome(result: AdapterResult) -> str:
        return json.dumps([asdict(report) for report in result.reports], default=str) + json.dumps(result.state)

    direct = outcome(closed(instrument, state))
    assert outcome(closed(instrument, json.loads(json.dumps(state)))) == direct
    assert outcome(closed(instrument, state)) == direct


async def test_a_book_without_day_orders_is_left_as_it_was_at_the_end_of_the_day() -> None:
    opened = await adapter.submit(
        routed("b1", OrderSide.BUY, 1, limit_price="1.00", lifetime=OrderLifetime.GOOD_TILL_CANCEL), None
    )
    result = await adapter.end_of_day("XS01.XSX", opened.state)
    assert result.reports == () and result.state == opened.state


async def test_the_end_of_the_day_of_an_instrument_without_a_book_or_with_anothers_is_refused() -> None:
    with pytest.raises(NoBook, match=r"XS01\.XSX has had no instruction"):
        await adapter.end_of_day("XS01.XSX", None)
    opened = await adapter.submit(routed("b1", OrderSide.BUY, 1, limit_price="1.00", instrument="XS01.XSX"), None)
    with pytest.raises(BookMismatch, match=r"the book of XS01\.XSX was passed for an instruction on XS02\.XSX"):
        await adapter.end_of_day("XS02.XSX", opened.state)
