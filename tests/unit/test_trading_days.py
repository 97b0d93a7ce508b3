"""A market's trading days, the one rule the gateway's expiry and market data's day figures share.

The reference gives each market a time zone of its own (plxtra/xosp
``Config/Tasks/market-create.ps1``: ``[string] $TimeZone = "Etc/UTC"``, passed on as
``Market Create ... -TimeZone $TimeZone``) and a trading date that is the market's, not the
viewer's (plxtra/zenith-websocket-api ``src/content/docs/controllers/market/markets.md``:
"TradingDate: The trading date of the Market", beside "MarketTime: The current date and time at
the exchange, including time zone"). ``ExchangeAdded`` gives the close on that clock, and a DAY
order placed after it is for the next trading day (docs/exchanges.md): a trading day runs from
one close to the next.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from consumers.runtime.trading_days import last_closed, trading_date

SYDNEY = "Australia/Sydney"
CLOSE = dt.time(16, 0)


def sydney(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(SYDNEY))


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def test_the_close_ends_the_trading_date_on_the_markets_wall_clock() -> None:
    assert trading_date(sydney(2026, 11, 24, 15, 59, 59), SYDNEY, CLOSE) == dt.date(2026, 11, 24)
    assert trading_date(sydney(2026, 11, 24, 16, 0), SYDNEY, CLOSE) == dt.date(2026, 11, 25)


def test_utc_midnight_is_no_boundary_for_a_market_far_from_utc() -> None:
    """23:59 and 00:01 UTC are 10:59 and 11:01 in Sydney (AEDT, UTC+11): one morning's trading."""
    before, after = utc(2026, 11, 24, 23, 59), utc(2026, 11, 25, 0, 1)

    assert trading_date(before, SYDNEY, CLOSE) == trading_date(after, SYDNEY, CLOSE) == dt.date(2026, 11, 25)


def test_local_midnight_is_no_boundary_either_the_close_is() -> None:
    """23:59 and 00:01 in Sydney both come after the 24th's close: both are the 25th's."""
    before, after = sydney(2026, 11, 24, 23, 59), sydney(2026, 11, 25, 0, 1)

    assert trading_date(before, SYDNEY, CLOSE) == trading_date(after, SYDNEY, CLOSE) == dt.date(2026, 11, 25)


def test_the_close_moves_in_utc_with_daylight_saving() -> None:
    """Sydney leaves daylight saving on 5 April 2026 (03:00 AEDT becomes 02:00 AEST): 05:30 UTC is
    16:30 AEDT, after the close, on the Friday before, and 15:30 AEST, before it, on the Monday after."""
    assert trading_date(utc(2026, 4, 3, 5, 30), SYDNEY, CLOSE) == dt.date(2026, 4, 4)
    assert trading_date(utc(2026, 4, 6, 5, 30), SYDNEY, CLOSE) == dt.date(2026, 4, 6)
    # and back on 4 October 2026 (02:00 AEST becomes 03:00 AEDT): 05:30 UTC is after the close again
    assert trading_date(utc(2026, 10, 2, 5, 30), SYDNEY, CLOSE) == dt.date(2026, 10, 2)
    assert trading_date(utc(2026, 10, 5, 5, 30), SYDNEY, CLOSE) == dt.date(2026, 10, 6)


def test_an_offset_given_with_the_close_is_the_time_zones_business() -> None:
    with_offset = dt.time(16, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))

    assert trading_date(sydney(2026, 11, 24, 16, 0), SYDNEY, with_offset) == dt.date(2026, 11, 25)
    assert last_closed(sydney(2026, 11, 24, 15, 0), SYDNEY, with_offset) == dt.date(2026, 11, 23)


def test_the_last_close_is_today_once_it_has_struck_else_yesterday() -> None:
    assert last_closed(sydney(2026, 11, 24, 15, 59, 59), SYDNEY, CLOSE) == dt.date(2026, 11, 23)
    assert last_closed(sydney(2026, 11, 24, 16, 0), SYDNEY, CLOSE) == dt.date(2026, 11, 24)


@given(
    st.datetimes(min_value=dt.datetime(2000, 1, 2), max_value=dt.datetime(2099, 12, 30), timezones=st.just(dt.UTC)),
    st.sampled_from([SYDNEY, "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"]),
    st.times(),
)
def test_a_moment_belongs_to_the_day_after_the_last_close(at: dt.datetime, zone: str, close: dt.time) -> None:
    """The gateway expires the DAY orders of ``last_closed``; what trades after it is the next date's."""
    assert trading_date(at, zone, close) == last_closed(at, zone, close) + dt.timedelta(days=1)
    local = at.astimezone(ZoneInfo(zone))
    assert trading_date(at, zone, close) - local.date() in (dt.timedelta(0), dt.timedelta(days=1))
