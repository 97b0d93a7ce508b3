"""What the feed stamps on a plugin's events: the session's seq, and each trade's trading date by its
market's close in the market's own time zone, from which the fold makes the day's figures.

The reference gives each market its own time zone (plxtra/xosp ``Config/Tasks/market-create.ps1``:
``[string] $TimeZone = "Etc/UTC"``, ``Market Create ... -TimeZone $TimeZone``) and Zenith a trading
date per market (plxtra/zenith-websocket-api ``src/content/docs/controllers/market/markets.md``:
"TradingDate: The trading date of the Market"; ``security.md`` sends a Security's full state "upon
a new trading day").
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import reduce

from consumers.market_data.instruments import InstrumentState, fold, session_seq
from consumers.market_data.stamping import Stamp
from exchanges.plugins import MarketData
from schemas.exchanges import ExchangeAdded, Market, Symbol, TradingHours
from schemas.market_data import MarketTradeReported, PriceLevel, QuoteUpdated, TradingStatus, TradingStatusChanged

SESSION = 1_780_000_000


def market(code: str, time_zone: str, open_: dt.time, close: dt.time) -> Market:
    return Market(
        code=code,
        currency="AUD",
        time_zone=time_zone,
        trading_hours=TradingHours(open=open_, close=close),
        symbols=(Symbol(code="BHP", name="BHP Group", currency="AUD", cfi_code="ESVUFR"),),
    )


XSX = ExchangeAdded(
    code="XSX",
    name="XOSP Stock Exchange",
    markets=(
        market("XSX", "Australia/Sydney", dt.time(10, 0), dt.time(16, 0)),
        market("XSXB", "America/New_York", dt.time(9, 30), dt.time(16, 0)),
    ),
    market_data_plugin="prodigy",
    oms_adapter="prodigy",
)


def utc(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=dt.UTC)


def trade(
    seq: int, at: dt.datetime, price: str = "10.00", quantity: int = 10, market: str = "XSX"
) -> MarketTradeReported:
    return MarketTradeReported(
        exchange="XSX",
        instrument=f"BHP.{market}",
        seq=seq,
        price=Decimal(price),
        quantity=quantity,
        venue_trade_id=f"T{seq}",
        at=at,
    )


def dated(at: dt.datetime, market: str = "XSX") -> dt.date | None:
    stamped = Stamp(XSX, SESSION)(trade(1, at, market=market))
    assert isinstance(stamped, MarketTradeReported)
    return stamped.trading_date


def test_trades_either_side_of_utc_midnight_are_one_sydney_trading_date() -> None:
    """23:59 and 00:01 UTC are 10:59 and 11:01 in Sydney (AEDT): the same morning."""
    assert dated(utc(11, 24, 23, 59)) == dated(utc(11, 25, 0, 1)) == dt.date(2026, 11, 25)


def test_trades_either_side_of_sydney_midnight_are_both_the_next_trading_date() -> None:
    """12:59 and 13:01 UTC are 23:59 and 00:01 in Sydney, both after the 24th's 16:00 close."""
    assert dated(utc(11, 24, 12, 59)) == dated(utc(11, 24, 13, 1)) == dt.date(2026, 11, 25)


def test_the_sydney_close_ends_the_trading_date() -> None:
    """16:00 AEDT is 05:00 UTC."""
    assert dated(utc(11, 24, 4, 59)) == dt.date(2026, 11, 24)
    assert dated(utc(11, 24, 5, 0)) == dt.date(2026, 11, 25)


def test_the_close_follows_sydneys_daylight_saving() -> None:
    """On 5 April 2026 Sydney goes from AEDT (UTC+11) to AEST (UTC+10): its close moves from 05:00 to
    06:00 UTC, so 05:30 UTC is after the close on the Friday before and before it on the Monday after."""
    assert dated(utc(4, 3, 5, 30)) == dt.date(2026, 4, 4)
    assert dated(utc(4, 6, 5, 30)) == dt.date(2026, 4, 6)


def test_each_market_of_an_exchange_dates_its_trades_by_its_own_clock() -> None:
    """20:00 UTC on 24 November is 07:00 on the 25th in Sydney and 15:00 on the 24th in New York."""
    at = utc(11, 24, 20, 0)

    assert (dated(at, "XSX"), dated(at, "XSXB")) == (dt.date(2026, 11, 25), dt.date(2026, 11, 24))


def test_the_feeds_date_replaces_one_the_plugin_set() -> None:
    """One rule for the gateway's expiry and the day figures: the market's, from the definition."""
    stamped = Stamp(XSX, SESSION)(trade(1, utc(11, 24, 4, 59)).model_copy(update={"trading_date": dt.date(2000, 1, 1)}))

    assert isinstance(stamped, MarketTradeReported) and stamped.trading_date == dt.date(2026, 11, 24)


def test_a_trade_of_a_market_the_exchange_does_not_list_is_left_undated() -> None:
    assert dated(utc(11, 24, 4, 59), "XSXC") is None


def test_every_event_gets_its_sessions_seq_and_only_trades_a_date() -> None:
    stamp = Stamp(XSX, SESSION)
    quote = QuoteUpdated(
        exchange="XSX",
        instrument="BHP.XSX",
        seq=2,
        bids=(PriceLevel(price=Decimal("9.99"), quantity=100),),
        at=utc(11, 24, 1),
    )
    status = TradingStatusChanged(
        exchange="XSX", instrument="BHP.XSX", seq=3, status=TradingStatus.OPEN, at=utc(11, 24, 1)
    )

    assert stamp(trade(1, utc(11, 24, 1))) == trade(1, utc(11, 24, 1)).model_copy(
        update={"seq": session_seq(SESSION, 1), "trading_date": dt.date(2026, 11, 24)}
    )
    assert stamp(quote) == quote.model_copy(update={"seq": session_seq(SESSION, 2)})
    assert stamp(status) == status.model_copy(update={"seq": session_seq(SESSION, 3)})


def test_a_sydney_day_stamped_and_folded_runs_from_close_to_close() -> None:
    """The day figures of Sydney's 25 November: from the 24th's close (05:00 UTC) to the 25th's, across
    Sydney's midnight (13:00 UTC) and UTC's; the 24th's last price is its close."""
    stamp = Stamp(XSX, SESSION)
    events: list[MarketData] = [
        trade(1, utc(11, 24, 4, 0), "9.00", 5),  # 15:00 on the 24th: the 24th's last trade
        trade(2, utc(11, 24, 6, 0), "10.00", 100),  # 17:00, after the close: the 25th opens
        trade(3, utc(11, 24, 12, 59), "10.80", 20),  # 23:59
        trade(4, utc(11, 24, 13, 1), "9.50", 30),  # 00:01 on the 25th
        trade(5, utc(11, 24, 23, 59), "10.20", 1),  # 10:59
        trade(6, utc(11, 25, 0, 1), "10.10", 2),  # 11:01, the next UTC date
    ]

    state = reduce(fold, [stamp(event) for event in events], None)

    assert isinstance(state, InstrumentState)
    assert (state.trading_date, state.open, state.high, state.low, state.close, state.volume) == (
        dt.date(2026, 11, 25),
        Decimal("10.00"),
        Decimal("10.80"),
        Decimal("9.50"),
        Decimal("9.00"),
        153,
    )
