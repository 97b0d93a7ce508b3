"""Handlers of Resource Authorisation for its logins and accounts: one function per event type.

From ``xosp.users``: a login (the asset ``User:<login id>``), its roles and its associations with
markets (steps ``authorisation.permissions``, ``authorisation.revoke``, ``authorisation.enable``).
From ``xosp.accounts``: a login's association with a trading account (``authorisation.access``,
``authorisation.revoke``). From ``xosp.registry.events``: an account the registry closed loses
every association, with the registry's flow id (from ``xosp.oms.events``, the one the OMS closed,
in a deployment without the registry). From ``xosp.provisioning.events``: a failed
account opening is compensated. A step this service refuses (a login created twice, an account it
never saw opened) is reported with ``StepFailed``; only an update of a login never created, which
cannot be merely early, is dead-lettered. Groups and markets have handlers of their own
(groups.py, markets.py).
"""

from __future__ import annotations

from consumers.authorisation import access
from consumers.authorisation.locks import SERVICE_NAME
from consumers.authorisation.permissions import in_force, role_permissions, shorten
from consumers.authorisation.reach import Asset, Association
from consumers.authorisation.store import EntitlementsUnit
from consumers.runtime import DomainError, MissingPrerequisite
from infrastructure.deployment import registry_runs
from schemas.accounts import AccountLogin, AccountLoginLinked, AccountLoginUnlinked, TradingAccountOpened
from schemas.authorisation import AccessRevoked, PermissionsGranted, RevokedScope
from schemas.groups import AssetType
from schemas.oms import AccountState, OmsAccountStateChanged
from schemas.provisioning import FlowKind, ProvisioningFailed
from schemas.registry import RegistryAccountStateChanged
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated

PERMISSIONS_STEP = "authorisation.permissions"
REVOKE_STEP = "authorisation.revoke"
ENABLE_STEP = "authorisation.enable"
ACCESS_STEP = access.ACCESS_STEP


# --- xosp.users ---------------------------------------------------------------------------------


async def user_created(event: UserCreated, unit: EntitlementsUnit) -> None:
    """Define the login with its roles and markets, grant every pending association that waited
    only for it, and announce the accounts it reaches through groups it was associated with
    before it arrived.

    A backlog of logins is mostly this handler, so it reads and writes as little as it can: the
    login, its permissions and markets in one statement, which also says whether anything was
    associated with it before it arrived and whether an association waits for it; only then does
    it read the associations now ready, and what it reaches (its permissions follow from that:
    permissions.in_force). Otherwise it reaches its own markets and nothing else (a market leads
    nowhere further)."""
    roles, markets = [str(role) for role in event.roles], list(event.markets)
    own = role_permissions(roles)
    creation = await unit.store.create_login(event.login_id, roles, markets, own, unit.flow_id, unit.cause.time)
    if creation.existing is not None:
        unit.step_failed(unit.flow_id, PERMISSIONS_STEP, f"login {event.login_id} already exists ({creation.existing})")
        return
    ready = await unit.store.ready_for_login(event.login_id) if creation.awaited else []
    await access.apply_ready(unit, ready)
    root = Asset.user(event.login_id)
    if ready or creation.associated_before:
        reached = await unit.store.reached(root)
    else:
        reached = [Association(root, Asset(AssetType.MARKET, market)) for market in markets]
    access.announce_reached(unit, root, reached, given_only=True)
    unit.record(
        PermissionsGranted(
            flow_id=unit.flow_id, login_id=event.login_id, permissions=in_force(own, root, reached), login_active=True
        )
    )


