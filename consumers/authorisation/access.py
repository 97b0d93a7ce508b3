"""Trading-account access as flows need it: grant now or keep pending, apply what became ready,
close an account, and announce what a login may do on the accounts it reaches. Shared by the
handlers of ``xosp.users``, ``xosp.accounts`` and the follow-up topics, which all end up granting
or revoking the same associations.

A reader that keeps access itself (the OMS's trade rights) replaces a login's rights on an account
with those an ``AccountAccessGranted`` names, and forgets them on an ``AccessRevoked``. So what is
announced for a login is always everything it may do there: its own association's rights and
those its groups give (reach.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers.authorisation import reach
from consumers.authorisation.permissions import shorten
from consumers.authorisation.reach import Asset, Association
from consumers.authorisation.store import EntitlementsUnit, Pending
from schemas.accounts import AccountLogin
from schemas.authorisation import AccessRevoked, AccountAccessGranted, RevokedScope
from schemas.types import AccountRight

ACCESS_STEP = "authorisation.access"


async def request(
    unit: EntitlementsUnit, flow_id: str, account_id: str, logins: Sequence[AccountLogin], unknown: Sequence[str]
) -> None:
    """Grant the association of ``flow_id`` now, or keep it whole until its last login is known
    (``unknown``: those of ``logins`` never created).

    Topics are not ordered against each other: an account may name a login whose ``UserCreated``
    this service has not read yet. That is no error: the association waits (``StepWaiting``)
    and :func:`apply_ready` grants it, with this flow id, when the login arrives.
    """
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
    """Associate ``logins`` with the account, and announce the access now in force, with what
    each login's groups add to it. A login associated while disabled (or with a closed account)
    is on record but left out of the ``AccountAccessGranted``: a reader such as the OMS must not
    give it rights. Its access is announced when it is enabled (``user_enabled`` announces every
    account it reaches again)."""
    in_force = await unit.store.grant(account_id, logins, flow_id, unit.cause.time)
    in_groups = [granted.login_id for granted in in_force if granted.in_group]
    reached = await unit.store.reached_by_logins(in_groups) if in_groups else {}
    own = {login.login_id: login.rights for login in logins}
    announced = [
        AccountLogin(
            login_id=granted.login_id,
            # a login in no group has the rights of its own association there, as granted
            rights=reach.account_rights(Asset.user(granted.login_id), reached[granted.login_id]).get(account_id, ())
            if granted.in_group
            else own[granted.login_id],
        )
        for granted in in_force
    ]
    unit.record(AccountAccessGranted(flow_id=flow_id, account_id=account_id, logins=tuple(announced)))


async def apply_ready(unit: EntitlementsUnit, ready: Sequence[Pending]) -> None:
    """Grant pending associations whose logins are now all known, each with its own flow id."""
    for pending in ready:
        await grant(unit, pending.flow_id, pending.account_id, await unit.store.take_pending(pending.flow_id))


async def unlink(unit: EntitlementsUnit, account_id: str, login_id: str) -> None:
    """Take the login's own association with the account away, as step ``authorisation.revoke``
    of this flow; what its groups give it there stays, and is announced again."""
    await unit.store.revoke_account_login(account_id, login_id, unit.cause.time)
    await apply_ready(unit, await unit.store.ready_for_account(account_id))
    unit.record(
        AccessRevoked(
            flow_id=unit.flow_id,
            scope=RevokedScope.ACCOUNT_LOGIN,
            subject_id=account_id,
            account_id=account_id,
            login_ids=(login_id,),
            reason="login unlinked from the account",
        )
    )
    kept = await _rights(unit, login_id, account_id)
    if kept:
        unit.record(
            AccountAccessGranted(
                flow_id=unit.flow_id, account_id=account_id, logins=(AccountLogin(login_id=login_id, rights=kept),)
            )
        )


async def close_account(unit: EntitlementsUnit, account_id: str, flow_id: str, reason: str) -> None:
    """Revoke every login's access to the account for good, as step ``authorisation.revoke`` of
    ``flow_id`` (a close) or as the compensation of ``flow_id`` (a failed opening); a group's
    association with it is revoked too.

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


async def announce_reach(unit: EntitlementsUnit, login_id: str) -> None:
    """Announce every account the login reaches, with its rights there, by account id."""
    root = Asset.user(login_id)
    announce_reached(unit, root, await unit.store.reached(root))


def announce_reached(
    unit: EntitlementsUnit, root: Asset, reached: Sequence[Association], *, given_only: bool = False
) -> None:
    """Announce every account the login ``root`` reached, with its rights there, by account id
    (only those it reaches through its groups alone when ``given_only``: its own associations'
    grants were announced as they were granted)."""
    through_groups = reach.given_only(root, reached)
    for account_id, rights in reach.account_rights(root, reached).items():
        if not given_only or account_id in through_groups:
            login = AccountLogin(login_id=root.code, rights=rights)
            unit.record(AccountAccessGranted(flow_id=unit.flow_id, account_id=account_id, logins=(login,)))


async def _rights(unit: EntitlementsUnit, login_id: str, account_id: str) -> tuple[AccountRight, ...]:
    """The login's rights on the account: its own association's and its groups'; () for none."""
    root = Asset.user(login_id)
    return reach.account_rights(root, await unit.store.reached(root)).get(account_id, ())
