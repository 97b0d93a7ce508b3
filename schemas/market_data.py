"""Market data and the ``market_data`` service's follow-ups.

Market data itself (trades, best bid/ask with depth, trading status) goes on
``xosp.marketdata.<exchange>`` keyed by instrument, at high rate. Each event carries the feed's
sequence number for its instrument: the state kept per instrument only moves forward
(``seq`` greater than the one applied), which makes re-delivery harmless without an inbox row per
tick, and a gap in ``seq`` shows a lost tick.

``MarketDataFeedStarted`` and ``MarketDataFeedStopped`` go on ``xosp.marketdata.events``
(key: exchange code); the first is the ``market_data.feed`` step of an exchange onboarding.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from schemas.event import Event
from schemas.provisioning import FlowId
from schemas.types import ExchangeCode, Frozen, InstrumentCode, Label, NonEmpty, PositiveDecimalString

Sequence = Annotated[int, Field(ge=1, description="per-instrument sequence number of the feed")]
Volume = Annotated[int, Field(ge=1, le=10**12)]


class TradingStatus(StrEnum):
    PRE_OPEN = "pre_open"
    OPEN = "open"
    HALTED = "halted"
    CLOSED = "closed"


class PriceLevel(Frozen):
    price: PositiveDecimalString
    quantity: Volume


class MarketTradeReported(Event):
    """A trade printed on the exchange (anyone's, not only this platform's orders)."""

    event_type = "xosp.marketdata.trade.v1"
    aggregate_field = "instrument"

    exchange: ExchangeCode
    instrument: InstrumentCode
    seq: Sequence
    price: PositiveDecimalString
    quantity: Volume
    venue_trade_id: NonEmpty
    at: dt.datetime


class QuoteUpdated(Event):
    """The book's best levels: ``bids`` best (highest) first, ``asks`` best (lowest) first.

    A feed with top of book only sends one level a side; an empty side has no orders.
    """

    event_type = "xosp.marketdata.quote.v1"
    aggregate_field = "instrument"

    exchange: ExchangeCode
    instrument: InstrumentCode
    seq: Sequence
    bids: tuple[PriceLevel, ...] = Field(default=(), max_length=50)
    asks: tuple[PriceLevel, ...] = Field(default=(), max_length=50)
    at: dt.datetime


class TradingStatusChanged(Event):
    event_type = "xosp.marketdata.status.v1"
    aggregate_field = "instrument"

    exchange: ExchangeCode
    instrument: InstrumentCode
    seq: Sequence
    status: TradingStatus
    at: dt.datetime


#: What a market-data plugin yields and ``xosp.marketdata.<exchange>`` carries.
MARKET_DATA: tuple[type[Event], ...] = (MarketTradeReported, QuoteUpdated, TradingStatusChanged)


class MarketDataFeedStarted(Event):
    """The exchange's plugin feeds ``topic`` (step ``market_data.feed`` of an exchange onboarding)."""

    event_type = "xosp.marketdata_feed.started.v1"
    aggregate_field = "exchange"

    flow_id: FlowId
    exchange: ExchangeCode
    plugin: Label
    topic: NonEmpty
    instruments: Annotated[int, Field(ge=0)]


class MarketDataFeedStopped(Event):
    event_type = "xosp.marketdata_feed.stopped.v1"
    aggregate_field = "exchange"

    flow_id: FlowId
    exchange: ExchangeCode
    plugin: Label
    reason: NonEmpty