async def user_updated(event: UserUpdated, unit: EntitlementsUnit) -> None:
    """New roles or markets replace the login's permissions; other fields are not authorisation's."""
    if event.roles is None and event.markets is None:
        return
    status = await unit.store.login_status(event.login_id)
    if status is None:
        raise MissingPrerequisite(
            f"login {event.login_id} is unknown: an update follows its UserCreated",
            waits_for=event.login_id,
            needs="the login's UserCreated",
            service="authorisation",
        )
    if status == "deleted":
        raise DomainError(
            f"login {event.login_id} is deleted: no update follows its UserDeleted; fix the upstream identity "
            "system and discard this event (`xbus dlq discard authorisation --id ... --reason ...`)"
        )
    roles, markets = await unit.store.update_roles_and_markets(
        event.login_id,
        None if event.roles is None else [str(role) for role in event.roles],
        event.markets,
        unit.cause.time,
    )
    await _set_roles_and_markets(unit, event.login_id, roles, markets)
    await _report_permissions(unit, event.login_id)


async def user_disabled(event: UserDisabled, unit: EntitlementsUnit) -> None:
    """A disabled login loses everything: its rows stay, marked revoked, for an enable to restore."""
    if await _refused(unit, event.login_id, REVOKE_STEP):
        return
    await unit.store.set_login_status(event.login_id, "disabled", unit.cause.time)
    await unit.store.revoke_login(event.login_id, unit.cause.time)
    _report_login_revoked(unit, event.login_id, event.reason)


async def user_enabled(event: UserEnabled, unit: EntitlementsUnit) -> None:
    """Restore what the disable revoked (not what an unlink or a close took away)."""
    if await _refused(unit, event.login_id, ENABLE_STEP):
        return
    await unit.store.set_login_status(event.login_id, "active", unit.cause.time)
    await unit.store.restore_login(event.login_id)
    await _report_permissions(unit, event.login_id)
    # Services that keep account access themselves (the OMS's trade rights) learn it from these:
    # the disable revoked it with an AccessRevoked, the enable gives it back the same way it was given.
    await access.announce_reach(unit, event.login_id)


async def user_deleted(event: UserDeleted, unit: EntitlementsUnit) -> None:
    """Revoke everything for good (not a tracked flow); an unknown login has nothing to revoke."""
    if await unit.store.login_status(event.login_id) is None:
        return
    await unit.store.set_login_status(event.login_id, "deleted", unit.cause.time)
    await unit.store.revoke_login(event.login_id, unit.cause.time)
    _report_login_revoked(unit, event.login_id, event.reason or "login deleted")


# --- xosp.accounts ------------------------------------------------------------------------------


async def account_opened(event: TradingAccountOpened, unit: EntitlementsUnit) -> None:
    named = [login.login_id for login in event.logins]
    opening = await unit.store.open_account(event.account_id, unit.flow_id, named, unit.cause.time)
    if opening.opened_by is not None:
        unit.step_failed(
            unit.flow_id, ACCESS_STEP, f"account {event.account_id} was already opened (flow {opening.opened_by})"
        )
        return
    await access.request(unit, unit.flow_id, event.account_id, event.logins, opening.unknown_logins)
    if opening.failed is not None:  # the opening's failure overtook it: compensate at once
        await access.close_account(unit, event.account_id, unit.flow_id, opening.failed)


async def login_linked(event: AccountLoginLinked, unit: EntitlementsUnit) -> None:
    if await _account_refused(unit, event.account_id, ACCESS_STEP):
        return
    login = AccountLogin(login_id=event.login_id, rights=event.rights)
    await access.request(
        unit, unit.flow_id, event.account_id, [login], await unit.store.unknown_logins([event.login_id])
    )


async def login_unlinked(event: AccountLoginUnlinked, unit: EntitlementsUnit) -> None:
    """Revoke the login's access; if the link is still pending, it is taken out of it instead."""
    if await unit.store.account(event.account_id) is None:
        unit.step_failed(unit.flow_id, REVOKE_STEP, f"account {event.account_id} is unknown to authorisation")
        return
    # the pending associations first: a grant of one of them under way elsewhere is waited for,
    # so that the revocation then sees it (store.py, ready_for_login)
    await unit.store.drop_pending_login(event.account_id, event.login_id)
    await access.unlink(unit, event.account_id, event.login_id)


