"""The authentication service's wiring: the ``xosp.users`` events it handles and its migrations."""

from __future__ import annotations

from pathlib import Path

from consumers.authentication import handlers
from consumers.runtime import Service
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated

SERVICE = Service(
    name="authentication",
    handlers={
        UserCreated.event_type: handlers.user_created,
        UserUpdated.event_type: handlers.user_updated,
        UserDisabled.event_type: handlers.user_disabled,
        UserEnabled.event_type: handlers.user_enabled,
        UserDeleted.event_type: handlers.user_deleted,
    },
    migrations=Path(__file__).parent / "sql",
    description="The Auth Server: logins it can identify (username, email, display name, status).",
)
