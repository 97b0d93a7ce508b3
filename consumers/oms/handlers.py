"""Handlers of the OMS: one function per event type it reads.

Provisioning (docs/provisioning.md): operators from ``xosp.operators``, accounts from
``xosp.accounts``, the registry's closures from ``xosp.registry.events`` and failed openings from
``xosp.provisioning.events``. Steps: ``oms.operator`` when ``oms`` is among an operator's systems,
``oms.account`` of an opening, ``oms.account_state`` of a suspension and of a closing. The OMS
closes an account only once the registry has (``RegistryAccountStateChanged`` closed, with that
event's flow id), never on ``TradingAccountClosed``: an account the registry refuses to close
stays open. The registry's events come on another topic than the opening, so a closure of an
account not seen yet is kept and applied when the opening arrives, never dropped.

Orders (docs/exchanges.md): what vetting needs comes from ``xosp.exchanges`` (exchanges, their
instruments and the adapter orders go to), the gateway's ``OmsAdapterRegistered`` /
``OmsAdapterStopped`` (whether the exchange takes orders; reference prices), Resource
Authorisation's ``AccountAccessGranted`` / ``AccessRevoked`` / ``PermissionsGranted`` (logins'
rights per account, and whether the login is disabled) and the registry's ``CashMovementApplied``
(booked cash). ``OrderPlaced`` is vetted (``vetting.vet``) and either rejected or accepted and
routed, keyed by instrument, to the exchange's adapter; ``OrderCancelRequested`` is routed or
rejected; each ``ExecutionReported`` moves the order's state and books its fills into the
positions, and the final one completes the order and releases what it still reserves. Orders,
cancels, reports and cash movements of one account come on different topics, applied
concurrently: each takes the account's lock, so vetting sees positions no other transaction is
changing. A report the OMS cannot apply (an order it never routed, a report after the final one)
is a fault upstream and is dead-lettered; a fill reported twice is booked once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from consumers.oms import exchange_store, order_store, store, vetting
from consumers.oms.orders import OUTCOMES, Order, cancel_refusal, report_problem, state_after
from consumers.oms.positions import book_fill
from consumers.oms.store import ClosureCause
from consumers.runtime import DomainError, MissingPrerequisite, UnitOfWork
from schemas.accounts import TradingAccountOpened, TradingAccountSuspended, TradingAccountUpdated
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended, ExchangeUpdated, Market
from schemas.gateway import ExecutionKind, ExecutionReported, OmsAdapterRegistered, OmsAdapterStopped
from schemas.money import money
from schemas.oms import (
    AccountState,
    OmsAccountProvisioned,
    OmsAccountStateChanged,
    OmsOperatorRegistered,
    OrderAccepted,
    OrderCancelRejected,
    OrderCancelRouted,
    OrderCompleted,
    OrderRejected,
    OrderRouted,
)
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.orders import OrderCancelRequested, OrderPlaced
from schemas.provisioning import FlowKind, ProvisioningFailed
from schemas.registry import CashMovementApplied, RegistryAccountStateChanged
from schemas.types import OperatorSystem, OrderSide

STEP_OPERATOR = "oms.operator"
STEP_ACCOUNT = "oms.account"
STEP_ACCOUNT_STATE = "oms.account_state"
#: OmsAccountStateChanged.reason is a NonEmpty string of at most this many characters.
MAX_REASON = 200


async def operator_registered(event: OperatorRegistered, unit: UnitOfWork) -> None:
    if OperatorSystem.OMS not in event.systems:
        return  # an operator of other systems only: no OMS step in its flow
    await store.register_operator(unit, event, unit.cause.time)
    unit.record(
        OmsOperatorRegistered(
            flow_id=unit.flow_id, operator_id=event.operator_id, features=event.oms_features, owners=event.owners
        )
    )


async def operator_deregistered(event: OperatorDeregistered, unit: UnitOfWork) -> None:
    await store.deregister_operator(unit, event.operator_id, event.reason, unit.cause.time)


async def account_opened(event: TradingAccountOpened, unit: UnitOfWork) -> None:
    await unit.lock(f"account:{event.account_id}")  # the same account may come from another topic at once
    existing = await store.standing(unit, event.account_id)
    if existing is not None:
        unit.step_failed(
            unit.flow_id,
            STEP_ACCOUNT,
            f"trading account {event.account_id} already exists in the OMS ({existing.state}, opened by flow "
            f"{existing.opened_by_flow}); account ids are not reused: open it under a new id",
        )
        return
    await store.open_account(unit, event, unit.flow_id, unit.cause.time)
    unit.record(
        OmsAccountProvisioned(
            flow_id=unit.flow_id,
            account_id=event.account_id,
            currency=event.default_currency,
            allowed_exchanges=event.allowed_exchanges,
            vetting=event.vetting,
        )
    )
    for pending in await store.take_pending_closures(unit, event.account_id):
        # A failed flow's compensation concerns this account only if that flow opened it.
        if pending.cause is ClosureCause.REGISTRY_CLOSED or pending.flow_id == unit.flow_id:
            await _close(unit, event.account_id, pending.flow_id, pending.reason)


async def account_updated(event: TradingAccountUpdated, unit: UnitOfWork) -> None:
    if not await store.update_account(unit, event, unit.cause.time):
        raise MissingPrerequisite(
            f"trading account {event.account_id} is unknown to the OMS (its opening was not applied here)",
            waits_for=event.account_id,
            needs="the account's TradingAccountOpened",
            service="oms",
        )


async def account_suspended(event: TradingAccountSuspended, unit: UnitOfWork) -> None:
    standing = await store.standing(unit, event.account_id)
    if standing is None or standing.state is AccountState.CLOSED:
        what = "unknown to the OMS" if standing is None else "closed in the OMS"
        unit.step_failed(
            unit.flow_id, STEP_ACCOUNT_STATE, f"trading account {event.account_id} is {what}: cannot suspend it"
        )
        return
    if await store.set_state(
        unit, event.account_id, AccountState.SUSPENDED, unit.flow_id, event.reason, unit.cause.time
    ):
        _state_changed(unit, event.account_id, AccountState.SUSPENDED, unit.flow_id, event.reason)


async def registry_account_state_changed(event: RegistryAccountStateChanged, unit: UnitOfWork) -> None:
    """The registry closed the account (its close flow, or its compensation of a failed opening)."""
    await unit.lock(f"account:{event.account_id}")  # the same account may come from another topic at once
    if event.state is not AccountState.CLOSED:
        return  # the OMS suspends on TradingAccountSuspended itself
    if await store.standing(unit, event.account_id) is None:
        await store.keep_pending_closure(
            unit, event.account_id, event.flow_id, ClosureCause.REGISTRY_CLOSED, event.reason, unit.cause.time
        )
        unit.step_waiting(
            event.flow_id,
            STEP_ACCOUNT_STATE,
            f"trading account {event.account_id} is not opened in the OMS yet; it is closed when it is",
            waiting_for=(f"account:{event.account_id}",),
        )
        return
    await _close(unit, event.account_id, event.flow_id, event.reason)


async def provisioning_failed(event: ProvisioningFailed, unit: UnitOfWork) -> None:
    """Compensation: an account opened by a flow that failed elsewhere is closed here too."""
    await unit.lock(f"account:{event.entity_id}")  # the same account may come from another topic at once
    if event.kind is not FlowKind.ACCOUNT or event.service == unit.service:
        return  # not an account flow, or the OMS refused its own part: nothing of it to undo
    reason = _fit(f"opening failed: {event.service} refused {event.step}: {event.reason}")
    standing = await store.standing(unit, event.entity_id)
    if standing is None:
        await store.keep_pending_closure(
            unit, event.entity_id, event.flow_id, ClosureCause.OPENING_FAILED, reason, unit.cause.time
        )
    elif standing.opened_by_flow == event.flow_id:
        await _close(unit, event.entity_id, event.flow_id, reason)


async def _close(unit: UnitOfWork, account_id: str, flow_id: str, reason: str | None) -> None:
    """Close the account for ``flow_id`` and report it, once per flow."""
    if await store.set_state(unit, account_id, AccountState.CLOSED, flow_id, reason, unit.cause.time):
        _state_changed(unit, account_id, AccountState.CLOSED, flow_id, reason)


def _state_changed(unit: UnitOfWork, account_id: str, state: AccountState, flow_id: str, reason: str | None) -> None:
    unit.record(OmsAccountStateChanged(flow_id=flow_id, account_id=account_id, state=state, reason=reason))


def _fit(reason: str) -> str:
    """A reason cut to what OmsAccountStateChanged carries; the full one stays in ProvisioningFailed."""
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


# --- xosp.exchanges -----------------------------------------------------------------------------


async def exchange_added(event: ExchangeAdded, unit: UnitOfWork) -> None:
    await _refuse_markets_of_others(unit, event.code, event.markets)
    await exchange_store.add_exchange(unit, event, unit.cause.time)


async def exchange_updated(event: ExchangeUpdated, unit: UnitOfWork) -> None:
    if event.markets is not None:
        await _refuse_markets_of_others(unit, event.code, event.markets)
    if not await exchange_store.update_exchange(unit, event, unit.cause.time):
        raise MissingPrerequisite(
            f"exchange {event.code} is unknown to the OMS (no ExchangeAdded for it was applied)",
            waits_for=event.code,
            needs="the exchange's ExchangeAdded",
            service="oms",
        )


async def exchange_suspended(event: ExchangeSuspended, unit: UnitOfWork) -> None:
    """New orders for the exchange are rejected with ``Exchange.NotActive``; open ones stay open."""
    if not await exchange_store.set_state(
        unit, event.code, vetting.ExchangeState.SUSPENDED, event.reason, unit.cause.time
    ):
        raise MissingPrerequisite(
            f"exchange {event.code} is unknown to the OMS (no ExchangeAdded for it was applied): cannot suspend it",
            waits_for=event.code,
            needs="the exchange's ExchangeAdded",
            service="oms",
        )


async def exchange_removed(event: ExchangeRemoved, unit: UnitOfWork) -> None:
    """Like a suspension; an exchange the OMS never had is already as good as removed."""
    await exchange_store.set_state(unit, event.code, vetting.ExchangeState.REMOVED, event.reason, unit.cause.time)


async def _refuse_markets_of_others(unit: UnitOfWork, code: str, markets: tuple[Market, ...]) -> None:
    """An instrument ``SYMBOL.MARKET`` must name one exchange: a market is listed by one exchange only."""
    taken = await exchange_store.markets_of_others(unit, code, markets)
    if taken:
        listed = ", ".join(f"{market} (by {exchange})" for market, exchange in sorted(taken.items()))
        raise DomainError(
            f"exchange {code} lists markets another exchange already lists: {listed}; give the market another "
            "code or remove it from the other exchange first, then redrive this event"
        )


# --- xosp.gateway.events ------------------------------------------------------------------------


async def adapter_registered(event: OmsAdapterRegistered, unit: UnitOfWork) -> None:
    """The exchange takes orders; its reference prices are last prices where none is known yet."""
    await exchange_store.register_adapter(unit, event, unit.cause.time)


async def adapter_stopped(event: OmsAdapterStopped, unit: UnitOfWork) -> None:
    await exchange_store.stop_adapter(unit, event, unit.cause.time)


async def execution_reported(event: ExecutionReported, unit: UnitOfWork) -> None:
    """Move the order's state and book a fill; the final report completes the order."""
    await unit.lock(f"account:{event.account_id}")  # orders and cash of the account come on other topics
    at = unit.cause.time
    order = await order_store.order(unit, event.order_id)
    if event.kind is ExecutionKind.FILLED and await order_store.fill_booked(unit, event):
        return  # the same venue trade reported again: booked once, as the registry settles it once
    problem = report_problem(order, event)
    if problem is not None:
        raise DomainError(problem)
    assert order is not None
    if event.kind is ExecutionKind.FILLED:
        await _book_fill(unit, order, event, at)
    if not event.is_final:
        await order_store.set_state(unit, order.order_id, state_after(order.state, event), at)
        return
    await _complete(unit, event, at)


