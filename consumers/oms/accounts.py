"""The OMS's handlers of provisioning (docs/provisioning.md): operators from ``xosp.operators``,
accounts from ``xosp.accounts``, the registry's closures and cash movements from
``xosp.registry.events`` and failed openings from ``xosp.provisioning.events``.

Steps: ``oms.operator`` when ``oms`` is among an operator's systems (a registration without it
deregisters an operator registered here before), ``oms.account`` of an opening,
``oms.account_state`` of a suspension and of a closing. In a deployment that runs the registry
the OMS closes an account only once the registry has (``RegistryAccountStateChanged`` closed, with
that event's flow id), never on ``TradingAccountClosed``: an account the registry refuses to close
stays open. Without the registry the OMS is the book of record and closes on
``TradingAccountClosed`` itself (``funds.py``). The registry's
events come on another topic than the opening, so a closure of an account not seen yet is kept
and applied when the opening arrives, never dropped.
"""

from __future__ import annotations

from consumers.oms.account_store import ClosureCause
from consumers.oms.store import OmsUnit
from consumers.runtime import MissingPrerequisite
from schemas.accounts import TradingAccountOpened, TradingAccountSuspended, TradingAccountUpdated
from schemas.oms import (
    AccountState,
    OmsAccountProvisioned,
    OmsAccountStateChanged,
    OmsOperatorRegistered,
)
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.provisioning import FlowKind, ProvisioningFailed
from schemas.registry import CashMovementApplied, RegistryAccountStateChanged
from schemas.types import OperatorSystem

STEP_OPERATOR = "oms.operator"
STEP_ACCOUNT = "oms.account"
STEP_ACCOUNT_STATE = "oms.account_state"
#: OmsAccountStateChanged.reason is a NonEmpty string of at most this many characters.
MAX_REASON = 200


async def operator_registered(event: OperatorRegistered, unit: OmsUnit) -> None:
    """Register the operator when ``oms`` is among its systems. A registration that no longer names
    the OMS is the one in force: an operator registered here before is deregistered (no step: the
    flow expects none of the OMS)."""
    if OperatorSystem.OMS not in event.systems:
        await unit.store.deregister_operator(
            event.operator_id, f"registered again by flow {unit.flow_id} without the OMS", unit.cause.time
        )
        return
    await unit.store.register_operator(event, unit.cause.time)
    unit.record(
        OmsOperatorRegistered(
            flow_id=unit.flow_id, operator_id=event.operator_id, features=event.oms_features, owners=event.owners
        )
    )


async def operator_deregistered(event: OperatorDeregistered, unit: OmsUnit) -> None:
    await unit.store.deregister_operator(event.operator_id, event.reason, unit.cause.time)


async def account_opened(event: TradingAccountOpened, unit: OmsUnit) -> None:
    await unit.lock(f"account:{event.account_id}")  # the same account may come from another topic at once
    existing = await unit.store.standing(event.account_id)
    if existing is not None:
        unit.step_failed(
            unit.flow_id,
            STEP_ACCOUNT,
            f"trading account {event.account_id} already exists in the OMS ({existing.state}, opened by flow "
            f"{existing.opened_by_flow}); account ids are not reused: open it under a new id",
        )
        return
    await unit.store.open_account(event, unit.flow_id, unit.cause.time)
    unit.record(
        OmsAccountProvisioned(
            flow_id=unit.flow_id,
            account_id=event.account_id,
            currency=event.default_currency,
            allowed_exchanges=event.allowed_exchanges,
            vetting=event.vetting,
        )
    )
    for pending in await unit.store.take_pending_closures(event.account_id):
        # A failed flow's compensation concerns this account only if that flow opened it.
        if pending.cause is ClosureCause.REGISTRY_CLOSED or pending.flow_id == unit.flow_id:
            await close(unit, event.account_id, pending.flow_id, pending.reason)


async def account_updated(event: TradingAccountUpdated, unit: OmsUnit) -> None:
    if not await unit.store.update_account(event, unit.cause.time):
        raise MissingPrerequisite(
            f"trading account {event.account_id} is unknown to the OMS (its opening was not applied here)",
            waits_for=event.account_id,
            needs="the account's TradingAccountOpened",
            service="oms",
        )


