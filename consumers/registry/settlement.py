"""The registry's handlers of ``xosp.exchanges`` and ``xosp.gateway.events``: the exchanges it
settles, and the booking of their fills (cash, holding and the settlement
ledger, in one transaction). Fills are facts, not requests: they are booked, or, when they
cannot be, dead-lettered for a person (:func:`execution_reported` says which and why). The
arithmetic is in ``ledger.py``.
"""

from __future__ import annotations

import structlog

from consumers.registry import store
from consumers.registry.ledger import Unbookable, settle
from consumers.registry.store import LedgerUnit
from consumers.runtime import DomainError, MissingPrerequisite
from schemas.exchanges import ExchangeAdded
from schemas.gateway import ExecutionKind, ExecutionReported
from schemas.money import money, show
from schemas.oms import AccountState
from schemas.registry import (
    RegistrySettlementEnabled,
    SettlementApplied,
)

log = structlog.get_logger("xbus.registry")


async def exchange_added(event: ExchangeAdded, unit: LedgerUnit) -> None:
    """Settle the exchange's fills here, and say so (step ``registry.settlement``).

    A deployment that runs the registry settles every exchange through it (``XBUS_REGISTRY``,
    docs/operations.md): the registry is its one book of cash and holdings, which the OMS mirrors.
    The per-exchange ``settles_through_registry`` of older events is read and ignored; an exchange
    that did not settle here let the two books drift apart (a fill the OMS booked and the registry
    did not, and then withdrawals and closings checked against the registry's alone).
    """
    await unit.store.put_exchange(event.code, unit.flow_id, unit.cause.time)
    unit.record(RegistrySettlementEnabled(flow_id=unit.flow_id, exchange=event.code))


async def execution_reported(event: ExecutionReported, unit: LedgerUnit) -> None:
    """Book a fill: cash, holding and the settlement ledger, in this one transaction.

    Only fills move anything, whatever exchange made them, and whatever an older report's
    ``settles_through_registry`` says (every exchange settles here: :func:`exchange_added`), so
    the registry needs no order between ``xosp.exchanges`` and ``xosp.gateway.events``. A fill is
    known by (exchange, venue trade id, order id): the same fill under another event id changes
    nothing and reports nothing.

    A fill is a fact, not a request: the exchange has executed it, so it cannot be refused like
    a withdrawal (a ``StepFailed`` would tell a tracker that follows no flow of it, and leave the
    registry disagreeing with the exchange without anyone asked to act). A buy beyond settled
    cash is booked and takes cash below zero: it happens only when a withdrawal raced an open
    buy (docs/exchanges.md), and it is logged as a warning naming the account. A fill that cannot
    be booked raises :class:`DomainError`: dead-lettered with its reason, and the account's later
    events are parked behind it until a person has settled it with the exchange and discarded it,
    so that nothing is booked out of order meanwhile. That is the case of:

    - a sell beyond the holding (holdings never go negative): the OMS let through a sell the
      account did not hold, which has to be put right with the exchange;
    - a closed account: the registry closes only an account that holds nothing, and every other
      service closes it after that, so nobody could trade, withdraw or close out what the fill
      would leave there (a buy left open when a withdrawal emptied the account before it closed).

    An account the registry does not know yet is not such a case: the OMS accepts a buy only
    against cash the registry booked, so the registry has opened every account
    that can trade, unless the fill overtook the opening on its way here (a replay, a lagging
    partition). The fill waits for the opening (:class:`MissingPrerequisite`); one that waits in
    vain names the wrong account.

    A suspended account is settled: suspension stops new orders and withdrawals, not the fills
    of orders the exchange already has.
    """
    if event.kind is not ExecutionKind.FILLED:
        return
    assert event.fill_price is not None and event.venue_trade_id is not None, "the model requires them on a fill"
    fill = (
        f"fill {event.venue_trade_id} of order {event.order_id} on {event.exchange} ({event.side.value} "
        f"{event.fill_quantity} {event.instrument} at {format(event.fill_price, 'f')} {event.currency})"
    )
    await store.lock_account(unit, event.account_id)
    if await unit.store.settled_already(event.exchange, event.venue_trade_id, event.order_id):
        return
    account = await unit.store.find_account(event.account_id)
    if account is None:
        raise MissingPrerequisite(
            f"{fill} names account {event.account_id}, which the registry has never opened",
            waits_for=event.account_id,
            needs="the account's TradingAccountOpened (if the fill is not that account's, settle it with the exchange)",
            service="registry",
        )
    if account.state == AccountState.CLOSED:
        raise DomainError(
            f"{fill} is for account {event.account_id}, which was closed in the registry while the order was open; "
            "settle the fill by hand with the investor and the exchange, then discard this event: `xbus dlq discard "
            "registry --id ... --reason ...` (the account's later events wait behind this one until then)"
        )
    cash = await unit.store.settled_cash(event.account_id, event.currency)
    holding = await unit.store.holding(event.account_id, event.instrument)
    try:
        settled = settle(
            event.side,
            event.fill_quantity,
            event.fill_price,
            cash=cash,
            holding=holding,
            currency=event.currency,
            instrument=event.instrument,
        )
    except Unbookable as refused:
        raise DomainError(
            f"{fill} for account {event.account_id} cannot be settled: {refused.reason}; the OMS should not have "
            "accepted the order. Have the exchange correct it (its correcting report waits behind this one), then "
            "discard this event: `xbus dlq discard registry --id ... --reason ...` (the account's later events, "
            "the correction among them, then apply in order)"
        ) from None
    if settled.overdraws:
        log.warning(
            "a buy fill took settled cash below zero (a withdrawal raced an open buy); the account owes the difference",
            account_id=event.account_id,
            currency=event.currency,
            settled_cash=show(settled.cash_after),
            fill=fill,
        )
    await unit.store.book_settlement(
        store.SettlementRow(
            exchange=event.exchange,
            venue_trade_id=event.venue_trade_id,
            order_id=event.order_id,
            account_id=event.account_id,
            instrument=event.instrument,
            side=event.side.value,
            quantity=event.fill_quantity,
            price=event.fill_price,
            currency=event.currency,
            cash_delta=settled.cash_delta,
            cash_after=settled.cash_after,
            holding_delta=settled.holding_delta,
            holding_after=settled.holding_after,
        ),
        unit.cause.id,
        unit.cause.time,
    )
    unit.record(
        SettlementApplied(
            account_id=event.account_id,
            exchange=event.exchange,
            order_id=event.order_id,
            venue_trade_id=event.venue_trade_id,
            instrument=event.instrument,
            side=event.side,
            quantity=event.fill_quantity,
            price=event.fill_price,
            cash_delta=money(settled.cash_delta, event.currency),
            holding_delta=settled.holding_delta,
            cash_balance=money(settled.cash_after, event.currency),
            holding_after=settled.holding_after,
        )
    )
