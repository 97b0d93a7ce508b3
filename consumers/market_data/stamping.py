"""What the feed adds to each event its plugin yields before publishing it: the ``seq`` of the feed
session (instruments.py), and on a trade the trading date it counts on, by its market's rule
(consumers/runtime/trading_days.py, the gateway's for expiring DAY orders too).

The date is decided here, once, from the exchange's definition the feed runs with, and travels
with the trade: the projection's fold needs nothing but the event, and refolding the topic gives
the same day figures even after an ``ExchangeUpdated`` has moved a market's close or time zone.
A trade of a market the definition does not list is left undated (it counts on its UTC date).
"""

from __future__ import annotations

import datetime as dt

from consumers.market_data.instruments import session_seq
from consumers.runtime.trading_days import trading_date
from exchanges.plugins import MarketData
from schemas.exchanges import ExchangeAdded
from schemas.market_data import MarketTradeReported


class Stamp:
    """Stamps the events of one feed session of ``exchange``."""

    def __init__(self, exchange: ExchangeAdded, session: int) -> None:
        self._session = session
        self._closes = {market.code: (market.time_zone, market.trading_hours.close) for market in exchange.markets}

    def __call__(self, event: MarketData) -> MarketData:
        changes: dict[str, object] = {"seq": session_seq(self._session, event.seq)}
        if isinstance(event, MarketTradeReported):
            changes["trading_date"] = self._trading_date(event.instrument, event.at)
        return event.model_copy(update=changes)

    def _trading_date(self, instrument: str, at: dt.datetime) -> dt.date | None:
        market = self._closes.get(instrument.split(".", 1)[1])
        return None if market is None else trading_date(at, *market)
