"""The registry's handlers of ``xosp.accounts``: the investor and the account it owns, the
account's state, and the cash that moves in and out of it.

Refusals of the domain (an unknown or closed account, a withdrawal beyond settled cash, an
investor id already recorded for someone else) are step reports (``unit.step_failed``), never
dead letters: the event is applied, the refusal is its effect, nothing else changes and the
tracker fails the flow. Times come from the event (``unit.cause.time``), never the clock, so a
replay rebuilds the same tables.

A bank transfer is credited once: a deposit whose reference the account was already credited
under (a ``FundsDeposited`` sent again under a new event id) is refused, naming the earlier
credit, and the ledger's unique key backs the rule.

Suspended accounts take deposits (money already sent by the bank has to land somewhere, and
refusing it would bounce a real transfer) but refuse withdrawals (suspension freezes what
leaves the account). Closed accounts refuse both. The arithmetic of cash is in ``ledger.py``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from consumers.registry import store
from consumers.registry.compensation import STEP_REASON_LENGTH, clip, holdings_described, undo_opening
from consumers.registry.ledger import CashRefused, apply_cash_movement
from consumers.registry.store import LedgerUnit
from schemas.accounts import (
    FundsDeposited,
    FundsWithdrawn,
    Investor,
    TradingAccountClosed,
    TradingAccountOpened,
    TradingAccountSuspended,
)
from schemas.money import money, show
from schemas.oms import AccountState
from schemas.registry import (
    CashMovementApplied,
    RegistryAccountOpened,
    RegistryAccountStateChanged,
)

STEP_ACCOUNT = "registry.account"
STEP_ACCOUNT_STATE = "registry.account_state"
STEP_CASH = "registry.cash"


async def account_opened(event: TradingAccountOpened, unit: LedgerUnit) -> None:
    """Record the investor and the account it owns, active, with zero settled cash and no holdings."""
    await store.lock_account(unit, event.account_id)
    already_failed = await unit.store.take_failed_opening(unit.flow_id)
    existing = await unit.store.find_account(event.account_id)
    if existing is not None:
        unit.step_failed(
            unit.flow_id,
            STEP_ACCOUNT,
            f"account {event.account_id} is already in the registry ({existing.state.value}, opened by flow "
            f"{existing.opening_flow_id}); an account id is opened once",
        )
        return
    await unit.store.insert_investor(event.investor, unit.cause.time)
    recorded = await unit.store.find_investor(event.investor.investor_id)
    assert recorded is not None, "the investor was just inserted or already there"
    conflicts = investor_conflicts(recorded, event.investor)
    if conflicts:
        unit.step_failed(
            unit.flow_id,
            STEP_ACCOUNT,
            clip(
                f"investor {recorded.investor_id} is recorded with {'; '.join(conflicts)}: the opening of "
                f"{event.account_id} names someone else under that investor id",
                STEP_REASON_LENGTH,
            ),
        )
        return
    if recorded.pii_hash is None and event.investor.pii_hash is not None:
        await unit.store.fill_pii_hash(recorded.investor_id, event.investor.pii_hash)
    await unit.store.insert_account(
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
        await undo_opening(unit, opened, already_failed)


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


async def account_suspended(event: TradingAccountSuspended, unit: LedgerUnit) -> None:
    """Suspend the account; suspending a suspended account reports the step done again."""
    await store.lock_account(unit, event.account_id)
    account = await unit.store.find_account(event.account_id)
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
        await unit.store.set_state(event.account_id, AccountState.SUSPENDED, event.reason, unit.cause.time)
    unit.record(
        RegistryAccountStateChanged(
            flow_id=unit.flow_id, account_id=event.account_id, state=AccountState.SUSPENDED, reason=event.reason
        )
    )


async def account_closed(event: TradingAccountClosed, unit: LedgerUnit) -> None:
    """Close an account that holds nothing; refuse, with what it holds, otherwise.

    The OMS and authorisation close the account on our ``RegistryAccountStateChanged(closed)``,
    so a refusal here keeps the account open everywhere. Closing a closed account reports the
    step done again (the others' closing is idempotent too).
    """
    await store.lock_account(unit, event.account_id)
    account = await unit.store.find_account(event.account_id)
    if account is None:
        unit.step_failed(
            unit.flow_id, STEP_ACCOUNT_STATE, f"account {event.account_id} is unknown to the registry: not closed"
        )
        return
    if account.state != AccountState.CLOSED:
        held = await holdings_described(unit, event.account_id)
        if held:
            unit.step_failed(
                unit.flow_id,
                STEP_ACCOUNT_STATE,
                clip(
                    f"account {event.account_id} cannot be closed: it still holds {held}; "
                    "withdraw the cash and transfer the holdings first",
                    STEP_REASON_LENGTH,
                ),
            )
            return
        await unit.store.set_state(event.account_id, AccountState.CLOSED, event.reason, unit.cause.time)
    unit.record(
        RegistryAccountStateChanged(
            flow_id=unit.flow_id, account_id=event.account_id, state=AccountState.CLOSED, reason=event.reason
        )
    )


async def funds_deposited(event: FundsDeposited, unit: LedgerUnit) -> None:
    await _move_cash(unit, event.account_id, event.amount.amount, event.amount.currency, event.reference)


async def funds_withdrawn(event: FundsWithdrawn, unit: LedgerUnit) -> None:
    await _move_cash(unit, event.account_id, -event.amount.amount, event.amount.currency, event.reference)


async def movement_refused(
    unit: LedgerUnit, account_id: str, step: str, what: str, *, outgoing: bool, still_taken: str
) -> bool:
    """Lock the account and refuse ``what`` (reporting ``step`` failed) when the account cannot take
    it: unknown, closed, or suspended and ``outgoing`` (a suspended account still takes what comes
    in, ``still_taken``). True when refused. Cash and holdings movements share the rule."""
    await store.lock_account(unit, account_id)
    account = await unit.store.find_account(account_id)
    if account is None:
        reason = f"account {account_id} is unknown to the registry: {what} refused"
    elif account.state == AccountState.CLOSED:
        reason = f"account {account_id} is closed: {what} refused"
    elif account.state == AccountState.SUSPENDED and outgoing:
        reason = f"account {account_id} is suspended: {what} refused ({still_taken} are still taken)"
    else:
        return False
    unit.step_failed(unit.flow_id, step, reason)
    return True


async def _move_cash(unit: LedgerUnit, account_id: str, delta: Decimal, currency: str, reference: str) -> None:
    """Book a deposit (``delta`` > 0) or withdrawal on settled cash, or refuse it with the reason."""
    what = f"{'deposit' if delta > 0 else 'withdrawal'} of {show(abs(delta))} {currency} (reference {reference})"
    if await movement_refused(unit, account_id, STEP_CASH, what, outgoing=delta < 0, still_taken="deposits"):
        return
    earlier = await unit.store.credit_under(account_id, reference) if delta > 0 else None
    if earlier is not None:
        unit.step_failed(
            unit.flow_id,
            STEP_CASH,
            clip(
                f"account {account_id} was credited under bank reference {reference} already "
                f"({show(earlier.amount)} {earlier.currency}, flow {earlier.flow_id}, "
                f"{earlier.at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC): {what} refused; a transfer is credited once",
                STEP_REASON_LENGTH,
            ),
        )
        return
    balance = await unit.store.settled_cash(account_id, currency)
    try:
        after = apply_cash_movement(balance, delta, currency)
    except CashRefused as refused:
        unit.step_failed(unit.flow_id, STEP_CASH, refused.reason)
        return
    await unit.store.book_cash_movement(
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
