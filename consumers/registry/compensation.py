"""The registry's handler of ``xosp.provisioning.events``: the opening of an account whose flow
failed in another service is undone (the account closed), unless money or holdings landed in it
first; and what the account handlers share with it to say what an account still holds."""

from __future__ import annotations

from consumers.registry import store
from consumers.registry.store import LedgerUnit
from schemas.money import show
from schemas.oms import AccountState
from schemas.provisioning import FlowKind, ProvisioningFailed
from schemas.registry import (
    RegistryAccountStateChanged,
)

#: Not a step any flow expects: reports that a failed opening could not be undone here.
STEP_COMPENSATION = "registry.compensation"

#: Limits of the fields the reasons go into (``NonEmpty`` and ``Reason`` in schemas).
STATE_REASON_LENGTH = 200
STEP_REASON_LENGTH = 2000


async def provisioning_failed(event: ProvisioningFailed, unit: LedgerUnit) -> None:
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
    opened = await unit.store.account_opened_by(event.flow_id)
    if opened is not None:
        await undo_opening(unit, opened, failure)
    elif await unit.store.find_account(event.entity_id) is None:
        await unit.store.remember_failed_opening(
            event.flow_id, event.entity_id, event.service, event.step, event.reason, unit.cause.time
        )
    # else: the account was opened by another flow, so this failure is of a later change to it.


async def undo_opening(unit: LedgerUnit, account: store.StoredAccount, failure: store.FailedOpening) -> None:
    """Close the account opened by a failed flow, reported with that flow's id.

    An account that already holds something (a deposit landed before the failure was known)
    is not closed: that would strand the money. It is left as it is and the tracker is told
    with a ``registry.compensation`` step report, for a person to settle.
    """
    if account.state == AccountState.CLOSED:
        return  # closed already, by its owner or by an earlier report of the same failure
    held = await holdings_described(unit, account.account_id)
    if held:
        unit.step_failed(
            failure.flow_id,
            STEP_COMPENSATION,
            clip(
                f"opening of account {account.account_id} failed at {failure.step} ({failure.reason}) but the "
                f"account already holds {held}; it stays {account.state.value} in the registry until a person "
                "settles it",
                STEP_REASON_LENGTH,
            ),
        )
        return
    reason = clip(f"opening failed: {failure.step}: {failure.reason}", STATE_REASON_LENGTH)
    await unit.store.set_state(account.account_id, AccountState.CLOSED, reason, unit.cause.time)
    unit.record(
        RegistryAccountStateChanged(
            flow_id=failure.flow_id, account_id=account.account_id, state=AccountState.CLOSED, reason=reason
        )
    )


async def holdings_described(unit: LedgerUnit, account_id: str) -> str:
    """What the account still holds, for a reason ("" when it holds nothing)."""
    cash = await unit.store.nonzero_cash(account_id)
    holdings = await unit.store.nonzero_holdings(account_id)
    parts = []
    if cash:
        parts.append("settled cash " + ", ".join(f"{show(amount)} {currency}" for currency, amount in cash.items()))
    if holdings:
        parts.append("holdings " + ", ".join(f"{quantity} {code}" for code, quantity in holdings.items()))
    return " and ".join(parts)


def clip(text: str, limit: int) -> str:
    """Reasons go into bounded fields: a long list of holdings is cut, not a failed event."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
