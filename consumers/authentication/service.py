"""The authentication service's wiring: the ``xosp.users`` events it handles and its migrations."""

from __future__ import annotations

from pathlib import Path

from consumers.authentication import handlers
from consumers.authentication.store import PostgresLogins
from consumers.runtime import Service
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated

SERVICE = Service(
    name="authentication",
    handlers={
        UserCreated: handlers.user_created,
        UserUpdated: handlers.user_updated,
        UserDisabled: handlers.user_disabled,
        UserEnabled: handlers.user_enabled,
        UserDeleted: handlers.user_deleted,
    },
    store=PostgresLogins,
    migrations=Path(__file__).parent / "sql",
    description="The Auth Server: logins it can identify (username, email, display name, status).",
)
