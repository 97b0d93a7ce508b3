"""The Foundry Registry's rules, one handler per event type it reads.

Refusals of the domain (an unknown or closed account, a withdrawal beyond settled cash, an
investor id already recorded for someone else) are step reports (``unit.step_failed``), never
dead letters: the event is applied, the refusal is its effect, nothing else changes and the
tracker fails the flow. Times come from the event (``unit.cause.time``), never the clock, so a
replay rebuilds the same tables.

Suspended accounts take deposits (money already sent by the bank has to land somewhere, and
refusing it would bounce a real transfer) but refuse withdrawals (suspension freezes what
leaves the account). Closed accounts refuse both.

Fills of exchanges that settle through the registry (``ExecutionReported``) are facts, not
requests: they are booked, or, when they cannot be, dead-lettered for a person
(:func:`execution_reported` says which and why). The arithmetic of both is in ``ledger.py``.
"""

from __future__ import annotations

from decimal import Decimal

import structlog

from consumers.registry import store
from consumers.registry.ledger import CashRefused, Unbookable, apply_cash_movement, settle
from consumers.runtime import DomainError, MissingPrerequisite, UnitOfWork
from schemas.accounts import (
    FundsDeposited,
    FundsWithdrawn,
    Investor,
    TradingAccountClosed,
    TradingAccountOpened,
    TradingAccountSuspended,
)
from schemas.exchanges import ExchangeAdded, ExchangeUpdated
from schemas.gateway import ExecutionKind, ExecutionReported
from schemas.money import money, show
from schemas.oms import AccountState
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.provisioning import FlowKind, ProvisioningFailed
from schemas.registry import (
    CashMovementApplied,
    RegistryAccountOpened,
    RegistryAccountStateChanged,
    RegistryOperatorRegistered,
    RegistrySettlementEnabled,
    SettlementApplied,
)
from schemas.types import OperatorSystem

STEP_OPERATOR = "registry.operator"
STEP_ACCOUNT = "registry.account"
STEP_ACCOUNT_STATE = "registry.account_state"
STEP_CASH = "registry.cash"
#: Not a step any flow expects: reports that a failed opening could not be undone here.
STEP_COMPENSATION = "registry.compensation"

#: Limits of the fields the reasons go into (``NonEmpty`` and ``Reason`` in schemas).
_STATE_REASON_LENGTH = 200
_STEP_REASON_LENGTH = 2000

log = structlog.get_logger("xbus.registry")


# Operators


async def operator_registered(event: OperatorRegistered, unit: UnitOfWork) -> None:
    """Register the operator with the registry's Identity function, when it may use the registry."""
    if OperatorSystem.REGISTRY not in event.systems:
        return  # no step of ours in this flow: the tracker does not expect one
    await store.register_operator(
        unit,
        event.operator_id,
        event.login_id,
        [feature.value for feature in event.registry_features],
        unit.flow_id,
        unit.cause.time,
    )
    unit.record(
        RegistryOperatorRegistered(
            flow_id=unit.flow_id, operator_id=event.operator_id, features=event.registry_features
        )
    )


async def operator_deregistered(event: OperatorDeregistered, unit: UnitOfWork) -> None:
    """Keep the operator's row, marked deregistered: who could act, and until when, stays on record.

    An operator the registry does not know was never given the registry: nothing to do, and no
    flow tracks a deregistration.
    """
    await store.deregister_operator(unit, event.operator_id, event.reason, unit.cause.time)


# Accounts


