"""The OMS's handlers of ``xosp.authorisation.events``: which logins may trade on which account.

Rights in force = granted (the account's partition: grants, unlinks, closes, in their order) and
the login not disabled (the login's partition: its disables and enables, in theirs). The two
partitions are read in no order between them, so neither handler looks at the other's table:
the end state is the same whichever was read first (docs/exchanges.md, "Trade rights").
"""

from __future__ import annotations

from consumers.oms.store import OmsUnit
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted


async def account_access_granted(event: AccountAccessGranted, unit: OmsUnit) -> None:
    """Logins' rights on the account, recorded; a disabled login's are not in force until it is enabled."""
    await unit.store.grant_rights(event.account_id, event.logins, event.flow_id)


async def access_revoked(event: AccessRevoked, unit: OmsUnit) -> None:
    """A disabled or deleted login (it is disabled here), an unlinked login or a closed account
    (the rights are gone)."""
    await unit.store.revoke_rights(event)


async def permissions_granted(event: PermissionsGranted, unit: OmsUnit) -> None:
    """A login active in Resource Authorisation is enabled here: its granted rights come into force.

    Authorisation also reports a disabled login's role or market update with ``PermissionsGranted``
    (``login_active`` false): such an event must not enable it. Events written before
    ``login_active`` existed carry None; for them, a login with permissions is active (a disabled
    login's are always none), so one active with none at all is enabled by the next event that
    names one (docs/exchanges.md, "Trade rights").
    """
    active = bool(event.permissions) if event.login_active is None else event.login_active
    if active:
        await unit.store.enable_login(event.login_id)
