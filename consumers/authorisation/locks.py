"""The entities each event Resource Authorisation reads locks (``Service.locks``), so that batches
of other logins and accounts are applied at the same time and two that meet wait for each other.

The invariant that spans topics: an account's event names logins whose ``UserCreated`` comes on
another topic, applied by another partition's batch at the same moment; each would miss the
other's uncommitted rows and leave the association pending for good. Both lock the login, so the
later waits for the earlier and then sees its rows. An account's events, its close by the
registry and the compensation of a failed opening lock the account: an opening and its failure
arriving at once must not miss each other either. (A login's arrival also grants associations
pending for accounts no event of its batch names: those accounts' pending locks are found in the
tables once these are held, pending_locks.py.)

Groups reach across every entity: a group's association changes what each of its members
reaches, through any number of groups, and none of them can be named before reading the
associations. So the group graph has a lock of its own, :data:`GROUP_GRAPH`: an event defining
or removing a group's association holds it alone (batch locks are exclusive), and every other
batch holds it shared (``Service.shared_lock``: the runtime takes it in the statement that takes
the batch's last locks, after them; one statement a batch, where the store took it once per
event). Batches of logins and accounts share it and run side by side; a
group's event waits for them to end and they for it, so what each computes from the groups (the
rights it announces) is what the other committed. Its name sorts after every entity's (``~``
after letters), so a batch takes it last: a group's batch never holds it while it waits for an
entity another batch holds, and a batch holding it shared holds its entities already. Neither
waits for the other in a cycle.
"""

from __future__ import annotations

from schemas import Event
from schemas.accounts import AccountLoginLinked, AccountLoginUnlinked, TradingAccountOpened
from schemas.groups import GroupAssociationDefined, GroupAssociationUndefined
from schemas.oms import OmsAccountStateChanged
from schemas.provisioning import FlowKind, ProvisioningFailed
from schemas.registry import RegistryAccountStateChanged
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated

SERVICE_NAME = "authorisation"
ACCOUNT = "account:"
#: The lock of the group graph (see the module's doc).
GROUP_GRAPH = "~groups"


def entities_of(event: Event) -> list[str]:
    """The lock names applying ``event`` needs."""
    match event:
        case UserCreated() | UserUpdated() | UserDisabled() | UserEnabled() | UserDeleted():
            return [f"login:{event.login_id}"]
        case TradingAccountOpened():
            return [f"{ACCOUNT}{event.account_id}", *(f"login:{login.login_id}" for login in event.logins)]
        case AccountLoginLinked() | AccountLoginUnlinked():
            return [f"{ACCOUNT}{event.account_id}", f"login:{event.login_id}"]
        case RegistryAccountStateChanged() | OmsAccountStateChanged():
            return [f"{ACCOUNT}{event.account_id}"]
        case ProvisioningFailed() if event.kind == FlowKind.ACCOUNT:
            return [f"{ACCOUNT}{event.entity_id}"]
        case GroupAssociationDefined() | GroupAssociationUndefined():
            return [GROUP_GRAPH]
    return []
