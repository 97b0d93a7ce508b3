"""Events of ``xosp.orders`` (key: trading account id, so one account's orders stay in order)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Self

from pydantic import Field, model_validator

from schemas.event import Event
from schemas.types import (
    InstrumentCode,
    LoginId,
    NonEmpty,
    OrderId,
    OrderLifetime,
    OrderSide,
    OrderType,
    PositiveDecimalString,
    TradingAccountId,
)

Quantity = Annotated[int, Field(ge=1, le=10**12)]

_NEEDS_LIMIT = {OrderType.LIMIT, OrderType.STOP_LIMIT}
_NEEDS_STOP = {OrderType.STOP, OrderType.STOP_LIMIT}


class OrderPlaced(Event):
    event_type = "xosp.order.placed.v1"
    aggregate_field = "account_id"

    order_id: OrderId
    account_id: TradingAccountId
    login_id: LoginId
    instrument: InstrumentCode
    side: OrderSide
    order_type: OrderType
    quantity: Quantity
    limit_price: PositiveDecimalString | None = None
    stop_price: PositiveDecimalString | None = None
    lifetime: OrderLifetime = OrderLifetime.DAY
    expiry_date: dt.date | None = None

    @model_validator(mode="after")
    def _prices_and_expiry_match_the_type(self) -> Self:
        if self.order_type in _NEEDS_LIMIT and self.limit_price is None:
            raise ValueError(f"limit_price is required for a {self.order_type} order")
        if self.order_type not in _NEEDS_LIMIT and self.limit_price is not None:
            raise ValueError(f"limit_price is not allowed for a {self.order_type} order")
        if self.order_type in _NEEDS_STOP and self.stop_price is None:
            raise ValueError(f"stop_price is required for a {self.order_type} order")
        if self.order_type not in _NEEDS_STOP and self.stop_price is not None:
            raise ValueError(f"stop_price is not allowed for a {self.order_type} order")
        if (self.lifetime == OrderLifetime.GOOD_TILL_DATE) != (self.expiry_date is not None):
            raise ValueError("expiry_date is required for GOOD_TILL_DATE and allowed only there")
        return self


class OrderCancelRequested(Event):
    event_type = "xosp.order.cancel_requested.v1"
    aggregate_field = "account_id"

    order_id: OrderId
    account_id: TradingAccountId
    login_id: LoginId
    reason: NonEmpty | None = None


class OrderAmendRequested(Event):
    """Change quantity and/or limit price of an open order; at least one must be given."""

    event_type = "xosp.order.amend_requested.v1"
    aggregate_field = "account_id"

    order_id: OrderId
    account_id: TradingAccountId
    login_id: LoginId
    quantity: Quantity | None = None
    limit_price: PositiveDecimalString | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.quantity is None and self.limit_price is None:
            raise ValueError("an amendment needs a new quantity or a new limit_price")
        return self
