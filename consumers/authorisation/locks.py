"""The entities each event Resource Authorisation reads locks (``Service.locks``), so that batches
of other logins and accounts are applied at the same time and two that meet wait for each other.

The invariant that spans topics: an account's event names logins whose ``UserCreated`` comes on
another topic, applied by another partition's batch at the same moment; each would miss the
other's uncommitted rows and leave the association pending for good. Both lock the login, so the
later waits for the earlier and then sees its rows. An account's events, its close by the
registry and the compensation of a failed opening lock the account: an opening and its failure
arriving at once must not miss each other either. (A login's arrival also grants associations
pending for accounts it holds no lock on: the store holds such an account's row instead,
``Entitlements.hold_account``.)
"""

from __future__ import annotations

from schemas import Event
from schemas.accounts import AccountLoginLinked, AccountLoginUnlinked, TradingAccountOpened
from schemas.provisioning import FlowKind, ProvisioningFailed
from schemas.registry import RegistryAccountStateChanged
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated


def entities_of(event: Event) -> list[str]:
    """The lock names applying ``event`` needs."""
    match event:
        case UserCreated() | UserUpdated() | UserDisabled() | UserEnabled() | UserDeleted():
            return [f"login:{event.login_id}"]
        case TradingAccountOpened():
            return [f"account:{event.account_id}", *(f"login:{login.login_id}" for login in event.logins)]
        case AccountLoginLinked() | AccountLoginUnlinked():
            return [f"account:{event.account_id}", f"login:{event.login_id}"]
        case RegistryAccountStateChanged():
            return [f"account:{event.account_id}"]
        case ProvisioningFailed() if event.kind == FlowKind.ACCOUNT:
            return [f"account:{event.entity_id}"]
    return []