# --- follow-ups of other services ---------------------------------------------------------------


async def registry_account_state_changed(event: RegistryAccountStateChanged, unit: EntitlementsUnit) -> None:
    """Take the close step of a ``TradingAccountClosed`` flow once the registry has closed the
    account (an account the registry refuses to close keeps its access); suspensions are not ours."""
    if event.state != AccountState.CLOSED:
        return
    await access.close_account(unit, event.account_id, event.flow_id, event.reason or "account closed in the registry")


async def oms_account_state_changed(event: OmsAccountStateChanged, unit: EntitlementsUnit) -> None:
    """The same, in a deployment without the registry (``XBUS_REGISTRY=false``), where the OMS is
    the book of record and closes the account itself once it holds nothing (consumers/oms/funds.py).
    With the registry, the registry's closing is the one that counts, and the OMS only follows it."""
    if event.state != AccountState.CLOSED or registry_runs():
        return
    await access.close_account(unit, event.account_id, event.flow_id, event.reason or "account closed in the OMS")


async def provisioning_failed(event: ProvisioningFailed, unit: EntitlementsUnit) -> None:
    """Compensate a failed account opening: revoke the access granted for it.

    Only an opening is undone (a refused withdrawal or close is an account flow too, and leaves
    access as it is), so the flow is matched against the openings applied here. One not applied
    yet is remembered: its opening is compensated as soon as it arrives.
    """
    if event.kind != FlowKind.ACCOUNT or event.service == SERVICE_NAME:
        return
    reason = shorten(f"compensation: {event.step} failed: {event.reason}")
    account_id = await unit.store.account_opened_by(event.flow_id)
    if account_id is None:
        await unit.store.remember_failed_flow(event.flow_id, event.entity_id, reason, unit.cause.time)
        return
    await access.close_account(unit, account_id, event.flow_id, reason)


# --- helpers ------------------------------------------------------------------------------------


async def _set_roles_and_markets(unit: EntitlementsUnit, login_id: str, roles: list[str], markets: list[str]) -> None:
    """The login's roles as permissions, its markets as its associations with ``Market`` assets."""
    await unit.store.replace_permissions(login_id, role_permissions(roles), unit.cause.time)
    await unit.store.associate_markets(login_id, markets, unit.flow_id, unit.cause.time)


async def _report_permissions(unit: EntitlementsUnit, login_id: str) -> None:
    permissions = await unit.store.effective_permissions(login_id)
    active = await unit.store.login_status(login_id) == "active"
    unit.record(
        PermissionsGranted(flow_id=unit.flow_id, login_id=login_id, permissions=permissions, login_active=active)
    )


def _report_login_revoked(unit: EntitlementsUnit, login_id: str, reason: str) -> None:
    unit.record(
        AccessRevoked(
            flow_id=unit.flow_id,
            scope=RevokedScope.LOGIN,
            subject_id=login_id,
            login_ids=(login_id,),
            reason=shorten(reason),
        )
    )


async def _refused(unit: EntitlementsUnit, login_id: str, step: str) -> bool:
    """Report ``step`` failed for a login that cannot change status (never created, or deleted)."""
    status = await unit.store.login_status(login_id)
    if status is None or status == "deleted":
        unit.step_failed(unit.flow_id, step, f"login {login_id} is {'deleted' if status else 'unknown'}")
        return True
    return False


async def _account_refused(unit: EntitlementsUnit, account_id: str, step: str) -> bool:
    """Report ``step`` failed for an account never opened here, or closed."""
    known = await unit.store.account(account_id)
    if known is None or known.opened_flow_id is None:
        unit.step_failed(unit.flow_id, step, f"account {account_id} was never opened")
        return True
    if known.state == "closed":
        unit.step_failed(unit.flow_id, step, f"account {account_id} is closed")
        return True
    return False