async def _book_fill(unit: UnitOfWork, order: Order, report: ExecutionReported, at: dt.datetime) -> None:
    assert report.fill_price is not None and report.venue_trade_id is not None  # a fill carries both
    assert order.price is not None and order.currency is not None  # set when it was accepted
    booking = book_fill(order.side, report.fill_quantity, report.fill_price, order.price)
    await order_store.record_fill(unit, report, at)
    await order_store.apply_fill(unit, order.order_id, report.fill_quantity, booking, at)
    await order_store.move_cash(
        unit, order.account_id, order.currency, booked=booking.cash, reserved=-booking.cash_released
    )
    await order_store.move_holding(
        unit, order.account_id, order.instrument, quantity=booking.quantity, held_back=-booking.held_back_released
    )
    await exchange_store.add_fill_price(unit, order.instrument, report.fill_price, report.venue_trade_id, at)


async def _complete(unit: UnitOfWork, report: ExecutionReported, at: dt.datetime) -> None:
    """Release what the order still reserves and report how it ended."""
    left = await order_store.order(unit, report.order_id)  # as its fills have left it
    assert left is not None and left.currency is not None
    if left.reserved:
        await order_store.move_cash(unit, left.account_id, left.currency, reserved=-left.reserved)
    if left.held_back:
        await order_store.move_holding(unit, left.account_id, left.instrument, held_back=-left.held_back)
    ended = await order_store.complete(unit, left.order_id, OUTCOMES[report.kind], report.reason, at)
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