async def account_opened(event: TradingAccountOpened, unit: UnitOfWork) -> None:
    """Record the investor and the account it owns, active, with zero settled cash and no holdings."""
    await store.lock_account(unit, event.account_id)
    already_failed = await store.take_failed_opening(unit, unit.flow_id)
    existing = await store.find_account(unit, event.account_id)
    if existing is not None:
        unit.step_failed(
            unit.flow_id,
            STEP_ACCOUNT,
            f"account {event.account_id} is already in the registry ({existing.state.value}, opened by flow "
            f"{existing.opening_flow_id}); an account id is opened once",
        )
        return
    await store.insert_investor(unit, event.investor, unit.cause.time)
    recorded = await store.find_investor(unit, event.investor.investor_id)
    assert recorded is not None, "the investor was just inserted or already there"
    conflicts = investor_conflicts(recorded, event.investor)
    if conflicts:
        unit.step_failed(
            unit.flow_id,
            STEP_ACCOUNT,
            _clip(
                f"investor {recorded.investor_id} is recorded with {'; '.join(conflicts)}: the opening of "
                f"{event.account_id} names someone else under that investor id",
                _STEP_REASON_LENGTH,
            ),
        )
        return
    if recorded.pii_hash is None and event.investor.pii_hash is not None:
        await store.fill_pii_hash(unit, recorded.investor_id, event.investor.pii_hash)
    await store.insert_account(
        unit,
        account_id=event.account_id,
        investor_id=recorded.investor_id,
        owner=event.owner,
        name=event.name,
        currency=event.default_currency,
        flow_id=unit.flow_id,
        at=unit.cause.time,
    )
    unit.record(
        RegistryAccountOpened(
            flow_id=unit.flow_id,
            account_id=event.account_id,
            investor_id=recorded.investor_id,
            currency=event.default_currency,
        )
    )
    if already_failed is not None:
        # The flow failed elsewhere before its opening reached us: undo it at once.
        opened = store.StoredAccount(event.account_id, recorded.investor_id, AccountState.ACTIVE, unit.flow_id)
        await _undo_opening(unit, opened, already_failed)


def investor_conflicts(recorded: Investor, named: Investor) -> list[str]:
    """How ``named`` differs from the investor recorded under the same id ([] when it is the same).

    A PII hash the record lacks is not a conflict (it is filled in); two different hashes are,
    since they stand for different personal data.
    """
    conflicts = []
    if recorded.full_name != named.full_name:
        conflicts.append(f"full name {recorded.full_name!r} (the opening says {named.full_name!r})")
    if recorded.country != named.country:
        conflicts.append(f"country {recorded.country} (the opening says {named.country})")
    if recorded.type != named.type:
        conflicts.append(f"type {recorded.type.value} (the opening says {named.type.value})")
    if recorded.pii_hash is not None and named.pii_hash is not None and recorded.pii_hash != named.pii_hash:
        conflicts.append("another PII hash")
    return conflicts


async def account_suspended(event: TradingAccountSuspended, unit: UnitOfWork) -> None:
    """Suspend the account; suspending a suspended account reports the step done again."""
    await store.lock_account(unit, event.account_id)
    account = await store.find_account(unit, event.account_id)
    if account is None:
        unit.step_failed(
            unit.flow_id, STEP_ACCOUNT_STATE, f"account {event.account_id} is unknown to the registry: not suspended"
        )
        return
    if account.state == AccountState.CLOSED:
        unit.step_failed(
            unit.flow_id,
            STEP_ACCOUNT_STATE,
            f"account {event.account_id} is closed in the registry; a closed account cannot be suspended",
        )
        return
    if account.state == AccountState.ACTIVE:
        await store.set_state(unit, event.account_id, AccountState.SUSPENDED, event.reason, unit.cause.time)
    unit.record(
        RegistryAccountStateChanged(
            flow_id=unit.flow_id, account_id=event.account_id, state=AccountState.SUSPENDED, reason=event.reason
        )
    )


async def account_closed(event: TradingAccountClosed, unit: UnitOfWork) -> None:
    """Close an account that holds nothing; refuse, with what it holds, otherwise.

    The OMS and authorisation close the account on our ``RegistryAccountStateChanged(closed)``,
    so a refusal here keeps the account open everywhere. Closing a closed account reports the
    step done again (the others' closing is idempotent too).
    """
    await store.lock_account(unit, event.account_id)
    account = await store.find_account(unit, event.account_id)
    if account is None:
        unit.step_failed(
            unit.flow_id, STEP_ACCOUNT_STATE, f"account {event.account_id} is unknown to the registry: not closed"
        )
        return
    if account.state != AccountState.CLOSED:
        held = await _holdings_described(unit, event.account_id)
        if held:
            unit.step_failed(
                unit.flow_id,
                STEP_ACCOUNT_STATE,
                _clip(
                    f"account {event.account_id} cannot be closed: it still holds {held}; "
                    "withdraw the cash and transfer the holdings first",
                    _STEP_REASON_LENGTH,
                ),
            )
            return
        await store.set_state(unit, event.account_id, AccountState.CLOSED, event.reason, unit.cause.time)
    unit.record(
        RegistryAccountStateChanged(
            flow_id=unit.flow_id, account_id=event.account_id, state=AccountState.CLOSED, reason=event.reason
        )
    )


