"""Wiring of Session Management: the events of ``xosp.users`` it applies."""

from __future__ import annotations

from pathlib import Path

from consumers.runtime import Service
from consumers.sessions import handlers
from consumers.sessions.store import PostgresSessions
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated

SERVICE = Service(
    name="sessions",
    handlers={
        UserCreated: handlers.user_created,
        UserUpdated: handlers.user_updated,
        UserDisabled: handlers.user_disabled,
        UserEnabled: handlers.user_enabled,
        UserDeleted: handlers.user_deleted,
    },
    store=PostgresSessions,
    migrations=Path(__file__).parent / "sql",
    description="Session Management: per-login session pool and limits; ends sessions of disabled logins.",
)
