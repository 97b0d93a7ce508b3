"""A market's trading days: each ends at the market's close, on the wall clock of its own time zone.

The one rule for every service that needs a market's day: the gateway expires DAY orders at the
end of each (``last_closed``), and the market-data feed dates each trade with the day it falls in
(``trading_date``), whose open, high, low and volume the instruments' state then sums up.

``ExchangeAdded`` gives each market a time zone and a daily close and no calendar, so every
calendar date is a trading date here (a weekend or a holiday ends a day like any other): a DAY
order placed on Friday evening expires at Saturday's close, and a trade after Friday's close
counts on Saturday's figures. A day runs from one close to the next, not from midnight: what
happens after the close (an order placed, a trade printed) belongs to the next trading date, so
local midnight is no boundary, and neither is UTC's. Daylight saving needs no care: the close is
compared with the market's local time, whatever its offset that day.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

_ONE_DAY = dt.timedelta(days=1)


def trading_date(at: dt.datetime, time_zone: str, close: dt.time) -> dt.date:
    """The trading date ``at`` (an aware time) falls in: the date of the market's first close after
    it. ``close`` is a wall-clock time in ``time_zone``; an offset given with it is ignored, the time
    zone's own being the one that holds on each date."""
    local = at.astimezone(ZoneInfo(time_zone))
    if local.time() >= close.replace(tzinfo=None):
        return local.date() + _ONE_DAY
    return local.date()


def last_closed(now: dt.datetime, time_zone: str, close: dt.time) -> dt.date:
    """The trading date of the market's latest close at or before ``now`` (an aware time): today's
    in the market once its close has struck there, else yesterday's."""
    return trading_date(now, time_zone, close) - _ONE_DAY