# Cash


async def funds_deposited(event: FundsDeposited, unit: UnitOfWork) -> None:
    await _move_cash(unit, event.account_id, event.amount.amount, event.amount.currency, event.reference)


async def funds_withdrawn(event: FundsWithdrawn, unit: UnitOfWork) -> None:
    await _move_cash(unit, event.account_id, -event.amount.amount, event.amount.currency, event.reference)


async def _move_cash(unit: UnitOfWork, account_id: str, delta: Decimal, currency: str, reference: str) -> None:
    """Book a deposit (``delta`` > 0) or withdrawal on settled cash, or refuse it with the reason."""
    what = f"{'deposit' if delta > 0 else 'withdrawal'} of {show(abs(delta))} {currency} (reference {reference})"
    await store.lock_account(unit, account_id)
    account = await store.find_account(unit, account_id)
    if account is None:
        unit.step_failed(unit.flow_id, STEP_CASH, f"account {account_id} is unknown to the registry: {what} refused")
        return
    if account.state == AccountState.CLOSED:
        unit.step_failed(unit.flow_id, STEP_CASH, f"account {account_id} is closed: {what} refused")
        return
    if account.state == AccountState.SUSPENDED and delta < 0:
        unit.step_failed(
            unit.flow_id, STEP_CASH, f"account {account_id} is suspended: {what} refused (deposits are still taken)"
        )
        return
    balance = await store.settled_cash(unit, account_id, currency)
    try:
        after = apply_cash_movement(balance, delta, currency)
    except CashRefused as refused:
        unit.step_failed(unit.flow_id, STEP_CASH, refused.reason)
        return
    await store.book_cash_movement(
        unit,
        account_id=account_id,
        currency=currency,
        delta=delta,
        balance=after,
        reference=reference,
        flow_id=unit.flow_id,
        at=unit.cause.time,
    )
    unit.record(
        CashMovementApplied(
            flow_id=unit.flow_id,
            account_id=account_id,
            delta=money(delta, currency),
            balance=money(after, currency),
            reference=reference,
        )
    )


# Exchanges and settlement


async def exchange_added(event: ExchangeAdded, unit: UnitOfWork) -> None:
    """Settle the exchange's fills here when it asks to, and say so (step ``registry.settlement``).

    An exchange that does not settle through the registry is remembered as such, and nothing is
    reported: its onboarding does not expect the step.
    """
    await store.put_exchange(unit, event.code, event.settles_through_registry, unit.flow_id, unit.cause.time)
    if event.settles_through_registry:
        unit.record(RegistrySettlementEnabled(flow_id=unit.flow_id, exchange=event.code))


async def exchange_updated(event: ExchangeUpdated, unit: UnitOfWork) -> None:
    """Keep the flag an update sets; say that settlement is enabled only when it turns on."""
    if event.settles_through_registry is None:
        return  # a partial update that leaves settlement as it is
    settled_before = await store.exchange_settles(unit, event.code)
    await store.put_exchange(unit, event.code, event.settles_through_registry, unit.flow_id, unit.cause.time)
    if event.settles_through_registry and not settled_before:
        unit.record(RegistrySettlementEnabled(flow_id=unit.flow_id, exchange=event.code))


