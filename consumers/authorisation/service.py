"""Resource Authorisation's wiring: what it reads from ``xosp.users``, ``xosp.accounts``,
``xosp.groups``, ``xosp.exchanges`` (markets), ``xosp.registry.events`` (closed accounts) and
``xosp.provisioning.events`` (compensation)."""

from __future__ import annotations

from pathlib import Path

from consumers.authorisation import groups, handlers, markets
from consumers.authorisation.locks import GROUP_GRAPH, entities_of
from consumers.authorisation.pending_locks import pending_locks
from consumers.authorisation.store import PostgresEntitlements
from consumers.runtime import Service
from schemas.accounts import AccountLoginLinked, AccountLoginUnlinked, TradingAccountOpened
from schemas.exchanges import ExchangeAdded, ExchangeUpdated
from schemas.groups import GroupAssociationDefined, GroupAssociationUndefined, GroupDefined
from schemas.oms import OmsAccountStateChanged
from schemas.provisioning import ProvisioningFailed
from schemas.registry import RegistryAccountStateChanged
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated

SERVICE = Service(
    name=handlers.SERVICE_NAME,
    handlers={
        UserCreated: handlers.user_created,
        UserUpdated: handlers.user_updated,
        UserDisabled: handlers.user_disabled,
        UserEnabled: handlers.user_enabled,
        UserDeleted: handlers.user_deleted,
        TradingAccountOpened: handlers.account_opened,
        AccountLoginLinked: handlers.login_linked,
        AccountLoginUnlinked: handlers.login_unlinked,
        RegistryAccountStateChanged: handlers.registry_account_state_changed,
        OmsAccountStateChanged: handlers.oms_account_state_changed,
        ProvisioningFailed: handlers.provisioning_failed,
        GroupDefined: groups.group_defined,
        GroupAssociationDefined: groups.association_defined,
        GroupAssociationUndefined: groups.association_undefined,
        ExchangeAdded: markets.exchange_added,
        ExchangeUpdated: markets.exchange_updated,
    },
    store=PostgresEntitlements,
    migrations=Path(__file__).parent / "sql",
    # an account and the logins it names arrive on different topics at once; a group's
    # association reaches every entity (locks.py)
    locks=lambda event, _: entities_of(event),
    # the accounts whose pending associations the batch touches (pending_locks.py)
    locks_found=pending_locks,
    # every batch reads the group graph; a group's association changes it (locks.py)
    shared_lock=GROUP_GRAPH,
    description=(
        "Resource Authorisation: typed assets (logins, trading accounts, markets, groups) and the "
        "associations between them, followed transitively; per-login permissions and trading-account "
        "access with rights."
    ),
)
