"""Exchanges for tests: codes of their own, and orders routed to them (the exchanges themselves
come from xbus.trading)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from schemas.exchanges import ExchangeAdded
from schemas.oms import OrderRouted
from schemas.types import OrderLifetime, OrderSide, OrderType


def new_exchange_code() -> str:
    return f"T{uuid.uuid4().hex[:6].upper()}"


def routed(
    exchange: ExchangeAdded,
    instrument: str,
    side: OrderSide,
    quantity: int,
    limit_price: Decimal,
    lifetime: OrderLifetime = OrderLifetime.GOOD_TILL_CANCEL,
) -> OrderRouted:
    """A limit order of a new id and account, as the OMS routes it to ``exchange``'s adapter."""
    market = instrument.split(".", 1)[1]
    return OrderRouted(
        order_id=f"o-{uuid.uuid4().hex[:10]}",
        account_id=f"XS:{uuid.uuid4().hex[:8]}",
        exchange=exchange.code,
        adapter=exchange.oms_adapter,
        instrument=instrument,
        side=side,
        order_type=OrderType.LIMIT,
        quantity=quantity,
        limit_price=limit_price,
        lifetime=lifetime,
        currency=next(m.currency for m in exchange.markets if m.code == market),
        settles_through_registry=exchange.settles_through_registry,
    )