async def execution_reported(event: ExecutionReported, unit: UnitOfWork) -> None:
    """Book a fill of an exchange that settles through the registry: cash, holding and the
    settlement ledger, in this one transaction.

    Only fills move anything, and only those whose report says the exchange settles here (the
    gateway stamps each report with its exchange's flag, so the registry needs no order between
    ``xosp.exchanges`` and ``xosp.gateway.events``). A fill is known by (exchange, venue trade id,
    order id): the same fill under another event id changes nothing and reports nothing.

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

    An account the registry does not know yet is not such a case: with settlement on, the OMS
    accepts a buy only against cash the registry booked, so the registry has opened every account
    that can trade, unless the fill overtook the opening on its way here (a replay, a lagging
    partition). The fill waits for the opening (:class:`MissingPrerequisite`); one that waits in
    vain names the wrong account.

    A suspended account is settled: suspension stops new orders and withdrawals, not the fills
    of orders the exchange already has.
    """
    if event.kind is not ExecutionKind.FILLED or not event.settles_through_registry:
        return
    assert event.fill_price is not None and event.venue_trade_id is not None, "the model requires them on a fill"
    fill = (
        f"fill {event.venue_trade_id} of order {event.order_id} on {event.exchange} ({event.side.value} "
        f"{event.fill_quantity} {event.instrument} at {format(event.fill_price, 'f')} {event.currency})"
    )
    await store.lock_account(unit, event.account_id)
    if await store.settled_already(unit, event.exchange, event.venue_trade_id, event.order_id):
        return
    account = await store.find_account(unit, event.account_id)
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
    cash = await store.settled_cash(unit, event.account_id, event.currency)
    holding = await store.holding(unit, event.account_id, event.instrument)
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
    await store.book_settlement(
        unit,
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


# Compensation


async def provisioning_failed(event: ProvisioningFailed, unit: UnitOfWork) -> None:
    """Undo the opening of an account whose flow failed in another service.

    Only an opening is undone, and only one the registry did: the account whose opening flow is
    the failed flow. A failure of the registry's own step left nothing here to undo. A failure
    that arrives before its opening (topics are not ordered against each other) is remembered,
    and the opening is undone as soon as it is applied.
    """
    if event.kind != FlowKind.ACCOUNT or event.service == unit.service or event.step.startswith(f"{unit.service}."):
        return
    failure = store.FailedOpening(event.flow_id, event.service, event.step, event.reason)
    await store.lock_account(unit, event.entity_id)
    opened = await store.account_opened_by(unit, event.flow_id)
    if opened is not None:
        await _undo_opening(unit, opened, failure)
    elif await store.find_account(unit, event.entity_id) is None:
        await store.remember_failed_opening(
            unit, event.flow_id, event.entity_id, event.service, event.step, event.reason, unit.cause.time
        )
    # else: the account was opened by another flow, so this failure is of a later change to it.


async def _undo_opening(unit: UnitOfWork, account: store.StoredAccount, failure: store.FailedOpening) -> None:
    """Close the account opened by a failed flow, reported with that flow's id.

    An account that already holds something (a deposit landed before the failure was known)
    is not closed: that would strand the money. It is left as it is and the tracker is told
    with a ``registry.compensation`` step report, for a person to settle.
    """
    if account.state == AccountState.CLOSED:
        return  # closed already, by its owner or by an earlier report of the same failure
    held = await _holdings_described(unit, account.account_id)
    if held:
        unit.step_failed(
            failure.flow_id,
            STEP_COMPENSATION,
            _clip(
                f"opening of account {account.account_id} failed at {failure.step} ({failure.reason}) but the "
                f"account already holds {held}; it stays {account.state.value} in the registry until a person "
                "settles it",
                _STEP_REASON_LENGTH,
            ),
        )
        return
    reason = _clip(f"opening failed: {failure.step}: {failure.reason}", _STATE_REASON_LENGTH)
    await store.set_state(unit, account.account_id, AccountState.CLOSED, reason, unit.cause.time)
    unit.record(
        RegistryAccountStateChanged(
            flow_id=failure.flow_id, account_id=account.account_id, state=AccountState.CLOSED, reason=reason
        )
    )


async def _holdings_described(unit: UnitOfWork, account_id: str) -> str:
    """What the account still holds, for a reason ("" when it holds nothing)."""
    cash = await store.nonzero_cash(unit, account_id)
    holdings = await store.nonzero_holdings(unit, account_id)
    parts = []
    if cash:
        parts.append("settled cash " + ", ".join(f"{show(amount)} {currency}" for currency, amount in cash.items()))
    if holdings:
        parts.append("holdings " + ", ".join(f"{quantity} {code}" for code, quantity in holdings.items()))
    return " and ".join(parts)


def _clip(text: str, limit: int) -> str:
    """Reasons go into bounded fields: a long list of holdings is cut, not a failed event."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
