"""The OMS as the book of record of a deployment without the registry (``XBUS_REGISTRY=false``,
docs/operations.md): deposits, withdrawals and closings from ``xosp.accounts``, checked against
the OMS's own positions, as plxtra/xosp's account-deposit.ps1 and account-withdraw.ps1 do without
Foundry ("we can submit deposits into OMS directly": ``OMS2.Control Balance Transfer``).

With the registry these events are the registry's, and the OMS ignores them here: it books the
registry's ``CashMovementApplied`` and closes on its ``RegistryAccountStateChanged``
(``accounts.py``). Either way one service keeps the book, so the two cannot disagree.

The rules are the registry's, on the OMS's positions: a suspended account takes deposits but
gives nothing back, a closed one takes neither; a bank transfer is credited once; a withdrawal
takes only available cash (booked less what open buys reserve: the OMS knows its open orders,
which the registry does not); an account closes only when it holds nothing and nothing is
reserved. A refusal is a step report (``unit.step_failed``), never a dead letter.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from consumers.oms.accounts import STEP_ACCOUNT_STATE, close
from consumers.oms.funds_store import CashMovement, Positions
from consumers.oms.store import OmsUnit
from infrastructure.deployment import registry_runs
from schemas.accounts import FundsDeposited, FundsWithdrawn, TradingAccountClosed
from schemas.money import money, show
from schemas.oms import AccountState, OmsCashMovementApplied

STEP_CASH = "oms.cash"
#: StepFailed.reason is at most this long.
MAX_STEP_REASON = 2000


async def funds_deposited(event: FundsDeposited, unit: OmsUnit) -> None:
    if not registry_runs():
        await _move_cash(unit, event.account_id, event.amount.amount, event.amount.currency, event.reference)


async def funds_withdrawn(event: FundsWithdrawn, unit: OmsUnit) -> None:
    if not registry_runs():
        await _move_cash(unit, event.account_id, -event.amount.amount, event.amount.currency, event.reference)


async def account_closed(event: TradingAccountClosed, unit: OmsUnit) -> None:
    """Close an account that holds nothing; refuse, with what it holds, otherwise. Closing a
    closed account reports the step done again."""
    if registry_runs():
        return
    await unit.lock(f"account:{event.account_id}")
    standing = await unit.store.standing(event.account_id)
    if standing is None:
        unit.step_failed(unit.flow_id, STEP_ACCOUNT_STATE, f"trading account {event.account_id} is unknown to the OMS")
        return
    held = held_described(await unit.store.positions(event.account_id))
    if held and standing.state is not AccountState.CLOSED:
        unit.step_failed(
            unit.flow_id,
            STEP_ACCOUNT_STATE,
            _fit(
                f"trading account {event.account_id} cannot be closed: it still holds {held}; "
                "withdraw the cash and transfer the holdings first"
            ),
        )
        return
    await close(unit, event.account_id, unit.flow_id, event.reason)


def held_described(positions: Positions) -> str:
    """What keeps an account from closing, as a person reads it ('' when nothing does)."""
    parts = [f"{show(cash.balance)} {cash.currency}" for cash in positions.cash if cash.balance]
    parts += [f"{show(cash.unfilled_buys)} {cash.currency} reserved" for cash in positions.cash if cash.unfilled_buys]
    parts += [f"{holding.quantity} {holding.instrument}" for holding in positions.holdings if holding.quantity]
    return ", ".join(parts)


async def _move_cash(unit: OmsUnit, account_id: str, delta: Decimal, currency: str, reference: str) -> None:
    """Book a deposit (``delta`` > 0) or withdrawal on booked cash, or refuse it with the reason."""
    await unit.lock(f"account:{account_id}")  # orders and fills of the account come on other topics
    what = f"{'deposit' if delta > 0 else 'withdrawal'} of {show(abs(delta))} {currency} (reference {reference})"
    refusal = await _refusal(unit, account_id, delta, currency, reference, what)
    if refusal is not None:
        unit.step_failed(unit.flow_id, STEP_CASH, _fit(refusal))
        return
    await unit.store.record_cash_movement(
        CashMovement(account_id, currency, delta, reference, unit.flow_id, unit.cause.time)
    )
    await unit.store.move_cash(account_id, currency, booked=delta)
    after = await unit.store.cash(account_id, currency)
    assert after is not None, "the position was just moved"
    unit.record(
        OmsCashMovementApplied(
            flow_id=unit.flow_id,
            account_id=account_id,
            delta=money(delta, currency),
            balance=money(after.balance, currency),
            reference=reference,
        )
    )


async def _refusal(
    unit: OmsUnit, account_id: str, delta: Decimal, currency: str, reference: str, what: str
) -> str | None:
    """Why the movement cannot be booked; None when it can."""
    standing = await unit.store.standing(account_id)
    if standing is None:
        return f"trading account {account_id} is unknown to the OMS: {what} refused"
    if standing.state is AccountState.CLOSED:
        return f"trading account {account_id} is closed: {what} refused"
    if delta > 0:
        earlier = await unit.store.credit_under(account_id, reference)
        if earlier is None:
            return None
        return (
            f"trading account {account_id} was credited under bank reference {reference} already "
            f"({show(earlier.delta)} {earlier.currency}, flow {earlier.flow_id}, {_utc(earlier.at)}): {what} "
            "refused; a transfer is credited once"
        )
    if standing.state is AccountState.SUSPENDED:
        return f"trading account {account_id} is suspended: {what} refused (deposits are still taken)"
    position = await unit.store.cash(account_id, currency)
    available = Decimal(0) if position is None else position.available
    if -delta > available:
        return f"{what} exceeds available cash {show(available)} {currency} (booked less what open buys reserve)"
    return None


def _utc(at: dt.datetime) -> str:
    return f"{at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def _fit(reason: str) -> str:
    """A reason cut to what StepFailed carries."""
    return reason if len(reason) <= MAX_STEP_REASON else reason[: MAX_STEP_REASON - 1] + "…"
