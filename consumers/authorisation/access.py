"""Trading-account access as flows need it: grant now or keep pending, apply what became ready,
close an account. Shared by the handlers of ``xosp.accounts``, ``xosp.users`` and the follow-up
topics, which all end up granting or revoking the same associations.
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers.authorisation.permissions import shorten
from consumers.authorisation.store import EntitlementsUnit, Pending
from schemas.accounts import AccountLogin
from schemas.authorisation import AccessRevoked, AccountAccessGranted, RevokedScope

ACCESS_STEP = "authorisation.access"


async def request(unit: EntitlementsUnit, flow_id: str, account_id: str, logins: Sequence[AccountLogin]) -> None:
    """Grant the association of ``flow_id`` now, or keep it whole until its last login is known.

    Topics are not ordered against each other: an account may name a login whose ``UserCreated``
    this service has not read yet. That is no error: the association waits (``StepWaiting``)
    and :func:`apply_ready` grants it, with this flow id, when the login arrives.
    """
    unknown = await unit.store.unknown_logins([login.login_id for login in logins])
    if not unknown:
        await grant(unit, flow_id, account_id, logins)
        return
    await unit.store.add_pending(flow_id, account_id, logins, unit.cause.time)
    unit.step_waiting(
        flow_id,
        ACCESS_STEP,
        shorten(f"account {account_id} names logins not known yet: {', '.join(unknown)}", 2000),
        waiting_for=tuple(f"login:{login_id}" for login_id in unknown),
    )


async def grant(unit: EntitlementsUnit, flow_id: str, account_id: str, logins: Sequence[AccountLogin]) -> None:
    """Associate ``logins`` with the account, and announce the access now in force. A login
    associated while disabled (or with a closed account) is on record but left out of the
    ``AccountAccessGranted``: a reader such as the OMS must not give it rights. Its access is
    announced when it is enabled (``user_enabled`` re-emits the associations it restores)."""
    in_force = [login for login in logins if await unit.store.grant(account_id, login, flow_id, unit.cause.time)]
    unit.record(AccountAccessGranted(flow_id=flow_id, account_id=account_id, logins=tuple(in_force)))


async def apply_ready(unit: EntitlementsUnit, ready: Sequence[Pending]) -> None:
    """Grant pending associations whose logins are now all known, each with its own flow id."""
    for pending in ready:
        logins = await unit.store.pending_logins(pending.flow_id)
        await unit.store.drop_pending(pending.flow_id)
        await grant(unit, pending.flow_id, pending.account_id, logins)


async def close_account(unit: EntitlementsUnit, account_id: str, flow_id: str, reason: str) -> None:
    """Revoke every login's access to the account for good, as step ``authorisation.revoke`` of
    ``flow_id`` (a close) or as the compensation of ``flow_id`` (a failed opening).

    Associations still pending for the account can never be granted now: their flows' access
    steps are reported failed, so that they do not wait for ever.
    """
    await unit.store.close_account(account_id, flow_id, unit.cause.time)
    login_ids = await unit.store.revoke_account(account_id, unit.cause.time)
    for pending_flow in await unit.store.drop_pending_of_account(account_id):
        if pending_flow != flow_id:
            unit.step_failed(
                pending_flow, ACCESS_STEP, f"account {account_id} was closed before the logins it names were known"
            )
    unit.record(
        AccessRevoked(
            flow_id=flow_id,
            scope=RevokedScope.ACCOUNT,
            subject_id=account_id,
            account_id=account_id,
            login_ids=tuple(login_ids),
            reason=shorten(reason),
        )
    )
