"""Follow-ups of the ``gateway`` service, which runs each exchange's OMS adapter (``xosp.gateway.events``).

An execution report has the shape of a FIX ExecutionReport: one event per thing that happened
to an order at the exchange (acknowledged, filled in part or in full, cancelled, expired,
rejected), keyed by trading account so that one account's reports stay in order for the OMS and
the registry. ``venue_trade_id`` names a fill at the exchange; settlement is idempotent on it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

from schemas.event import Event
from schemas.provisioning import FlowId
from schemas.types import (
    Currency,
    ExchangeCode,
    Frozen,
    InstrumentCode,
    Label,
    NonEmpty,
    OrderId,
    OrderSide,
    PositiveDecimalString,
    TradingAccountId,
)

Quantity = Annotated[int, Field(ge=0, le=10**12)]


class InstrumentPrice(Frozen):
    instrument: InstrumentCode
    price: PositiveDecimalString


class OmsAdapterRegistered(Event):
    """The exchange's OMS adapter is open for orders (step ``gateway.adapter`` of an exchange onboarding).

    ``reference_prices`` are the adapter's prices to vet against until trades set new ones (the
    previous close on a real exchange).
    """

    event_type = "xosp.oms_adapter.registered.v1"
    aggregate_field = "exchange"

    flow_id: FlowId
    exchange: ExchangeCode
    adapter: Label
    reference_prices: tuple[InstrumentPrice, ...] = ()


class OmsAdapterStopped(Event):
    """The exchange takes no more orders through this platform (suspended or removed)."""

    event_type = "xosp.oms_adapter.stopped.v1"
    aggregate_field = "exchange"

    flow_id: FlowId
    exchange: ExchangeCode
    adapter: Label
    reason: NonEmpty


class ExecutionKind(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"


class TradeType(StrEnum):
    """What a fill is, as plxtra/oms-api OMS2.md ``OrderTradeType`` names it: a trade execution, or
    the correction or cancellation (bust) of one. The exchanges' adapters report only ``Trade``
    today; the OMS books no other (docs/exchanges.md, "Trade types")."""

    TRADE = "Trade"
    CORRECTION = "Correction"
    CANCEL = "Cancel"


#: After these the order is done at the exchange (a fill is final when ``leaves_quantity`` is 0).
FINAL_KINDS = frozenset({ExecutionKind.CANCELLED, ExecutionKind.EXPIRED, ExecutionKind.REJECTED})


class ExecutionReported(Event):
    event_type = "xosp.execution.reported.v1"
    aggregate_field = "account_id"

    exchange: ExchangeCode
    order_id: OrderId
    account_id: TradingAccountId
    instrument: InstrumentCode
    side: OrderSide
    kind: ExecutionKind
    #: The market's currency, in which the fill is paid.
    currency: Currency
    #: Deprecated: the exchange's ``ExchangeAdded.settles_through_registry``, still stamped and no
    #: longer read (the deployment decides: ``XBUS_REGISTRY``, docs/exchanges.md).
    settles_through_registry: bool
    fill_quantity: Quantity = 0
    fill_price: PositiveDecimalString | None = None
    venue_trade_id: NonEmpty | None = None
    cumulative_quantity: Quantity
    leaves_quantity: Quantity
    reason: NonEmpty | None = None
    #: A fill's trade type; a fill reported before trade types, without one, was a ``Trade``.
    trade_type: TradeType | None = None

    @model_validator(mode="before")
    @classmethod
    def _a_fill_is_a_trade_unless_said(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == ExecutionKind.FILLED and data.get("trade_type") is None:
            return {**data, "trade_type": TradeType.TRADE}
        return data

    @model_validator(mode="after")
    def _fill_fields_only_on_fills(self) -> Self:
        is_fill = self.kind is ExecutionKind.FILLED
        if is_fill != (self.fill_quantity > 0 and self.fill_price is not None and self.venue_trade_id is not None):
            raise ValueError("fill_quantity, fill_price and venue_trade_id are required on a fill and only there")
        if not is_fill and self.trade_type is not None:
            raise ValueError(f"a {self.kind} report is no trade: trade_type is only on a fill")
        if self.kind in FINAL_KINDS and self.leaves_quantity != 0:
            raise ValueError(f"a {self.kind} report leaves nothing open: leaves_quantity must be 0")
        return self

    @property
    def is_final(self) -> bool:
        return self.kind in FINAL_KINDS or (self.kind is ExecutionKind.FILLED and self.leaves_quantity == 0)
