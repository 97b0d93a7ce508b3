"""The OMS's handlers of ``xosp.exchanges`` and ``xosp.gateway.events`` (docs/exchanges.md): the
exchanges, their instruments and the adapter orders go to; whether an exchange takes orders and
its reference prices; and the execution reports that move an order's state and book its fills
into the positions, the final one completing the order and releasing what it still reserves. A
report the OMS cannot apply (an order it never routed, a report after the final one) is a fault
upstream and is dead-lettered; a fill reported twice is booked once.
"""

from __future__ import annotations

import datetime as dt

import structlog

from consumers.oms import vetting
from consumers.oms.orders import OUTCOMES, Order, report_problem, state_after
from consumers.oms.positions import book_fill
from consumers.oms.store import OmsUnit
from consumers.runtime import DomainError, MissingPrerequisite
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended, ExchangeUpdated, SymbolCreated
from schemas.gateway import ExecutionKind, ExecutionReported, OmsAdapterRegistered, OmsAdapterStopped
from schemas.money import money
from schemas.oms import (
    OrderCompleted,
)

log = structlog.get_logger("xbus.oms")


async def exchange_added(event: ExchangeAdded, unit: OmsUnit) -> None:
    await _refuse_markets_of_others(unit, event.code, [market.code for market in event.markets])
    await unit.store.add_exchange(event, unit.cause.time)


async def exchange_updated(event: ExchangeUpdated, unit: OmsUnit) -> None:
    if event.markets is not None:
        await _refuse_markets_of_others(unit, event.code, [market.code for market in event.markets])
    if not await unit.store.update_exchange(event, unit.cause.time):
        raise MissingPrerequisite(
            f"exchange {event.code} is unknown to the OMS (no ExchangeAdded for it was applied)",
            waits_for=event.code,
            needs="the exchange's ExchangeAdded",
            service="oms",
        )


async def symbol_created(event: SymbolCreated, unit: OmsUnit) -> None:
    """List the symbol as an instrument of its exchange, in the symbol's currency, so that orders
    on it are vetted like those on the exchange's other instruments (symbol-create.ps1 creates the
    symbol on the market). A later ``ExchangeUpdated`` with markets lists exactly its own symbols."""
    await _refuse_markets_of_others(unit, event.exchange, [event.market])
    if not await unit.store.add_instrument(event.exchange, event.instrument, event.market, event.symbol.currency):
        raise MissingPrerequisite(
            f"symbol {event.instrument} is created on exchange {event.exchange}, unknown to the OMS "
            "(no ExchangeAdded for it was applied)",
            waits_for=event.exchange,
            needs="the exchange's ExchangeAdded",
            service="oms",
        )


async def exchange_suspended(event: ExchangeSuspended, unit: OmsUnit) -> None:
    """New orders for the exchange are rejected with ``Xbus.Exchange.NotActive``; open ones stay open.

    A removed exchange stays removed (only a new ``ExchangeAdded`` lists it again): its suspension
    changes nothing here, and says so in the log (the OMS has no step in the flow).
    """
    left = await unit.store.set_exchange_state(
        event.code, vetting.ExchangeState.SUSPENDED, event.reason, unit.cause.time
    )
    if left is None:
        raise MissingPrerequisite(
            f"exchange {event.code} is unknown to the OMS (no ExchangeAdded for it was applied): cannot suspend it",
            waits_for=event.code,
            needs="the exchange's ExchangeAdded",
            service="oms",
        )
    if left is not vetting.ExchangeState.SUSPENDED:
        log.info("oms.exchange_suspension_ignored", exchange=event.code, state=str(left), reason=event.reason)


async def exchange_removed(event: ExchangeRemoved, unit: OmsUnit) -> None:
    """Like a suspension; an exchange the OMS never had is already as good as removed."""
    await unit.store.set_exchange_state(event.code, vetting.ExchangeState.REMOVED, event.reason, unit.cause.time)


async def _refuse_markets_of_others(unit: OmsUnit, code: str, markets: list[str]) -> None:
    """An instrument ``SYMBOL.MARKET`` must name one exchange: a market is listed by one exchange only."""
    taken = await unit.store.markets_of_others(code, markets)
    if taken:
        listed = ", ".join(f"{market} (by {exchange})" for market, exchange in sorted(taken.items()))
        raise DomainError(
            f"exchange {code} lists markets another exchange already lists: {listed}; give the market another "
            "code or remove it from the other exchange first, then redrive this event"
        )


async def adapter_registered(event: OmsAdapterRegistered, unit: OmsUnit) -> None:
    """The exchange takes orders; its reference prices are last prices where none is known yet."""
    await unit.store.register_adapter(event, unit.cause.time)


async def adapter_stopped(event: OmsAdapterStopped, unit: OmsUnit) -> None:
    await unit.store.stop_adapter(event, unit.cause.time)


async def execution_reported(event: ExecutionReported, unit: OmsUnit) -> None:
    """Move the order's state and book a fill; the final report completes the order."""
    await unit.lock(f"account:{event.account_id}")  # orders and cash of the account come on other topics
    at = unit.cause.time
    order = await unit.store.order(event.order_id)
    if event.kind is ExecutionKind.FILLED and await unit.store.fill_booked(event):
        return  # the same venue trade reported again: booked once, as the registry settles it once
    problem = report_problem(order, event)
    if problem is not None:
        raise DomainError(problem)
    assert order is not None
    if event.kind is ExecutionKind.FILLED:
        await _book_fill(unit, order, event, at)
    if not event.is_final:
        await unit.store.set_order_state(order.order_id, state_after(order.state, event), at)
        return
    await _complete(unit, event, at)


async def _book_fill(unit: OmsUnit, order: Order, report: ExecutionReported, at: dt.datetime) -> None:
    assert report.fill_price is not None  # a fill carries its price
    assert report.venue_trade_id is not None  # and its venue trade id
    assert order.price is not None  # set when it was accepted
    assert order.currency is not None
    booking = book_fill(order.side, report.fill_quantity, report.fill_price, order.price)
    await unit.store.record_fill(report, at)
    await unit.store.apply_fill(order.order_id, report.fill_quantity, booking, at)
    await unit.store.move_cash(order.account_id, order.currency, booked=booking.cash, reserved=-booking.cash_released)
    await unit.store.move_holding(
        order.account_id, order.instrument, quantity=booking.quantity, held_back=-booking.held_back_released
    )
    await unit.store.add_fill_price(order.instrument, report.fill_price, report.venue_trade_id, at)


async def _complete(unit: OmsUnit, report: ExecutionReported, at: dt.datetime) -> None:
    """Release what the order still reserves and report how it ended."""
    left = await unit.store.order(report.order_id)  # as its fills have left it
    assert left is not None
    assert left.currency is not None
    if left.reserved:
        await unit.store.move_cash(left.account_id, left.currency, reserved=-left.reserved)
    if left.held_back:
        await unit.store.move_holding(left.account_id, left.instrument, held_back=-left.held_back)
    ended = await unit.store.complete(left.order_id, OUTCOMES[report.kind], report.reason, at)
    unit.record(
        OrderCompleted(
            order_id=ended.order_id,
            account_id=ended.account_id,
            instrument=ended.instrument,
            outcome=OUTCOMES[report.kind],
            filled_quantity=ended.filled_quantity,
            filled_value=money(ended.filled_value, left.currency),
            reason=report.reason,
        )
    )
