"""Prices on Prodigy: the tick, the reference prices, and the ladder of levels quotes are made of.

Everything here is derived from codes with SHA-256, never with Python's ``hash()``, which is
salted per process: the gateway, the market-data service and a replay in another process must
all arrive at the same reference price and the same quote sizes.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from schemas.exchanges import ExchangeAdded
from schemas.types import OrderSide

TICK = Decimal("0.01")
#: Levels a side that the market maker keeps in the book and the public feed quotes.
DEPTH = 5
#: Reference prices lie between 1.00 and 200.00 (in ticks).
_LOWEST_REFERENCE = 100
_HIGHEST_REFERENCE = 20_000
#: Levels are about 10 basis points of the price apart, and at least one tick.
_LEVEL_SPACING_DIVISOR = 1_000


def digest(*parts: str) -> int:
    """A stable 64-bit number from ``parts``: the same in every process and on every machine."""
    data = "\x1f".join(parts).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def reference_price(exchange: str, instrument: str) -> Decimal:
    """Where ``instrument`` opens: its book is seeded around this price, and the feed starts here."""
    span = _HIGHEST_REFERENCE - _LOWEST_REFERENCE + 1
    return from_ticks(_LOWEST_REFERENCE + digest("reference", exchange, instrument) % span)


def instruments(exchange: ExchangeAdded) -> list[str]:
    """Every instrument of the exchange, ``SYMBOL.MARKET``, in the order the exchange lists them."""
    return [f"{symbol.code}.{market.code}" for market in exchange.markets for symbol in market.symbols]


def from_ticks(ticks: int) -> Decimal:
    return ticks * TICK


def to_ticks(price: Decimal) -> int:
    """``price`` in ticks; the caller has checked it is on the tick (see :func:`on_tick`)."""
    return int(price / TICK)


def on_tick(price: Decimal) -> bool:
    return price % TICK == 0


def level_spacing(ticks: int) -> int:
    """Ticks between two levels of a quote around ``ticks``."""
    return max(1, ticks // _LEVEL_SPACING_DIVISOR)


def ladder(best: int, spacing: int, side: OrderSide) -> list[int]:
    """Up to :data:`DEPTH` prices (in ticks) from ``best`` away from the market; none at or below zero."""
    direction = -1 if side is OrderSide.BUY else 1
    levels = (best + direction * spacing * level for level in range(DEPTH))
    return [price for price in levels if price > 0]
