"""An order as the OMS keeps it, and its life after vetting (docs/exchanges.md, "An order's life").

Pure: the states an order goes through on the exchange's reports, which reports make sense for
it, and whether a cancel may be routed. The SQL is in ``order_store``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from schemas.gateway import ExecutionKind, ExecutionReported, TradeType
from schemas.oms import OrderOutcome, RejectionCode, RejectionCodeV1, RequestStatus, request_status_after
from schemas.orders import OrderCancelRequested
from schemas.types import AccountRight, OrderLifetime, OrderSide, OrderType


class OrderState(StrEnum):
    #: Refused by vetting: it never reached the exchange.
    REJECTED = "rejected"
    #: Accepted and routed; the exchange has not reported on it yet.
    ROUTED = "routed"
    ACKNOWLEDGED = "acknowledged"
    PARTIALLY_FILLED = "partially_filled"
    #: Over at the exchange (see the outcome): nothing of it is open, nothing reserved.
    COMPLETED = "completed"


OPEN_STATES = frozenset({OrderState.ROUTED, OrderState.ACKNOWLEDGED, OrderState.PARTIALLY_FILLED})

OUTCOMES = {
    ExecutionKind.FILLED: OrderOutcome.FILLED,
    ExecutionKind.CANCELLED: OrderOutcome.CANCELLED,
    ExecutionKind.EXPIRED: OrderOutcome.EXPIRED,
    ExecutionKind.REJECTED: OrderOutcome.REJECTED,
}


@dataclass(frozen=True)
class Order:
    order_id: str
    account_id: str
    login_id: str
    instrument: str
    side: OrderSide
    order_type: OrderType
    quantity: int
    limit_price: Decimal | None
    lifetime: OrderLifetime
    expiry_date: dt.date | None
    state: OrderState
    #: Where an accepted order went and what it is paid in (None for a rejected one).
    exchange: str | None
    adapter: str | None
    currency: str | None
    #: The price it was valued at (its limit or its protection price), and the protection price.
    price: Decimal | None
    protection_price: Decimal | None
    #: Cash still reserved for it (a buy) and quantity still held back (a sell).
    reserved: Decimal
    held_back: int
    filled_quantity: int
    filled_value: Decimal
    outcome: OrderOutcome | None
    #: A rejected order's code; one rejected before the codes became Vetting.config's keeps its old one.
    rejection_code: RejectionCode | RejectionCodeV1 | None
    #: Why vetting rejected it, or what the exchange said when it ended.
    reason: str | None
    placed_at: dt.datetime
    changed_at: dt.datetime

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def open_quantity(self) -> int:
        return self.quantity - self.filled_quantity

    @property
    def request_status(self) -> RequestStatus:
        """Its request's status as the platform's OMS names it (docs/exchanges.md, "Request statuses")."""
        if self.state is OrderState.REJECTED:
            return RequestStatus.REJECTED
        if self.state is OrderState.ROUTED:
            return RequestStatus.SUBMITTED
        if self.outcome is not None:
            return request_status_after(self.outcome)
        return RequestStatus.COMPLETED


def state_after(current: OrderState, report: ExecutionReported) -> OrderState:
    """The order's state once ``report`` is applied; a late acknowledgement does not undo a fill."""
    if report.is_final:
        return OrderState.COMPLETED
    if report.kind is ExecutionKind.FILLED:
        return OrderState.PARTIALLY_FILLED
    return OrderState.ACKNOWLEDGED if current is OrderState.ROUTED else current


def report_problem(order: Order | None, report: ExecutionReported) -> str | None:
    """Why ``report`` cannot be applied to ``order`` (a fault upstream, for the dead-letter queue)."""
    if order is None or order.account_id != report.account_id or order.state is OrderState.REJECTED:
        return (
            f"execution report for order {report.order_id} of trading account {report.account_id}: the OMS routed "
            "no such order; check the gateway's adapter, then discard the report"
        )
    if not order.is_open:
        return (
            f"execution report ({report.kind}) for order {order.order_id}, which is already over ({order.outcome}); "
            "a report after the final one is a fault of the exchange's adapter: discard it"
        )
    if report.trade_type not in (None, TradeType.TRADE):
        return (
            f"trade {report.trade_type} of {report.venue_trade_id} for order {order.order_id}: the OMS books trade "
            "executions only and applies no trade corrections or cancellations yet; adjust the positions by hand, "
            "then discard the report"
        )
    if report.fill_quantity > order.open_quantity:
        return (
            f"fill of {report.fill_quantity} for order {order.order_id} is more than its open quantity "
            f"{order.open_quantity}; check the exchange's adapter, then discard or correct the report"
        )
    return None


def cancel_refusal(order: Order | None, request: OrderCancelRequested, rights: frozenset[AccountRight]) -> str | None:
    """Why the cancel is not routed (for the person who asked), or None to route it."""
    if order is None or order.account_id != request.account_id:
        return (
            f"trading account {request.account_id} has no order {request.order_id}; check the order id "
            "(an order that has just been placed may not be known yet)"
        )
    if AccountRight.TRADE not in rights:
        return (
            f"login {request.login_id} has no trade right on trading account {request.account_id}; "
            "an administrator of the account can grant it"
        )
    if order.state is OrderState.REJECTED:
        return f"order {order.order_id} was rejected ({order.rejection_code}): there is nothing to cancel"
    if not order.is_open:
        return f"order {order.order_id} is already over ({order.outcome}): there is nothing left to cancel"
    return None
