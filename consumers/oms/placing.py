"""The OMS's handlers of ``xosp.orders`` (docs/exchanges.md): ``OrderPlaced`` is vetted
(``vetting.vet``) and either rejected or accepted and routed, keyed by instrument, to the
exchange's adapter; ``OrderCancelRequested`` is routed or rejected. Orders, cancels, reports and
cash movements of one account come on different topics, applied concurrently: each takes the
account's lock, so vetting sees positions no other transaction is changing.
"""

from __future__ import annotations

from typing import Any

from consumers.oms import vetting
from consumers.oms.orders import cancel_refusal
from consumers.oms.store import OmsUnit
from schemas.money import money
from schemas.oms import (
    OrderAccepted,
    OrderCancelRejected,
    OrderCancelRouted,
    OrderRejected,
    OrderRouted,
)
from schemas.orders import OrderCancelRequested, OrderPlaced
from schemas.types import OrderSide


async def order_placed(event: OrderPlaced, unit: OmsUnit) -> None:
    """Vet the order; reject it, or reserve what it may cost and route it to the exchange's adapter."""
    await unit.lock(f"account:{event.account_id}")  # fills and cash of the account come on other topics
    snapshot = await _snapshot(unit, event)
    decision = vetting.vet(snapshot)
    at = unit.cause.time
    if isinstance(decision, vetting.Rejection):
        if not snapshot.order_id_taken:
            await unit.store.insert_rejected(event, decision, at)
        unit.record(
            OrderRejected(
                order_id=event.order_id,
                account_id=event.account_id,
                login_id=event.login_id,
                instrument=event.instrument,
                code=decision.code,
                rule=decision.rule,
                parameters=decision.parameters,
                reason=decision.reason,
            )
        )
        return
    instrument, exchange = snapshot.instrument, snapshot.exchange
    assert instrument is not None and exchange is not None  # vetting accepts only listed instruments
    await unit.store.insert_accepted(event, decision, instrument, exchange, at)
    if event.side is OrderSide.BUY:
        await unit.store.move_cash(event.account_id, instrument.currency, reserved=decision.reserved_cash)
    else:
        await unit.store.move_holding(event.account_id, instrument.code, held_back=decision.held_back)
    # what OrderAccepted and OrderRouted both carry (their base, OrderTerms)
    terms: dict[str, Any] = dict(
        order_id=event.order_id,
        account_id=event.account_id,
        exchange=exchange.code,
        instrument=instrument.code,
        side=event.side,
        order_type=event.order_type,
        quantity=event.quantity,
        limit_price=event.limit_price,
        protection_price=decision.protection_price,
        lifetime=event.lifetime,
        expiry_date=event.expiry_date,
    )
    reserved = money(decision.reserved_cash, instrument.currency) if event.side is OrderSide.BUY else None
    unit.record(OrderAccepted(**terms, login_id=event.login_id, reserved=reserved))
    unit.record(
        OrderRouted(
            **terms,
            adapter=exchange.adapter,
            currency=instrument.currency,
            settles_through_registry=exchange.settles_through_registry,
        )
    )


async def order_cancel_requested(event: OrderCancelRequested, unit: OmsUnit) -> None:
    """Route the cancel of an open order to the adapter the order went to, or say why not."""
    await unit.lock(f"account:{event.account_id}")  # the account's reports come on another topic
    order = await unit.store.order(event.order_id)
    rights = await unit.store.rights(event.account_id, event.login_id)
    refusal = cancel_refusal(order, event, rights)
    if refusal is not None:
        unit.record(
            OrderCancelRejected(
                order_id=event.order_id, account_id=event.account_id, login_id=event.login_id, reason=refusal
            )
        )
        return
    assert order is not None and order.exchange is not None and order.adapter is not None
    unit.record(
        OrderCancelRouted(
            order_id=order.order_id,
            account_id=order.account_id,
            exchange=order.exchange,
            adapter=order.adapter,
            instrument=order.instrument,
            reason=event.reason,
        )
    )


async def _snapshot(unit: OmsUnit, placed: OrderPlaced) -> vetting.Snapshot:
    """What vetting decides on, as the OMS knows it now."""
    listed = await unit.store.listing(placed.instrument)
    instrument, exchange = listed if listed is not None else (None, None)
    return vetting.Snapshot(
        order=placed,
        order_id_taken=await unit.store.order_id_taken(placed.order_id),
        account=await unit.store.vetting_account(placed.account_id),
        rights=await unit.store.rights(placed.account_id, placed.login_id),
        instrument=instrument,
        exchange=exchange,
        cash=await unit.store.cash(placed.account_id, instrument.currency) if instrument else None,
        holding=await unit.store.holding(placed.account_id, instrument.code) if instrument else None,
    )
