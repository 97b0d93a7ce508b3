"""The fold of market data into an instrument's state: seq order, gaps, best bid/ask, the day figures of
each trading date."""

from __future__ import annotations

import dataclasses
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


def trade(
    seq: int, price: str, quantity: int, at: dt.datetime = NOON, trading_date: dt.date | None = None
) -> MarketTradeReported:
    """A trade as the feed publishes it, dated by its market (a trade without a date was published
    before trades carried one)."""
    return MarketTradeReported(
        exchange="XSX",
        instrument="BHP.XSX",
        seq=seq,
        price=Decimal(price),
        quantity=quantity,
        venue_trade_id=f"T{seq}",
        at=at,
        trading_date=trading_date,
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


TODAY = dt.date(2026, 11, 25)
TOMORROW = TODAY + dt.timedelta(days=1)


def test_trades_of_one_trading_date_make_its_open_high_low_and_volume() -> None:
    """Zenith's Security (plxtra/zenith-websocket-api ``src/content/docs/controllers/market/security.md``):
    "Open: The opening price", "High: The high price", "Low: The low price", "Volume: The total volume
    traded"; "Close: The closing price for yesterday, if one exists" (none here: no earlier day)."""
    state = folded(
        trade(1, "10.00", 100, trading_date=TODAY),
        trade(2, "10.50", 50, trading_date=TODAY),
        trade(3, "9.80", 20, trading_date=TODAY),
        trade(4, "10.10", 5, trading_date=TODAY),
    )

    assert (state.trading_date, state.open, state.high, state.low, state.close) == (
        TODAY,
        Decimal("10.00"),
        Decimal("10.50"),
        Decimal("9.80"),
        None,
    )
    assert state.volume == 175
    assert (state.last_price, state.last_quantity, state.last_trade_at) == (Decimal("10.10"), 5, NOON)
    assert (state.instrument, state.exchange, state.last_seq, state.gaps) == ("BHP.XSX", "XSX", 4, 0)


def test_the_trading_date_a_trade_carries_makes_its_day_whatever_its_utc_date() -> None:
    """Zenith sends a Security's full state "upon a new trading day" (security.md), and "TradingDate:
    The trading date of the Market" (markets.md): the market's date, which the feed stamps on each
    trade. 23:59 and 00:01 UTC are one Sydney morning; 00:01 and 05:00 UTC straddle its 16:00 close."""
    before_utc_midnight = dt.datetime(2026, 11, 24, 23, 59, tzinfo=dt.UTC)
    after_utc_midnight = dt.datetime(2026, 11, 25, 0, 1, tzinfo=dt.UTC)
    after_the_close = dt.datetime(2026, 11, 25, 5, 0, tzinfo=dt.UTC)

    one_morning = folded(
        trade(1, "10.00", 100, before_utc_midnight, TODAY), trade(2, "11.00", 10, after_utc_midnight, TODAY)
    )
    assert (one_morning.trading_date, one_morning.open, one_morning.high, one_morning.volume) == (
        TODAY,
        Decimal("10.00"),
        Decimal("11.00"),
        110,
    )

    next_day = fold(one_morning, trade(3, "12.00", 1, after_the_close, TOMORROW))
    assert (next_day.trading_date, next_day.open, next_day.low, next_day.volume) == (
        TOMORROW,
        Decimal("12.00"),
        Decimal("12.00"),
        1,
    )


def test_the_last_price_before_a_new_trading_date_is_its_close() -> None:
    """security.md: "Close: The closing price for yesterday, if one exists"; it stays the day long."""
    state = folded(
        trade(1, "10.00", 100, trading_date=TODAY),
        trade(2, "10.40", 10, trading_date=TODAY),
        trade(3, "11.00", 3, trading_date=TOMORROW),
        trade(4, "11.50", 2, trading_date=TOMORROW),
    )

    assert (state.trading_date, state.close, state.open, state.high, state.volume) == (
        TOMORROW,
        Decimal("10.40"),
        Decimal("11.00"),
        Decimal("11.50"),
        5,
    )


def test_a_late_print_of_an_earlier_day_moves_the_last_trade_but_no_day_figure() -> None:
    yesterday = TODAY - dt.timedelta(days=1)

    state = folded(trade(1, "10.00", 100, trading_date=TODAY), trade(2, "50.00", 9, trading_date=yesterday))

    assert (state.last_price, state.last_quantity) == (Decimal("50.00"), 9)
    assert (state.trading_date, state.high, state.low, state.volume) == (
        TODAY,
        Decimal("10.00"),
        Decimal("10.00"),
        100,
    )


def test_a_trade_published_before_trades_carried_a_date_counts_on_its_utc_date() -> None:
    """So a refold of older records gives the day figures they were folded into then."""
    late_evening_in_sydney = dt.datetime(2026, 11, 25, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=11)))
    next_utc_day = dt.datetime(2026, 11, 25, 0, 30, tzinfo=dt.UTC)

    state = folded(
        trade(1, "10.00", 100), trade(2, "12.00", 7, late_evening_in_sydney), trade(3, "11.00", 3, next_utc_day)
    )

    assert state.trading_date == next_utc_day.date()
    assert (state.open, state.high, state.low, state.close, state.volume) == (
        Decimal("11.00"),
        Decimal("11.00"),
        Decimal("11.00"),
        Decimal("12.00"),
        3,
    )


def test_a_state_is_a_value_that_folding_never_changes() -> None:
    """The projection keeps the states it loaded while it folds a batch: a fold returns a new one."""
    before = folded(trade(1, "10.00", 100, trading_date=TODAY))
    kept = dataclasses.replace(before)

    after = fold(before, trade(2, "11.00", 3, trading_date=TOMORROW))

    assert before == kept and after != before
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.volume = 0  # type: ignore[misc]


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
            events.append(trade(seq, str(price), quantity, at, TODAY + dt.timedelta(days=days)))
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
    assert (state.last_price, state.volume, state.gaps) == (Decimal("11.00"), 17, 0)
    assert folded(*first, trade(session_seq(1_000, 6), "12.00", 1)).gaps == 1
