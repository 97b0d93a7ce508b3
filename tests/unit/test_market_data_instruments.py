"""The fold of market data into an instrument's state: seq order, gaps, best bid/ask, the UTC trading day."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.market_data.instruments import InstrumentState, fold, session_seq
from exchanges.plugins import MarketData
from schemas.exchanges import ExchangeSuspended
from schemas.market_data import MarketTradeReported, PriceLevel, QuoteUpdated, TradingStatus, TradingStatusChanged

NOON = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def trade(seq: int, price: str, quantity: int, at: dt.datetime = NOON) -> MarketTradeReported:
    return MarketTradeReported(
        exchange="XSX",
        instrument="BHP.XSX",
        seq=seq,
        price=Decimal(price),
        quantity=quantity,
        venue_trade_id=f"T{seq}",
        at=at,
    )


def quote(seq: int, bids: list[tuple[str, int]], asks: list[tuple[str, int]]) -> QuoteUpdated:
    return QuoteUpdated(
        exchange="XSX",
        instrument="BHP.XSX",
        seq=seq,
        bids=tuple(PriceLevel(price=Decimal(p), quantity=q) for p, q in bids),
        asks=tuple(PriceLevel(price=Decimal(p), quantity=q) for p, q in asks),
        at=NOON,
    )


def status(seq: int, value: TradingStatus) -> TradingStatusChanged:
    return TradingStatusChanged(exchange="XSX", instrument="BHP.XSX", seq=seq, status=value, at=NOON)


def folded(*events: MarketData) -> InstrumentState:
    state = reduce(fold, events, None)
    assert state is not None
    return state


def test_trades_of_one_utc_day_make_its_open_high_low_and_volume() -> None:
    state = folded(trade(1, "10.00", 100), trade(2, "10.50", 50), trade(3, "9.80", 20), trade(4, "10.10", 5))

    assert (state.day, state.day_open, state.day_high, state.day_low) == (
        NOON.date(),
        Decimal("10.00"),
        Decimal("10.50"),
        Decimal("9.80"),
    )
    assert state.day_volume == 175
    assert (state.last_price, state.last_quantity, state.last_trade_at) == (Decimal("10.10"), 5, NOON)
    assert (state.instrument, state.exchange, state.last_seq, state.gaps) == ("BHP.XSX", "XSX", 4, 0)


def test_the_first_trade_of_a_later_utc_date_opens_a_new_day() -> None:
    late_evening_in_sydney = dt.datetime(2026, 11, 25, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=11)))
    next_utc_day = dt.datetime(2026, 11, 25, 0, 30, tzinfo=dt.UTC)

    state = folded(
        trade(1, "10.00", 100), trade(2, "12.00", 7, late_evening_in_sydney), trade(3, "11.00", 3, next_utc_day)
    )

    assert state.day == next_utc_day.date()
    assert (state.day_open, state.day_high, state.day_low, state.day_volume) == (
        Decimal("11.00"),
        Decimal("11.00"),
        Decimal("11.00"),
        3,
    )


def test_a_late_print_of_an_earlier_day_moves_the_last_trade_but_no_day_figure() -> None:
    yesterday = NOON - dt.timedelta(days=1)

    state = folded(trade(1, "10.00", 100), trade(2, "50.00", 9, yesterday))

    assert (state.last_price, state.last_quantity) == (Decimal("50.00"), 9)
    assert (state.day, state.day_high, state.day_volume) == (NOON.date(), Decimal("10.00"), 100)


def test_an_event_not_above_the_last_seq_changes_nothing() -> None:
    before = folded(trade(1, "10.00", 100), trade(2, "11.00", 10))

    assert fold(before, trade(2, "11.00", 10)) is before
    assert fold(before, trade(1, "10.00", 100)) is before


def test_a_jump_in_seq_counts_one_gap() -> None:
    state = folded(status(1, TradingStatus.OPEN), trade(2, "10.00", 1), trade(5, "10.00", 1), trade(6, "10.00", 1))

    assert (state.last_seq, state.gaps) == (6, 1)


def test_a_quote_gives_the_best_level_of_each_side_and_an_empty_side_clears_it() -> None:
    state = folded(quote(1, [("9.99", 100), ("9.98", 300)], [("10.01", 200), ("10.02", 400)]))
    assert (state.bid_price, state.bid_quantity, state.ask_price, state.ask_quantity) == (
        Decimal("9.99"),
        100,
        Decimal("10.01"),
        200,
    )
    assert state.quoted_at == NOON

    state = fold(state, quote(2, [("9.97", 50)], []))
    assert (state.bid_price, state.bid_quantity, state.ask_price, state.ask_quantity) == (
        Decimal("9.97"),
        50,
        None,
        None,
    )


def test_a_status_change_sets_the_status_and_keeps_the_prices() -> None:
    state = folded(trade(1, "10.00", 100), status(2, TradingStatus.HALTED))

    assert state.status is TradingStatus.HALTED
    assert state.last_price == Decimal("10.00")


def test_an_event_that_is_not_market_data_is_refused() -> None:
    with pytest.raises(TypeError, match="not market data"):
        fold(None, ExchangeSuspended(code="XSX", reason="maintenance"))


MARKET_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["trade", "quote", "status"]),
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999.99"), places=2),
        st.integers(min_value=1, max_value=1_000),
        st.integers(min_value=0, max_value=3),
    ),
    min_size=1,
    max_size=40,
)


def market_data(drawn: list[tuple[str, Decimal, int, int]]) -> list[MarketData]:
    events: list[MarketData] = []
    for seq, (kind, price, quantity, days) in enumerate(drawn, start=1):
        at = NOON + dt.timedelta(days=days)
        if kind == "trade":
            events.append(trade(seq, str(price), quantity, at))
        elif kind == "quote":
            events.append(quote(seq, [(str(price), quantity)], []))
        else:
            events.append(status(seq, TradingStatus.OPEN))
    return events


@given(MARKET_EVENTS, st.data())
def test_redelivered_events_change_nothing(drawn: list[tuple[str, Decimal, int, int]], data: st.DataObject) -> None:
    events = market_data(drawn)
    once = folded(*events)
    # Each event followed by copies of events already seen (a crash re-reads what it had applied).
    redelivered: list[MarketData] = []
    for index, event in enumerate(events):
        redelivered.append(event)
        redelivered += data.draw(st.lists(st.sampled_from(events[: index + 1]), max_size=3))

    assert folded(*redelivered) == once


def test_a_restarted_feed_moves_the_state_on_at_once_and_its_new_session_is_no_gap() -> None:
    first = [trade(session_seq(1_000, n), "10.00", 5) for n in range(1, 4)]
    restarted = trade(session_seq(1_007, 1), "11.00", 2)  # the plugin numbers from 1 again
    state = folded(*first, restarted)
    assert (state.last_price, state.day_volume, state.gaps) == (Decimal("11.00"), 17, 0)
    assert folded(*first, trade(session_seq(1_000, 6), "12.00", 1)).gaps == 1
