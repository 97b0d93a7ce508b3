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
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

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


class OmsCashMovementApplied(Event):
    """A deposit or withdrawal booked on the OMS's cash, in a deployment without the registry,
    where the OMS is the book of record (step ``oms.cash``; with the registry the step is
    ``registry.cash`` and the OMS books the registry's ``CashMovementApplied``)."""

    event_type = "xosp.oms_cash_movement.applied.v1"
    aggregate_field = "account_id"

    flow_id: FlowId
    account_id: TradingAccountId
    #: Positive for a deposit, negative for a withdrawal.
    delta: Money
    #: The account's booked cash (``Balance``) in that currency after the movement.
    balance: Money
    reference: NonEmpty


class RequestStatus(StrEnum):
    """The status of an order request, as the platform's OMS names it (plxtra/oms-api OMS2.md,
    ``ClientRequestState.Status``), with the codes and flags plxtra/xosp Config/Init/oms-init.ps1
    defines for XOSP (``Status Define XOSP <code> -Normal -Transition ...``).

    This OMS vets a request in the transaction that receives it and has no queues, so it records
    neither ``Pending`` nor ``Queued``; they are here because the platform's clients know them.
    docs/exchanges.md, "Request statuses", maps an order's life onto them.
    """

    PENDING = "Pending"
    QUEUED = "Queued"
    SUBMITTED = "Submitted"
    REJECTED = "Rejected"
    COMPLETED = "Completed"

    @property
    def is_normal(self) -> bool:
        """``IsNormal``: every status but ``Rejected``."""
        return self is not RequestStatus.REJECTED

    @property
    def is_transition(self) -> bool:
        """``IsTransition``: the request moves on from it by itself."""
        return self in (RequestStatus.PENDING, RequestStatus.SUBMITTED)

    @property
    def is_completed(self) -> bool:
        """``IsCompleted``: no other status follows."""
        return self in (RequestStatus.REJECTED, RequestStatus.COMPLETED)

    @property
    def can_cancel(self) -> bool:
        """``CanCancel`` (and ``CanAmend``): only a queued request may still be changed."""
        return self is RequestStatus.QUEUED


class RejectionCode(StrEnum):
    """Why the OMS refused an order.

    The codes of the rule set ``OMS.General`` of the platform's ``Config/Zenith/Vetting.config``
    (docs/exchanges.md, "Vetting"), spelled as its rules write them; and, beginning ``Xbus.``,
    those of the checks this project makes outside that file (before vetting: the order is new,
    the account and instrument known, the login may trade, the exchange is allowed and active, the
    order is one the platform takes and can price; after it: the account's own limits), so that
    none of ours can be mistaken for a code of the platform's.
    """

    #: ``OMS.Implicit``: the account is suspended or closed.
    ACCOUNT_INACTIVE = "Account.Inactive"
    #: ``OMS.FundingCheck``: a bid needs more than the trading balance (booked cash less what open buys reserve).
    BALANCE_EXCEED = "Balance.Exceed"
    #: ``OMS.HoldingCheck``: an ask needs more than the holding available (held less what open sells hold back).
    QUANTITY_INSUFFICIENT = "Quantity.Insufficient"
    #: ``OMS.Compliance``: the price is not above zero.
    ORDER_PRICE_INVALID = "OrderPrice.Invalid"
    #: ``OMS.Compliance``: a bid more than 10 % above the instrument's last price.
    ORDER_PRICE_TOO_FAR_ABOVE = "OrderPrice.TooFarAbove"
    #: ``OMS.Compliance``: an ask more than 10 % below the instrument's last price.
    ORDER_PRICE_TOO_FAR_BELOW = "OrderPrice.TooFarBelow"
    #: ``OMS.Limits``: value above 1,000,000, price above 200.00, quantity above 5,000,000.
    ORDER_VALUE_EXCEED = "OrderValue.Exceed"
    ORDER_PRICE_EXCEED = "OrderPrice.Exceed"
    ORDER_QUANTITY_EXCEED = "OrderQuantity.Exceed"
    ORDER_DUPLICATE = "Xbus.Order.Duplicate"
    ACCOUNT_UNKNOWN = "Xbus.Account.Unknown"
    LOGIN_NO_TRADE_RIGHT = "Xbus.Login.NoTradeRight"
    INSTRUMENT_UNKNOWN = "Xbus.Instrument.Unknown"
    EXCHANGE_NOT_ALLOWED = "Xbus.Exchange.NotAllowed"
    EXCHANGE_NOT_ACTIVE = "Xbus.Exchange.NotActive"
    #: An order type, side or lifetime this platform does not take.
    ORDER_UNSUPPORTED = "Xbus.Order.Unsupported"
    #: A market order with no protection price to be valued at (the instrument has no last price).
    ORDER_UNPRICED = "Xbus.Order.Unpriced"
    #: The account's own limits (``VettingLimits``), beyond Vetting.config's.
    ACCOUNT_MAX_ORDER_QUANTITY = "Xbus.AccountLimit.MaxOrderQuantity"
    ACCOUNT_MAX_ORDER_VALUE = "Xbus.AccountLimit.MaxOrderValue"
    #: The account's maximum order value is in another currency than the market's (no rates to compare).
    ACCOUNT_LIMIT_CURRENCY = "Xbus.AccountLimit.Currency"


