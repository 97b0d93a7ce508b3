"""Follow-up events of the Order Management System (``xosp.oms.events``): operators, accounts, orders.

Order events about an account (accepted, rejected, completed) are keyed by the trading account,
so they stay in order with the account's other events. The instructions to the exchange's
adapter (``OrderRouted``, ``OrderCancelRouted``) are keyed by instrument instead: the gateway
applies one instrument's instructions in the order the OMS routed them, which is the order the
exchange's book sees them in.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from schemas.accounts import VettingLimits
from schemas.event import Event
from schemas.provisioning import FlowId, Reason
from schemas.types import (
    Currency,
    ExchangeCode,
    InstrumentCode,
    Label,
    LoginId,
    Money,
    NonEmpty,
    OmsFeature,
    OperatorId,
    OrderId,
    OrderLifetime,
    OrderSide,
    OrderType,
    OwnerCode,
    PositiveDecimalString,
    TradingAccountId,
)

Quantity = Annotated[int, Field(ge=0, le=10**12)]


class AccountState(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class OmsOperatorRegistered(Event):
    """The OMS's Identity function knows the operator (step ``oms.operator``)."""

    event_type = "xosp.oms_operator.registered.v1"
    aggregate_field = "operator_id"

    flow_id: FlowId
    operator_id: OperatorId
    features: tuple[OmsFeature, ...]
    owners: tuple[OwnerCode, ...] = ()


class OmsAccountProvisioned(Event):
    """The OMS holds the account's metadata and vetting settings (step ``oms.account``)."""

    event_type = "xosp.oms_account.provisioned.v1"
    aggregate_field = "account_id"

    flow_id: FlowId
    account_id: TradingAccountId
    currency: Currency
    allowed_exchanges: tuple[ExchangeCode, ...] = ()
    vetting: VettingLimits = VettingLimits()


class OmsAccountStateChanged(Event):
    """The OMS accepts orders for the account, or no longer does (step ``oms.account_state``)."""

    event_type = "xosp.oms_account.state_changed.v1"
    aggregate_field = "account_id"

    flow_id: FlowId
    account_id: TradingAccountId
    state: AccountState
    reason: NonEmpty | None = None


class RejectionCode(StrEnum):
    """Why the OMS (or the exchange) refused an order, in the platform's ``Subject.Problem`` style."""

    ACCOUNT_UNKNOWN = "Account.Unknown"
    ACCOUNT_SUSPENDED = "Account.Suspended"
    ACCOUNT_CLOSED = "Account.Closed"
    LOGIN_NO_TRADE_RIGHT = "Login.NoTradeRight"
    EXCHANGE_NOT_ALLOWED = "Exchange.NotAllowed"
    EXCHANGE_NOT_ACTIVE = "Exchange.NotActive"
    INSTRUMENT_UNKNOWN = "Instrument.Unknown"
    #: Settled cash, less what open buys reserve, does not cover a buy.
    BALANCE_EXCEED = "Balance.Exceed"
    #: Holdings, less what open sells hold back, do not cover a sell.
    QUANTITY_INSUFFICIENT = "Quantity.Insufficient"
    #: A limit price more than 10 % away from the instrument's last price.
    PRICE_OUT_OF_RANGE = "Price.OutOfRange"
    VALUE_LIMIT = "Vetting.MaxOrderValue"
    QUANTITY_LIMIT = "Vetting.MaxOrderQuantity"
    #: An order type, side or lifetime this platform or exchange does not take.
    ORDER_UNSUPPORTED = "Order.Unsupported"
    ORDER_DUPLICATE = "Order.Duplicate"
    #: The exchange refused it after the OMS had accepted it.
    EXCHANGE_REJECTED = "Exchange.Rejected"


class OrderTerms(Event):
    """What an accepted order asks of the exchange: shared by ``OrderAccepted`` and ``OrderRouted``
    (a base without an event type of its own)."""

    order_id: OrderId
    account_id: TradingAccountId
    exchange: ExchangeCode
    instrument: InstrumentCode
    side: OrderSide
    order_type: OrderType
    quantity: Annotated[int, Field(ge=1, le=10**12)]
    limit_price: PositiveDecimalString | None = None
    #: For a market order: the worst price it may fill at (last price ± 10 %).
    protection_price: PositiveDecimalString | None = None
    lifetime: OrderLifetime
    expiry_date: dt.date | None = None


class OrderAccepted(OrderTerms):
    """The order passed vetting and is on its way to the exchange.

    ``reserved`` is the cash held back for a buy (quantity times the limit price, or times the
    protection price of a market order); it is not available to other orders until fills use it
    or the order ends.
    """

    event_type = "xosp.order.accepted.v1"
    aggregate_field = "account_id"

    login_id: LoginId
    reserved: Money | None = None


class OrderRejected(Event):
    event_type = "xosp.order.rejected.v1"
    aggregate_field = "account_id"

    order_id: OrderId
    account_id: TradingAccountId
    login_id: LoginId | None = None
    instrument: InstrumentCode | None = None
    code: RejectionCode
    reason: Reason


class OrderRouted(OrderTerms):
    """The instruction the OMS sends the exchange's adapter through the gateway (key: instrument)."""

    event_type = "xosp.order.routed.v1"
    aggregate_field = "instrument"

    adapter: Label
    currency: Currency
    settles_through_registry: bool


class OrderCancelRouted(Event):
    """A cancel of an open order, routed like the order itself (key: instrument)."""

    event_type = "xosp.order.cancel_routed.v1"
    aggregate_field = "instrument"

    order_id: OrderId
    account_id: TradingAccountId
    exchange: ExchangeCode
    adapter: Label
    instrument: InstrumentCode
    reason: NonEmpty | None = None


class OrderCancelRejected(Event):
    """A cancel the OMS did not route: the order is unknown, not this login's to cancel, or already done."""

    event_type = "xosp.order.cancel_rejected.v1"
    aggregate_field = "account_id"

    order_id: OrderId
    account_id: TradingAccountId
    login_id: LoginId
    reason: Reason


class OrderOutcome(StrEnum):
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"


class OrderCompleted(Event):
    """The order is over at the exchange: nothing of it is open, its reservation is released."""

    event_type = "xosp.order.completed.v1"
    aggregate_field = "account_id"

    order_id: OrderId
    account_id: TradingAccountId
    instrument: InstrumentCode
    outcome: OrderOutcome
    filled_quantity: Quantity
    #: Cash the fills cost (a buy) or brought (a sell), in the market's currency.
    filled_value: Money
    reason: NonEmpty | None = None
