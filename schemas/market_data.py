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
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from schemas.event import Event
from schemas.provisioning import FlowId
from schemas.types import DECIMAL_PATTERN, ExchangeCode, Frozen, InstrumentCode, Label, NonEmpty

Sequence = Annotated[int, Field(ge=1, description="per-instrument sequence number of the feed")]
Volume = Annotated[int, Field(ge=1, le=10**12)]


class _NativePrice:
    """A price above zero, as a decimal string in JSON (a float has lost digits) and a ``Decimal``
    in Python, checked by pydantic-core alone: the grammar of amounts at the edge (no sign, no
    exponent, at most 18 digits and 8 decimals) by its own pattern, the conversion and the sign by
    its own decimal validator. ``PositiveDecimalString`` runs a Python function per value, and a
    quote carries up to a hundred prices at thousands of quotes a second (issue 18: the fold ran
    at half the rate of reading the topic). Only exchange plugins publish market data, never the
    edge, so the lenient reading of a service's own amounts that ``PositiveDecimalString`` keeps
    has no use here: a plugin formats prices the way this grammar reads them."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        from_text = core_schema.chain_schema(
            [core_schema.str_schema(pattern=_UNSIGNED), core_schema.decimal_schema(gt=Decimal(0))]
        )
        return core_schema.json_or_python_schema(
            json_schema=from_text,
            python_schema=core_schema.union_schema([core_schema.decimal_schema(gt=Decimal(0), strict=True), from_text]),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: format(value, "f"), return_schema=core_schema.str_schema(), when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: Any) -> dict[str, Any]:
        return {"type": "string", "pattern": DECIMAL_PATTERN}


#: The unsigned half of the amounts' grammar (a price is never negative).
_UNSIGNED = DECIMAL_PATTERN.replace("^-?", "^")
Price = Annotated[Decimal, _NativePrice]


class TradingStatus(StrEnum):
    PRE_OPEN = "pre_open"
    OPEN = "open"
    HALTED = "halted"
    CLOSED = "closed"


class PriceLevel(Frozen):
    price: Price
    quantity: Volume


class MarketTradeReported(Event):
    """A trade printed on the exchange (anyone's, not only this platform's orders)."""

    event_type = "xosp.marketdata.trade.v1"
    aggregate_field = "instrument"

    exchange: ExchangeCode
    instrument: InstrumentCode
    seq: Sequence
    price: Price
    quantity: Volume
    venue_trade_id: NonEmpty
    at: dt.datetime
    #: The market's trading date the trade counts on (Zenith's ``TradingDate``): the market-data
    #: feed stamps it from the exchange's definition, by the market's close in its time zone, so
    #: that the day it gave a trade travels with it. None on trades published before trades
    #: carried it, which count on the UTC date of ``at``.
    trading_date: dt.date | None = None


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
