"""Handlers of ``xosp.groups``: groups, and the associations from and to them.

A group's association changes what every login that reaches the group may do, through any
number of groups. Such an event holds the group graph alone (locks.py), reads what those logins
may do before and after the change, and announces the difference as a login's own association
is announced: ``AccountAccessGranted`` for the logins whose rights on an account are new or
different, ``AccessRevoked`` (scope ``account_login``) for those that lost them, and
``PermissionsGranted`` for those whose permissions changed. These events are no provisioning
flow: they carry the group event's id as their flow id, as the ``PermissionsGranted`` of a
``UserUpdated`` does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from consumers.authorisation import reach
from consumers.authorisation.permissions import shorten
from consumers.authorisation.reach import Asset
from consumers.authorisation.store import EntitlementsUnit
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted, RevokedScope
from schemas.groups import AssetType, GroupAssociationDefined, GroupAssociationUndefined, GroupDefined

#: What a login may do: its rights per account it reaches, and its permissions.
Standing = tuple[reach.AccountRights, tuple[str, ...]]


async def group_defined(event: GroupDefined, unit: EntitlementsUnit) -> None:
    """The asset ``Group:<group>`` with its name; what its associations give changes nothing."""
    await unit.store.define_asset(Asset(AssetType.GROUP, event.group), event.name, unit.flow_id, unit.cause.time)


async def association_defined(event: GroupAssociationDefined, unit: EntitlementsUnit) -> None:
    source, target = Asset.named(event.from_asset), Asset.named(event.to_asset)
    await _changing(
        unit,
        source,
        lambda: unit.store.define_association(source, target, event.rights, unit.flow_id, unit.cause.time),
        f"association {source} -> {target} defined",
    )


async def association_undefined(event: GroupAssociationUndefined, unit: EntitlementsUnit) -> None:
    source, target = Asset.named(event.from_asset), Asset.named(event.to_asset)
    await _changing(
        unit,
        source,
        lambda: unit.store.undefine_association(source, target),
        f"association {source} -> {target} removed",
    )


async def _changing(unit: EntitlementsUnit, source: Asset, change: Callable[[], Awaitable[None]], reason: str) -> None:
    """Apply ``change`` to an association from ``source`` and announce what it changed.

    Only the logins that reach ``source`` can reach more or less through an association from it,
    and a change of that association does not change which logins reach ``source``.
    """
    logins = await unit.store.logins_reaching(source)
    before = {login_id: await _standing(unit, login_id) for login_id in logins}
    await change()
    after = {login_id: await _standing(unit, login_id) for login_id in logins}
    _announce(unit, before, after, reason)


async def _standing(unit: EntitlementsUnit, login_id: str) -> Standing:
    root = Asset.user(login_id)
    rights = reach.account_rights(root, await unit.store.reached(root))
    return rights, await unit.store.effective_permissions(login_id)


def _announce(
    unit: EntitlementsUnit, before: Mapping[str, Standing], after: Mapping[str, Standing], reason: str
) -> None:
    """Per account, the logins whose rights are new or different, then those that lost them
    (with ``reason``); then each login whose permissions changed, by login id."""
    rights_before = {login_id: rights for login_id, (rights, _) in before.items()}
    rights_after = {login_id: rights for login_id, (rights, _) in after.items()}
    for change in reach.access_changes(rights_before, rights_after):
        if change.granted:
            unit.record(AccountAccessGranted(flow_id=unit.flow_id, account_id=change.account_id, logins=change.granted))
        if change.revoked:
            unit.record(
                AccessRevoked(
                    flow_id=unit.flow_id,
                    scope=RevokedScope.ACCOUNT_LOGIN,
                    subject_id=change.account_id,
                    account_id=change.account_id,
                    login_ids=change.revoked,
                    reason=shorten(reason),
                )
            )
    for login_id, (_, permissions) in sorted(after.items()):
        if permissions != before[login_id][1]:
            unit.record(
                PermissionsGranted(flow_id=unit.flow_id, login_id=login_id, permissions=permissions, login_active=True)
            )
