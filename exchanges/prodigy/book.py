"""Prodigy's order book for one instrument: price-time priority matching, kept as JSON.

The book is a plain value: :meth:`Book.from_state` and :meth:`Book.to_state` convert it to and
from the JSON the gateway stores, and an instruction changes it only through what the
instruction says (no clock, no randomness), so the same instructions rebuild the same book.
Prices are compared as Decimals; each side is a list in priority order (best price first, then
arrival), which is also the order the state lists them in.

Orders of the platform carry their account and lifetime; the market maker's orders carry no
account and get no reports (see :mod:`exchanges.prodigy.market_maker`). The book keeps no
clock: a ``DAY`` order rests until :meth:`Book.end_of_day`, which the gateway calls once the
market has closed, as it hands the book an instruction.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from exchanges.plugins import ExecutionReport
from exchanges.prodigy.pricing import TICK, on_tick
from schemas.gateway import ExecutionKind
from schemas.oms import OrderRouted
from schemas.types import OrderLifetime, OrderSide, OrderType

#: Lifetimes that leave a limit order's remainder in the book: a DAY one until the market's close
#: (Book.end_of_day), a GOOD_TILL_CANCEL one until cancelled.
_RESTING_LIFETIMES = frozenset({OrderLifetime.DAY, OrderLifetime.GOOD_TILL_CANCEL})
_SUPPORTED_LIFETIMES = _RESTING_LIFETIMES | {OrderLifetime.IMMEDIATE_OR_CANCEL, OrderLifetime.FILL_OR_KILL}
#: MARKET_TO_LIMIT is taken as MARKET, as the OMS takes it.
_MARKET_TYPES = frozenset({OrderType.MARKET, OrderType.MARKET_TO_LIMIT})


@dataclass(slots=True)
class RestingOrder:
    #: None for the market maker's orders.
    order_id: str | None
    account_id: str | None
    price: Decimal
    quantity: int
    filled: int
    #: Time priority: the book's arrival counter when the order was placed.
    arrival: int
    #: DAY or GOOD_TILL_CANCEL (the market maker's quotes: GOOD_TILL_CANCEL, as it requotes them itself).
    lifetime: OrderLifetime = OrderLifetime.GOOD_TILL_CANCEL

    @property
    def leaves(self) -> int:
        return self.quantity - self.filled

    @property
    def is_market_maker(self) -> bool:
        return self.account_id is None

    def to_state(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "account_id": self.account_id,
            "price": format(self.price, "f"),
            "quantity": self.quantity,
            "filled": self.filled,
            "arrival": self.arrival,
            "lifetime": str(self.lifetime),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RestingOrder:
        return cls(
            order_id=state["order_id"],
            account_id=state["account_id"],
            price=Decimal(state["price"]),
            quantity=state["quantity"],
            filled=state["filled"],
            arrival=state["arrival"],
            # books stored before Prodigy kept lifetimes rested every order until cancelled
            lifetime=OrderLifetime(state.get("lifetime", OrderLifetime.GOOD_TILL_CANCEL)),
        )


def _priority(side: OrderSide) -> Callable[[RestingOrder], tuple[Decimal, int]]:
    """Sort key of a side: best price first (highest bid, lowest ask), then earliest arrival."""
    if side is OrderSide.BUY:
        return lambda order: (-order.price, order.arrival)
    return lambda order: (order.price, order.arrival)


class Book:
    def __init__(
        self,
        instrument: str,
        reference_price: Decimal,
        *,
        last_price: Decimal | None = None,
        trades: int = 0,
        arrivals: int = 0,
        bids: list[RestingOrder] | None = None,
        asks: list[RestingOrder] | None = None,
    ) -> None:
        self.instrument = instrument
        self.reference_price = reference_price
        self.last_price = last_price
        #: Trades made so far: numbers the next venue trade id.
        self.trades = trades
        self.arrivals = arrivals
        self.bids = bids or []
        self.asks = asks or []

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Book:
        last_price = state["last_price"]
        return cls(
            state["instrument"],
            Decimal(state["reference_price"]),
            last_price=None if last_price is None else Decimal(last_price),
            trades=state["trades"],
            arrivals=state["arrivals"],
            bids=[RestingOrder.from_state(order) for order in state["bids"]],
            asks=[RestingOrder.from_state(order) for order in state["asks"]],
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "instrument": self.instrument,
            "reference_price": format(self.reference_price, "f"),
            "last_price": None if self.last_price is None else format(self.last_price, "f"),
            "trades": self.trades,
            "arrivals": self.arrivals,
            "bids": [order.to_state() for order in self.bids],
            "asks": [order.to_state() for order in self.asks],
        }

    @property
    def best_bid(self) -> Decimal | None:
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return self.asks[0].price if self.asks else None

    def side(self, side: OrderSide) -> list[RestingOrder]:
        return self.bids if side is OrderSide.BUY else self.asks

    def resting(self) -> Iterator[tuple[OrderSide, RestingOrder]]:
        for side in (OrderSide.BUY, OrderSide.SELL):
            for order in self.side(side):
                yield side, order

    def rest(
        self,
        side: OrderSide,
        order_id: str | None,
        account_id: str | None,
        price: Decimal,
        quantity: int,
        filled: int = 0,
        *,
        lifetime: OrderLifetime = OrderLifetime.GOOD_TILL_CANCEL,
    ) -> None:
        """Put an order in the book behind every order already at its price."""
        self.arrivals += 1
        order = RestingOrder(order_id, account_id, price, quantity, filled, arrival=self.arrivals, lifetime=lifetime)
        bisect.insort(self.side(side), order, key=_priority(side))

    def withdraw_market_maker(self) -> None:
        self.bids = [order for order in self.bids if not order.is_market_maker]
        self.asks = [order for order in self.asks if not order.is_market_maker]

    def submit(self, order: OrderRouted) -> list[ExecutionReport]:
        """Match a new order; its reports first, with the resting platform orders' fills in between."""
        refusal = self._refusal(order)
        if refusal is not None:
            return [_report(order, ExecutionKind.REJECTED, 0, 0, reason=refusal)]
        reports = [_report(order, ExecutionKind.ACKNOWLEDGED, 0, order.quantity)]
        is_market = order.order_type in _MARKET_TYPES
        bound = order.protection_price if is_market else order.limit_price
        assert bound is not None  # _refusal turned away orders without one
        if order.lifetime is OrderLifetime.FILL_OR_KILL:
            available = self._available(order.side, bound)
            if available < order.quantity:
                reason = f"fill or kill: only {available} of {order.quantity} available at {bound} or better"
                return [*reports, _report(order, ExecutionKind.CANCELLED, 0, 0, reason=reason)]
        filled = self._match(order, bound, reports)
        unfilled = order.quantity - filled
        if not unfilled:
            return reports
        if not is_market and order.lifetime in _RESTING_LIFETIMES:
            self.rest(
                order.side, order.order_id, order.account_id, bound, order.quantity, filled, lifetime=order.lifetime
            )
            return reports
        if is_market:
            reason = f"market order: {unfilled} left unfilled within its protection price {bound}"
        else:
            reason = f"immediate or cancel: {unfilled} left unfilled at {bound} or better"
        return [*reports, _report(order, ExecutionKind.CANCELLED, filled, 0, reason=reason)]

    def cancel(self, order_id: str, account_id: str, reason: str | None) -> list[ExecutionReport]:
        """Take an account's resting order out; nothing to report when it is not resting."""
        for side, resting in self.resting():
            if resting.order_id == order_id and resting.account_id == account_id:
                self.side(side).remove(resting)
                return [_ended(side, resting, ExecutionKind.CANCELLED, reason or "cancelled on request")]
        return []

    def end_of_day(self) -> list[ExecutionReport]:
        """The market has closed: take out every DAY order, reported EXPIRED with what it filled,
        bids then asks in priority order; GOOD_TILL_CANCEL orders and the market maker's stay."""
        expired = [(side, resting) for side, resting in self.resting() if resting.lifetime is OrderLifetime.DAY]
        for side, resting in expired:
            self.side(side).remove(resting)
        return [
            _ended(
                side,
                resting,
                ExecutionKind.EXPIRED,
                f"day order: the market closed with {resting.leaves} of {resting.quantity} unfilled",
            )
            for side, resting in expired
        ]

    def _refusal(self, order: OrderRouted) -> str | None:
        if order.side is OrderSide.SHORTSELL:
            return "side SHORTSELL is not supported by Prodigy: sell holdings with SELL"
        if order.order_type not in _MARKET_TYPES and order.order_type is not OrderType.LIMIT:
            return f"order type {order.order_type} is not supported by Prodigy: use LIMIT or MARKET"
        if order.lifetime not in _SUPPORTED_LIFETIMES:
            return (
                f"lifetime {order.lifetime} is not supported by Prodigy: "
                "use DAY, GOOD_TILL_CANCEL, IMMEDIATE_OR_CANCEL or FILL_OR_KILL"
            )
        if order.order_type in _MARKET_TYPES:
            if order.protection_price is None:
                return "a market order needs a protection price, the worst price it may fill at"
        elif order.limit_price is None:
            return "a LIMIT order needs a limit price"
        elif not on_tick(order.limit_price):
            return f"limit price {order.limit_price} is not a multiple of the tick size {TICK}"
        if any(resting.order_id == order.order_id for _, resting in self.resting()):
            return f"order id {order.order_id} is already resting in the book; use a new order id"
        return None

    def _available(self, side: OrderSide, bound: Decimal) -> int:
        crosses = _crosses(side, bound)
        return sum(resting.leaves for resting in self.side(_other(side)) if crosses(resting))

    def _match(self, order: OrderRouted, bound: Decimal, reports: list[ExecutionReport]) -> int:
        """Trade ``order`` with the other side, best first, while it crosses; return what it filled."""
        opposite = self.side(_other(order.side))
        crosses = _crosses(order.side, bound)
        filled = 0
        while filled < order.quantity and opposite and crosses(opposite[0]):
            resting = opposite[0]
            quantity = min(order.quantity - filled, resting.leaves)
            filled += quantity
            resting.filled += quantity
            self.trades += 1
            self.last_price = resting.price
            trade_id = f"{self.instrument}-T{self.trades}"
            reports.append(
                _report(
                    order,
                    ExecutionKind.FILLED,
                    filled,
                    order.quantity - filled,
                    fill=(quantity, resting.price, trade_id),
                )
            )
            if not resting.is_market_maker:
                reports.append(_resting_fill(resting, order.side, quantity, trade_id))
            if not resting.leaves:
                opposite.pop(0)
        return filled