async def account_suspended(event: TradingAccountSuspended, unit: OmsUnit) -> None:
    standing = await unit.store.standing(event.account_id)
    if standing is None or standing.state is AccountState.CLOSED:
        what = "unknown to the OMS" if standing is None else "closed in the OMS"
        unit.step_failed(
            unit.flow_id, STEP_ACCOUNT_STATE, f"trading account {event.account_id} is {what}: cannot suspend it"
        )
        return
    if await unit.store.set_account_state(
        event.account_id, AccountState.SUSPENDED, unit.flow_id, event.reason, unit.cause.time
    ):
        _state_changed(unit, event.account_id, AccountState.SUSPENDED, unit.flow_id, event.reason)


async def registry_account_state_changed(event: RegistryAccountStateChanged, unit: OmsUnit) -> None:
    """The registry closed the account (its close flow, or its compensation of a failed opening)."""
    await unit.lock(f"account:{event.account_id}")  # the same account may come from another topic at once
    if event.state is not AccountState.CLOSED:
        return  # the OMS suspends on TradingAccountSuspended itself
    if await unit.store.standing(event.account_id) is None:
        await unit.store.keep_pending_closure(
            event.account_id, event.flow_id, ClosureCause.REGISTRY_CLOSED, event.reason, unit.cause.time
        )
        unit.step_waiting(
            event.flow_id,
            STEP_ACCOUNT_STATE,
            f"trading account {event.account_id} is not opened in the OMS yet; it is closed when it is",
            waiting_for=(f"account:{event.account_id}",),
        )
        return
    await close(unit, event.account_id, event.flow_id, event.reason)


async def provisioning_failed(event: ProvisioningFailed, unit: OmsUnit) -> None:
    """Compensation: an account opened by a flow that failed elsewhere is closed here too."""
    await unit.lock(f"account:{event.entity_id}")  # the same account may come from another topic at once
    if event.kind is not FlowKind.ACCOUNT or event.service == unit.service:
        return  # not an account flow, or the OMS refused its own part: nothing of it to undo
    reason = _fit(f"opening failed: {event.service} refused {event.step}: {event.reason}")
    standing = await unit.store.standing(event.entity_id)
    if standing is None:
        await unit.store.keep_pending_closure(
            event.entity_id, event.flow_id, ClosureCause.OPENING_FAILED, reason, unit.cause.time
        )
    elif standing.opened_by_flow == event.flow_id:
        await close(unit, event.entity_id, event.flow_id, reason)


async def close(unit: OmsUnit, account_id: str, flow_id: str, reason: str | None) -> None:
    """Close the account for ``flow_id`` and report it, once per flow."""
    if await unit.store.set_account_state(account_id, AccountState.CLOSED, flow_id, reason, unit.cause.time):
        _state_changed(unit, account_id, AccountState.CLOSED, flow_id, reason)


def _state_changed(unit: OmsUnit, account_id: str, state: AccountState, flow_id: str, reason: str | None) -> None:
    unit.record(OmsAccountStateChanged(flow_id=flow_id, account_id=account_id, state=state, reason=reason))


def _fit(reason: str) -> str:
    """A reason cut to what OmsAccountStateChanged carries; the full one stays in ProvisioningFailed."""
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


async def cash_movement_applied(event: CashMovementApplied, unit: OmsUnit) -> None:
    """Book the registry's deposit or withdrawal: its ``delta``, not its ``balance``.

    The OMS's booked cash is the registry's movements plus the fills the OMS books itself from
    ``ExecutionReported``. The registry's balance counts its own settlements of those fills (of
    every exchange), which the OMS may have booked already or not yet (other topics, no order
    between them). Setting booked cash to that balance would count such fills twice or lose
    them; adding the delta cannot. (Without the registry no such event comes: ``funds.py``.)
    """
    await unit.lock(f"account:{event.account_id}")  # orders and fills of the account come on other topics
    await unit.store.move_cash(event.account_id, event.delta.currency, booked=event.delta.amount)