# --- xosp.authorisation.events ------------------------------------------------------------------
#
# Rights in force = granted (the account's partition: grants, unlinks, closes, in their order) and
# the login not disabled (the login's partition: its disables and enables, in theirs). The two
# partitions are read in no order between them, so neither handler looks at the other's table:
# the end state is the same whichever was read first (docs/exchanges.md, "Trade rights").


async def account_access_granted(event: AccountAccessGranted, unit: UnitOfWork) -> None:
    """Logins' rights on the account, recorded; a disabled login's are not in force until it is enabled."""
    await store.grant_rights(unit, event.account_id, event.logins, event.flow_id)


async def access_revoked(event: AccessRevoked, unit: UnitOfWork) -> None:
    """A disabled or deleted login (it is disabled here), an unlinked login or a closed account
    (the rights are gone)."""
    await store.revoke_rights(unit, event)


async def permissions_granted(event: PermissionsGranted, unit: UnitOfWork) -> None:
    """A login active in Resource Authorisation is enabled here: its granted rights come into force.

    Authorisation also reports a disabled login's role or market update with ``PermissionsGranted``
    (``login_active`` false): such an event must not enable it. Events written before
    ``login_active`` existed carry None; for them, a login with permissions is active (a disabled
    login's are always none), so one active with none at all is enabled by the next event that
    names one (docs/exchanges.md, "Trade rights").
    """
    active = bool(event.permissions) if event.login_active is None else event.login_active
    if active:
        await store.enable_login(unit, event.login_id)


