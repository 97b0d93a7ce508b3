"""Resource Authorisation's wiring: what it reads from ``xosp.users``, ``xosp.accounts``,
``xosp.registry.events`` (closed accounts) and ``xosp.provisioning.events`` (compensation)."""

from __future__ import annotations

from pathlib import Path

from consumers.authorisation import handlers
from consumers.runtime import Service
from schemas.accounts import AccountLoginLinked, AccountLoginUnlinked, TradingAccountOpened
from schemas.provisioning import ProvisioningFailed
from schemas.registry import RegistryAccountStateChanged
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated

SERVICE = Service(
    name=handlers.SERVICE_NAME,
    handlers={
        UserCreated.event_type: handlers.user_created,
        UserUpdated.event_type: handlers.user_updated,
        UserDisabled.event_type: handlers.user_disabled,
        UserEnabled.event_type: handlers.user_enabled,
        UserDeleted.event_type: handlers.user_deleted,
        TradingAccountOpened.event_type: handlers.account_opened,
        AccountLoginLinked.event_type: handlers.login_linked,
        AccountLoginUnlinked.event_type: handlers.login_unlinked,
        RegistryAccountStateChanged.event_type: handlers.registry_account_state_changed,
        ProvisioningFailed.event_type: handlers.provisioning_failed,
    },
    migrations=Path(__file__).parent / "sql",
    # An account and the logins it names arrive on different topics, applied by different
    # partitions' transactions at once; each could miss the other's uncommitted rows and leave the
    # association pending for good. Applying one batch at a time rules that out (docs/provisioning.md).
    exclusive_batches=True,
    description="Resource Authorisation: per-login permissions and trading-account access with rights.",
)
