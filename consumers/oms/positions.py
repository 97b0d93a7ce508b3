"""The OMS's positions (docs/exchanges.md, "Positions") and what a fill does to them.

Cash per account and currency is a booked balance and what open buys reserve; a holding per
account and instrument is a quantity and what open sells hold back, their fields named as
plxtra/oms-api OMS2.md's ``CashPosition`` and ``AssetPosition`` name them (``Balance``,
``UnfilledBuys``; ``Quantity``, ``UnfilledSells``). Available = balance − unfilled buys. A buy
reserves quantity × its price when accepted; each fill books its cost and releases fill quantity ×
that same price (never below the fill price, so a fill never costs more than it releases); the
order's end releases what is left. A sell holds back its quantity the same way. Pure arithmetic
here; the SQL that applies it is in ``order_store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal

from schemas.types import OrderSide

#: Wide enough that a quantity (13 digits) times a price (26 digits) is never rounded.
EXACT = Context(prec=60)


@dataclass(frozen=True)
class CashPosition:
    currency: str
    #: ``Balance``: the booked cash.
    balance: Decimal = Decimal(0)
    #: ``UnfilledBuys``: what open buys reserve of it.
    unfilled_buys: Decimal = Decimal(0)

    @property
    def available(self) -> Decimal:
        return self.balance - self.unfilled_buys


@dataclass(frozen=True)
class HoldingPosition:
    instrument: str
    #: ``Quantity``: the units held.
    quantity: int = 0
    #: ``UnfilledSells``: what open sells hold back of them.
    unfilled_sells: int = 0

    @property
    def available(self) -> int:
        return self.quantity - self.unfilled_sells


@dataclass(frozen=True)
class FillBooking:
    """One fill's changes: to booked cash and holdings, and what it releases of the order's reservation."""

    #: quantity × price: what the fill cost (a buy) or brought (a sell).
    value: Decimal
    #: To booked cash: −value for a buy, +value for a sell.
    cash: Decimal
    #: To the holding: +quantity for a buy, −quantity for a sell.
    quantity: int
    #: Released from reserved cash (a buy): quantity × the reservation price.
    cash_released: Decimal
    #: Released from the held-back quantity (a sell).
    held_back_released: int


def value_of(quantity: int, price: Decimal) -> Decimal:
    """quantity × price, exactly: an order's value, a fill's cost, a share of a reservation."""
    return EXACT.multiply(Decimal(quantity), price)


def book_fill(side: OrderSide, quantity: int, price: Decimal, reservation_price: Decimal) -> FillBooking:
    """What a fill of ``quantity`` at ``price`` books, for an order priced at ``reservation_price``."""
    value = value_of(quantity, price)
    if side is OrderSide.BUY:
        released = value_of(quantity, reservation_price)
        return FillBooking(value=value, cash=-value, quantity=quantity, cash_released=released, held_back_released=0)
    return FillBooking(
        value=value, cash=value, quantity=-quantity, cash_released=Decimal(0), held_back_released=quantity
    )
