"""Wiring of Session Management: the events of ``xosp.users`` and ``xosp.session_pools`` it applies."""

from __future__ import annotations

from pathlib import Path

from consumers.runtime import Service
from consumers.sessions import handlers, pool_handlers
from consumers.sessions.store import PostgresSessions
from schemas.session_pools import SessionPoolChanged, SessionPoolDefined
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserSessionPolicyRemoved, UserUpdated

SERVICE = Service(
    name="sessions",
    handlers={
        UserCreated: handlers.user_created,
        UserUpdated: handlers.user_updated,
        UserDisabled: handlers.user_disabled,
        UserEnabled: handlers.user_enabled,
        UserDeleted: handlers.user_deleted,
        UserSessionPolicyRemoved: handlers.user_session_policy_removed,
        SessionPoolDefined: pool_handlers.session_pool_defined,
        SessionPoolChanged: pool_handlers.session_pool_changed,
    },
    store=PostgresSessions,
    migrations=Path(__file__).parent / "sql",
    description=("Session Management: session pools, and per-login pool and limits; ends sessions of disabled logins."),
)
