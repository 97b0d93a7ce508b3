"""The registry's handlers of issues and reclaims on ``xosp.accounts`` (account-issue.ps1,
account-reclaim.ps1): shares of a token put into an account by its issuer, or taken back, not
bought or sold. Like deposits and withdrawals they are requests: one the registry does not book is
refused with the reason (``unit.step_failed``, step ``registry.holding``) and changes nothing.

An issue or reclaim is booked once: one sent again under a new event id carries the same
reference, and is refused naming the earlier one (the ledger's unique key backs the rule). A
suspended account takes issues (as it takes deposits) but gives nothing back; a closed one takes
neither. The token must be in the registry (a ``SymbolCreated`` or an exchange's markets defined it).
"""

from __future__ import annotations

from consumers.registry.accounts import movement_refused
from consumers.registry.compensation import STEP_REASON_LENGTH, clip
from consumers.registry.ledger import HoldingRefused, apply_holding_adjustment
from consumers.registry.store import HoldingMovement, LedgerUnit
from schemas.accounts import HoldingsIssued, HoldingsReclaimed
from schemas.registry import HoldingAdjusted

STEP_HOLDING = "registry.holding"


async def holdings_issued(event: HoldingsIssued, unit: LedgerUnit) -> None:
    await _adjust(unit, event.account_id, event.instrument, event.quantity, event.reference)


async def holdings_reclaimed(event: HoldingsReclaimed, unit: LedgerUnit) -> None:
    await _adjust(unit, event.account_id, event.instrument, -event.quantity, event.reference)


async def _adjust(unit: LedgerUnit, account_id: str, token: str, delta: int, reference: str) -> None:
    """Book an issue (``delta`` > 0) or reclaim of ``token`` on the account, or refuse it with the reason."""
    what = f"{'issue' if delta > 0 else 'reclaim'} of {abs(delta)} {token} (reference {reference})"
    if await movement_refused(unit, account_id, STEP_HOLDING, what, outgoing=delta < 0, still_taken="issues"):
        return
    if not await unit.store.token_defined(token):
        unit.step_failed(
            unit.flow_id,
            STEP_HOLDING,
            f"token {token} is not in the registry (no SymbolCreated or exchange market defined it): {what} refused",
        )
        return
    earlier = await unit.store.movement_under(account_id, reference)
    if earlier is not None:
        unit.step_failed(
            unit.flow_id,
            STEP_HOLDING,
            clip(
                f"account {account_id} had {earlier.delta:+d} {earlier.token} booked under reference {reference} "
                f"already (flow {earlier.flow_id}): {what} refused; a reference is booked once",
                STEP_REASON_LENGTH,
            ),
        )
        return
    try:
        after = apply_holding_adjustment(await unit.store.holding(account_id, token), delta, token)
    except HoldingRefused as refused:
        unit.step_failed(unit.flow_id, STEP_HOLDING, refused.reason)
        return
    await unit.store.book_holding_movement(
        HoldingMovement(account_id, token, delta, after, reference, unit.flow_id, unit.cause.time)
    )
    unit.record(
        HoldingAdjusted(
            flow_id=unit.flow_id,
            account_id=account_id,
            token=token,
            delta=delta,
            holding_after=after,
            reference=reference,
        )
    )