def _other(side: OrderSide) -> OrderSide:
    return OrderSide.SELL if side is OrderSide.BUY else OrderSide.BUY


def _crosses(side: OrderSide, bound: Decimal) -> Callable[[RestingOrder], bool]:
    """Whether a resting order of the other side trades with an order of ``side`` bounded by ``bound``."""
    if side is OrderSide.BUY:
        return lambda resting: resting.price <= bound
    return lambda resting: resting.price >= bound


def _report(
    order: OrderRouted,
    kind: ExecutionKind,
    cumulative: int,
    leaves: int,
    *,
    fill: tuple[int, Decimal, str] | None = None,
    reason: str | None = None,
) -> ExecutionReport:
    quantity, price, trade_id = fill if fill is not None else (0, None, None)
    return ExecutionReport(
        order_id=order.order_id,
        account_id=order.account_id,
        side=order.side,
        kind=kind,
        cumulative_quantity=cumulative,
        leaves_quantity=leaves,
        fill_quantity=quantity,
        fill_price=price,
        venue_trade_id=trade_id,
        reason=reason,
    )


def _ended(side: OrderSide, resting: RestingOrder, kind: ExecutionKind, reason: str) -> ExecutionReport:
    """The last report of a platform order taken out of the book with what it had filled."""
    assert resting.order_id is not None and resting.account_id is not None  # a platform order
    return ExecutionReport(
        order_id=resting.order_id,
        account_id=resting.account_id,
        side=side,
        kind=kind,
        cumulative_quantity=resting.filled,
        leaves_quantity=0,
        reason=reason,
    )


def _resting_fill(resting: RestingOrder, aggressor: OrderSide, quantity: int, trade_id: str) -> ExecutionReport:
    assert resting.order_id is not None and resting.account_id is not None  # a platform order
    return ExecutionReport(
        order_id=resting.order_id,
        account_id=resting.account_id,
        side=_other(aggressor),
        kind=ExecutionKind.FILLED,
        cumulative_quantity=resting.filled,
        leaves_quantity=resting.leaves,
        fill_quantity=quantity,
        fill_price=resting.price,
        venue_trade_id=trade_id,
    )