# --- xosp.registry.events -----------------------------------------------------------------------


async def cash_movement_applied(event: CashMovementApplied, unit: UnitOfWork) -> None:
    """Book the registry's deposit or withdrawal: its ``delta``, not its ``balance``.

    The OMS's booked cash is the registry's movements plus the fills the OMS books itself from
    ``ExecutionReported``. The registry's balance counts its own settlements of those fills,
    which the OMS may have booked already or not yet (other topics, no order between them), and
    none of the fills of an exchange that does not settle through the registry. Setting booked
    cash to that balance would count such fills twice or lose them; adding the delta cannot.
    """
    await unit.lock(f"account:{event.account_id}")  # orders and fills of the account come on other topics
    await order_store.move_cash(unit, event.account_id, event.delta.currency, booked=event.delta.amount)


# --- xosp.orders --------------------------------------------------------------------------------


async def order_placed(event: OrderPlaced, unit: UnitOfWork) -> None:
    """Vet the order; reject it, or reserve what it may cost and route it to the exchange's adapter."""
    await unit.lock(f"account:{event.account_id}")  # fills and cash of the account come on other topics
    snapshot = await _snapshot(unit, event)
    decision = vetting.vet(snapshot)
    at = unit.cause.time
    if isinstance(decision, vetting.Rejection):
        if not snapshot.order_id_taken:
            await order_store.insert_rejected(unit, event, decision, at)
        unit.record(
            OrderRejected(
                order_id=event.order_id,
                account_id=event.account_id,
                login_id=event.login_id,
                instrument=event.instrument,
                code=decision.code,
                reason=decision.reason,
            )
        )
        return
    instrument, exchange = snapshot.instrument, snapshot.exchange
    assert instrument is not None and exchange is not None  # vetting accepts only listed instruments
    await order_store.insert_accepted(unit, event, decision, instrument, exchange, at)
    if event.side is OrderSide.BUY:
        await order_store.move_cash(unit, event.account_id, instrument.currency, reserved=decision.reserved_cash)
    else:
        await order_store.move_holding(unit, event.account_id, instrument.code, held_back=decision.held_back)
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


async def order_cancel_requested(event: OrderCancelRequested, unit: UnitOfWork) -> None:
    """Route the cancel of an open order to the adapter the order went to, or say why not."""
    await unit.lock(f"account:{event.account_id}")  # the account's reports come on another topic
    order = await order_store.order(unit, event.order_id)
    rights = await store.rights(unit, event.account_id, event.login_id)
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


async def _snapshot(unit: UnitOfWork, placed: OrderPlaced) -> vetting.Snapshot:
    """What vetting decides on, as the OMS knows it now."""
    listed = await exchange_store.listing(unit, placed.instrument)
    instrument, exchange = listed if listed is not None else (None, None)
    return vetting.Snapshot(
        order=placed,
        order_id_taken=await order_store.order_id_taken(unit, placed.order_id),
        account=await store.vetting_account(unit, placed.account_id),
        rights=await store.rights(unit, placed.account_id, placed.login_id),
        instrument=instrument,
        exchange=exchange,
        cash=await order_store.cash(unit, placed.account_id, instrument.currency) if instrument else None,
        holding=await order_store.holding(unit, placed.account_id, instrument.code) if instrument else None,
    )
