"""The authentication service's SQL: logins. Every time written is the handled event's time."""

from __future__ import annotations

import datetime as dt

from consumers.runtime import UnitOfWork
from schemas.users import UserCreated, UserUpdated


async def login_status(unit: UnitOfWork, login_id: str) -> str | None:
    """The login's status (active, disabled, deleted), or None when it was never created."""
    status = await unit.fetchval("select status from logins where login_id = $1", login_id)
    return None if status is None else str(status)


async def insert_login(unit: UnitOfWork, event: UserCreated, flow_id: str, at: dt.datetime) -> None:
    await unit.execute(
        """
        insert into logins (login_id, username, email, display_name, status, credential_ref,
                            created_flow_id, created_at, updated_at)
        values ($1, $2, $3, $4, 'active', $5, $6, $7, $7)
        """,
        event.login_id,
        event.username,
        event.email,
        event.display_name,
        event.credential_ref,
        flow_id,
        at,
    )


async def update_profile(unit: UnitOfWork, event: UserUpdated, at: dt.datetime) -> None:
    """Change the profile fields the event carries; an absent field keeps its value."""
    await unit.execute(
        """
        update logins set username = coalesce($2, username), email = coalesce($3, email),
                          display_name = coalesce($4, display_name), updated_at = $5
        where login_id = $1
        """,
        event.login_id,
        event.username,
        event.email,
        event.display_name,
        at,
    )


async def set_status(unit: UnitOfWork, login_id: str, status: str, reason: str | None, at: dt.datetime) -> None:
    await unit.execute(
        "update logins set status = $2, status_reason = $3, updated_at = $4 where login_id = $1",
        login_id,
        status,
        reason,
        at,
    )