class VettingRule(StrEnum):
    """The rules of Vetting.config's rule set ``OMS.General``, in the order the set runs them."""

    IMPLICIT = "OMS.Implicit"
    FUNDING_CHECK = "OMS.FundingCheck"
    HOLDING_CHECK = "OMS.HoldingCheck"
    COMPLIANCE = "OMS.Compliance"
    LIMITS = "OMS.Limits"


#: A value a rejection code carries, as Vetting.config's ``FAIL WITH [code, ...]`` states it.
RejectionParameter = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S+$")]


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
    #: Routed to the exchange, which has not answered yet.
    request_status: RequestStatus = RequestStatus.SUBMITTED


class OrderRejected(Event):
    """The OMS refused the order: nothing is reserved and nothing routed.

    ``rule`` is the rule of Vetting.config's ``OMS.General`` that failed and ``parameters`` what its
    ``FAIL WITH`` states beside the code (``Balance.Exceed`` with the trading balance,
    ``OrderPrice.TooFarAbove`` with ``10.0%``, ``OrderValue.Exceed`` with ``1000000``, ...). A check
    of this project's (an ``Xbus.`` code) has no rule; of those, the account's own limits carry
    the limit.
    """

    event_type = "xosp.order.rejected.v2"
    aggregate_field = "account_id"

    order_id: OrderId
    account_id: TradingAccountId
    login_id: LoginId | None = None
    instrument: InstrumentCode | None = None
    code: RejectionCode
    rule: VettingRule | None = None
    parameters: tuple[RejectionParameter, ...] = ()
    reason: Reason
    request_status: RequestStatus = RequestStatus.REJECTED


class OrderRouted(OrderTerms):
    """The instruction the OMS sends the exchange's adapter through the gateway (key: instrument)."""

    event_type = "xosp.order.routed.v1"
    aggregate_field = "instrument"

    adapter: Label
    currency: Currency
    #: Deprecated: the exchange's ``ExchangeAdded.settles_through_registry``, passed on to its
    #: execution reports and no longer read (the deployment decides: ``XBUS_REGISTRY``).
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


def request_status_after(outcome: OrderOutcome) -> RequestStatus:
    """The request's status once the order ends: ``Rejected`` if the exchange rejected it,
    ``Completed`` however else it ended (filled, cancelled or expired)."""
    return RequestStatus.REJECTED if outcome is OrderOutcome.REJECTED else RequestStatus.COMPLETED


class OrderCompleted(Event):
    """The order is over at the exchange: nothing of it is open, its reservation is released.

    ``request_status`` follows from ``outcome`` (``request_status_after``); one recorded before
    request statuses, without it, reads with the status its outcome gives.
    """

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
    request_status: RequestStatus = RequestStatus.COMPLETED

    @model_validator(mode="before")
    @classmethod
    def _status_of_an_older_record(cls, data: Any) -> Any:
        if isinstance(data, dict) and "request_status" not in data and "outcome" in data:
            return {**data, "request_status": request_status_after(OrderOutcome(data["outcome"]))}
        return data

    @model_validator(mode="after")
    def _status_follows_the_outcome(self) -> Self:
        if self.request_status is not request_status_after(self.outcome):
            raise ValueError(
                f"an order ended {self.outcome} leaves its request status {request_status_after(self.outcome)}, "
                f"not {self.request_status}"
            )
        return self


class RejectionCodeV1(StrEnum):
    """The codes of the retired ``xosp.order.rejected.v1``; orders the OMS stored rejected before
    ``RejectionCode`` replaced them keep theirs."""

    ACCOUNT_UNKNOWN = "Account.Unknown"
    ACCOUNT_SUSPENDED = "Account.Suspended"
    ACCOUNT_CLOSED = "Account.Closed"
    LOGIN_NO_TRADE_RIGHT = "Login.NoTradeRight"
    EXCHANGE_NOT_ALLOWED = "Exchange.NotAllowed"
    EXCHANGE_NOT_ACTIVE = "Exchange.NotActive"
    INSTRUMENT_UNKNOWN = "Instrument.Unknown"
    BALANCE_EXCEED = "Balance.Exceed"
    QUANTITY_INSUFFICIENT = "Quantity.Insufficient"
    PRICE_OUT_OF_RANGE = "Price.OutOfRange"
    VALUE_LIMIT = "Vetting.MaxOrderValue"
    QUANTITY_LIMIT = "Vetting.MaxOrderQuantity"
    ORDER_UNSUPPORTED = "Order.Unsupported"
    ORDER_DUPLICATE = "Order.Duplicate"
    EXCHANGE_REJECTED = "Exchange.Rejected"


class OrderRejectedV1(Event):
    """Retired, no longer emitted: replaced by ``OrderRejected`` (xosp.order.rejected.v2), whose codes
    are Vetting.config's (or, for this project's own checks, begin ``Xbus.``) and which names the
    rule that failed and the code's parameters.

    Kept registered, its fields unchanged, so that the records already on ``xosp.oms.events`` and
    in dead letters still replay and parse.
    """

    event_type = "xosp.order.rejected.v1"
    aggregate_field = "account_id"

    order_id: OrderId
    account_id: TradingAccountId
    login_id: LoginId | None = None
    instrument: InstrumentCode | None = None
    code: RejectionCodeV1
    reason: Reason
