"""Prodigy's two plugins, as the entry points ``prodigy`` of ``xosp_bus.market_data`` and ``xosp_bus.oms_adapters``."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator, Iterator, Mapping
from decimal import Decimal

from exchanges.plugins import AdapterResult, AdapterState, ExecutionReport, MarketData
from exchanges.prodigy.book import Book
from exchanges.prodigy.market_maker import open_book, requote
from exchanges.prodigy.pricing import instruments, reference_price
from exchanges.prodigy.simulation import simulate
from infrastructure.errors import XbusError
from schemas.exchanges import ExchangeAdded
from schemas.oms import OrderCancelRouted, OrderRouted

#: Paced feeds sleep about this many times a second, however high the rate.
_SLEEPS_PER_SECOND = 50
#: An unpaced feed still lets other tasks run after this many events.
_UNPACED_BATCH = 1_000


class BookMismatch(XbusError):
    """The gateway passed the state of another instrument's book: its per-instrument states are mixed up."""


class NoBook(XbusError):
    """The gateway ended the day of an instrument it holds no book of: it should skip such instruments."""


class ProdigyMarketData:
    """The simulated public feed of an exchange (see :mod:`exchanges.prodigy.simulation`).

    ``rate`` is events per second for the whole feed (None: as fast as the consumer takes them);
    ``limit`` ends the feed after that many events, closing every instrument (None: until closed).
    """

    def __init__(self, *, rate: float | None = 50.0, limit: int | None = None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be a positive number of events per second or None, not {rate}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be a number of events (0 or more) or None, not {limit}")
        self.rate = rate
        self.limit = limit

    def feed(self, exchange: ExchangeAdded) -> AsyncGenerator[MarketData, None]:
        return self._paced(simulate(exchange, _wall_clock, self.limit))

    async def _paced(self, events: Iterator[MarketData]) -> AsyncGenerator[MarketData, None]:
        """Yield ``events`` at the rate, sleeping once a batch rather than once an event."""
        rate = self.rate
        batch = _UNPACED_BATCH if rate is None else max(1, int(rate / _SLEEPS_PER_SECOND))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for sent, event in enumerate(events, start=1):
            yield event
            if sent % batch == 0:
                due = 0.0 if rate is None else started + sent / rate - loop.time()
                await asyncio.sleep(max(0.0, due))


class ProdigyOmsAdapter:
    """Orders into Prodigy's books: one :class:`~exchanges.prodigy.book.Book` per instrument, as its state."""

    def reference_prices(self, exchange: ExchangeAdded) -> Mapping[str, Decimal]:
        return {instrument: reference_price(exchange.code, instrument) for instrument in instruments(exchange)}

    async def submit(self, order: OrderRouted, state: AdapterState | None) -> AdapterResult:
        book = _opened(order.exchange, order.instrument, state)
        return _result(book, book.submit(order))

    async def cancel(self, cancel: OrderCancelRouted, state: AdapterState | None) -> AdapterResult:
        book = _opened(cancel.exchange, cancel.instrument, state)
        return _result(book, book.cancel(cancel.order_id, cancel.account_id, cancel.reason))

    async def end_of_day(self, instrument: str, state: AdapterState | None) -> AdapterResult:
        """Expire the book's DAY orders, then the market maker requotes (its quotes were held back
        from them); a book with none is left exactly as it was, so the gateway need not store it."""
        if state is None:
            raise NoBook(
                f"{instrument} has had no instruction, so Prodigy has no book of it to close: "
                "the gateway calls end_of_day only for instruments it holds a state of"
            )
        book = _book(instrument, state)
        expired = book.end_of_day()
        return _result(book, expired) if expired else AdapterResult(reports=(), state=state)


def _opened(exchange: str, instrument: str, state: AdapterState | None) -> Book:
    """The instrument's book, opened on ``exchange`` for its first instruction."""
    return open_book(exchange, instrument) if state is None else _book(instrument, state)


def _book(instrument: str, state: AdapterState) -> Book:
    """The instrument's book as ``state`` holds it."""
    book = Book.from_state(state)
    if book.instrument != instrument:
        raise BookMismatch(
            f"the book of {book.instrument} was passed for an instruction on {instrument}: "
            "the gateway must keep one adapter state per instrument"
        )
    return book


def _result(book: Book, reports: list[ExecutionReport]) -> AdapterResult:
    """An instruction's reports, after the market maker's turn."""
    requote(book)
    return AdapterResult(reports=tuple(reports), state=book.to_state())


def _wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
