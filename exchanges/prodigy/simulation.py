"""Prodigy's public market data: one seeded random walk per instrument, told as statuses, quotes and trades.

A session opens every instrument (``PRE_OPEN``, then ``OPEN`` and a first quote), then picks an
instrument at random over and over: most picks quote its book (:data:`~pricing.DEPTH` levels a
side around its last price), some print a trade after the price has moved a few levels, and a
rare one halts it for a while (no events until it opens again). A session with a limit ends by
closing every instrument. The random numbers come from ``random.Random`` seeded with a digest of
the exchange code, so the same exchange always gives the same events; only ``at``, read from the
clock passed in, differs from one run to the next.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from exchanges.plugins import MarketData
from exchanges.prodigy.pricing import (
    digest,
    from_ticks,
    instruments,
    ladder,
    level_spacing,
    reference_price,
    to_ticks,
)
from schemas.exchanges import ExchangeAdded
from schemas.market_data import MarketTradeReported, PriceLevel, QuoteUpdated, TradingStatus, TradingStatusChanged
from schemas.types import OrderSide

Clock = Callable[[], dt.datetime]

_HALT_CHANCE = 1 / 500
_TRADE_CHANCE = 0.3
#: A halt lasts this many picks of the halted instrument.
_HALT_PICKS = (20, 60)
#: Levels a trade may move the price by, either way.
_STEP_LEVELS = 2
#: The walk stays at or above 0.10, so a quote always has all its bid levels above zero.
_LOWEST_PRICE = 10
_TRADE_LOTS = (1, 50)
_TRADE_LOT = 10
_QUOTE_LOTS = (1, 50)
_QUOTE_LOT = 100
#: Statuses every instrument gets besides its market events: pre-open, open, closed.
_STATUSES_PER_INSTRUMENT = 3


def simulate(exchange: ExchangeAdded, clock: Clock, limit: int | None = None) -> Iterator[MarketData]:
    """The exchange's market data; with a ``limit``, exactly that many events, the closing statuses last."""
    listed = instruments(exchange)
    if limit is not None and limit < _STATUSES_PER_INSTRUMENT * len(listed):
        raise ValueError(
            f"a feed limit of {limit} events is too small for {exchange.code}: its {len(listed)} instruments "
            f"need {_STATUSES_PER_INSTRUMENT * len(listed)} to open and close; raise the limit"
        )
    if not listed:
        return iter(())
    session = _Session(exchange.code, listed, clock)
    if limit is None:
        return session.events()
    return itertools.chain(itertools.islice(session.events(), limit - len(listed)), session.closing())


@dataclass(slots=True)
class _Instrument:
    code: str
    #: Last price, in ticks.
    price: int
    seq: int = 0
    trades: int = 0
    #: Picks left before a halted instrument opens again; 0 when it is open.
    halted_for: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class _Session:
    def __init__(self, exchange: str, listed: list[str], clock: Clock) -> None:
        self._exchange = exchange
        self._clock = clock
        self._random = random.Random(digest("feed", exchange))
        self._instruments = [_Instrument(code, to_ticks(reference_price(exchange, code))) for code in listed]

    def events(self) -> Iterator[MarketData]:
        for status in (TradingStatus.PRE_OPEN, TradingStatus.OPEN):
            for instrument in self._instruments:
                yield self._status(instrument, status)
        for instrument in self._instruments:
            yield self._quote(instrument)
        while True:
            event = self._step(self._random.choice(self._instruments))
            if event is not None:
                yield event

    def closing(self) -> Iterator[MarketData]:
        for instrument in self._instruments:
            yield self._status(instrument, TradingStatus.CLOSED)

    def _step(self, instrument: _Instrument) -> MarketData | None:
        if instrument.halted_for:
            instrument.halted_for -= 1
            return None if instrument.halted_for else self._status(instrument, TradingStatus.OPEN)
        roll = self._random.random()
        if roll < _HALT_CHANCE:
            instrument.halted_for = self._random.randint(*_HALT_PICKS)
            return self._status(instrument, TradingStatus.HALTED)
        if roll < _HALT_CHANCE + _TRADE_CHANCE:
            return self._trade(instrument)
        return self._quote(instrument)

    def _status(self, instrument: _Instrument, status: TradingStatus) -> TradingStatusChanged:
        return TradingStatusChanged(
            exchange=self._exchange,
            instrument=instrument.code,
            seq=instrument.next_seq(),
            status=status,
            at=self._clock(),
        )

    def _trade(self, instrument: _Instrument) -> MarketTradeReported:
        move = self._random.randint(-_STEP_LEVELS, _STEP_LEVELS) * level_spacing(instrument.price)
        instrument.price = max(_LOWEST_PRICE, instrument.price + move)
        instrument.trades += 1
        return MarketTradeReported(
            exchange=self._exchange,
            instrument=instrument.code,
            seq=instrument.next_seq(),
            price=from_ticks(instrument.price),
            quantity=self._random.randint(*_TRADE_LOTS) * _TRADE_LOT,
            venue_trade_id=f"{instrument.code}-F{instrument.trades}",
            at=self._clock(),
        )

    def _quote(self, instrument: _Instrument) -> QuoteUpdated:
        spacing = level_spacing(instrument.price)
        bids = ladder(instrument.price - spacing, spacing, OrderSide.BUY)
        asks = ladder(instrument.price + spacing, spacing, OrderSide.SELL)
        return QuoteUpdated(
            exchange=self._exchange,
            instrument=instrument.code,
            seq=instrument.next_seq(),
            bids=tuple(self._level(price) for price in bids),
            asks=tuple(self._level(price) for price in asks),
            at=self._clock(),
        )

    def _level(self, price: int) -> PriceLevel:
        return PriceLevel(price=from_ticks(price), quantity=self._random.randint(*_QUOTE_LOTS) * _QUOTE_LOT)
