"""The market maker that keeps Prodigy's books liquid.

After every instruction it withdraws its orders and quotes afresh: :data:`~pricing.DEPTH`
levels a side around the last trade price (the reference price before the first trade), the
sizes growing away from the market and set by the instrument code. Its quotes never cross the
platform's resting orders (its best bid stays below their best ask and its best ask above their
best bid), so the book is never left crossed and the market maker never trades with the platform
on its own initiative: it only answers incoming orders. It has no account, so fills against it
are reported for the platform's order alone.
"""

from __future__ import annotations

from exchanges.prodigy.book import Book
from exchanges.prodigy.pricing import digest, from_ticks, ladder, level_spacing, reference_price, to_ticks
from schemas.types import OrderSide

#: The smallest quote is this many lots of 100; a level further out quotes one more such size.
_LOT = 100
_LOT_CHOICES = 5


def open_book(exchange: str, instrument: str) -> Book:
    """An instrument's book before its first instruction: the market maker's quotes alone."""
    book = Book(instrument, reference_price(exchange, instrument))
    requote(book)
    return book


def requote(book: Book) -> None:
    """Replace the market maker's orders by a full ladder a side around the book's last price."""
    book.withdraw_market_maker()
    centre = to_ticks(book.last_price if book.last_price is not None else book.reference_price)
    spacing = level_spacing(centre)
    best_bid = centre - spacing
    best_ask = centre + spacing
    if book.best_ask is not None:
        best_bid = min(best_bid, to_ticks(book.best_ask) - 1)
    if book.best_bid is not None:
        best_ask = max(best_ask, to_ticks(book.best_bid) + 1)
    size = _LOT * (1 + digest("lot", book.instrument) % _LOT_CHOICES)
    for side, best in ((OrderSide.BUY, best_bid), (OrderSide.SELL, best_ask)):
        for level, price in enumerate(ladder(best, spacing, side)):
            book.rest(side, None, None, from_ticks(price), size * (level + 1))
