"""When a market's trading day is over: its close, on the wall clock of its own time zone.

``ExchangeAdded`` gives each market a time zone and a daily close and no calendar, so every
calendar date is a trading date here (a weekend or a holiday ends a day like any other): a DAY
order placed on Friday evening expires at Saturday's close. Daylight saving needs no care:
the close is compared with the market's local time, whatever its offset that day.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def last_closed(now: dt.datetime, time_zone: str, close: dt.time) -> dt.date:
    """The trading date of the market's latest close at or before ``now`` (an aware time): today's
    in the market once its close (a wall-clock time, without offset) has struck there, else
    yesterday's."""
    local = now.astimezone(ZoneInfo(time_zone))
    if local.time() >= close:
        return local.date()
    return local.date() - dt.timedelta(days=1)
