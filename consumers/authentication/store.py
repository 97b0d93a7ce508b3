"""The authentication service's state: logins. Every time written is the handled event's time.

Handlers reach it through ``unit.store`` (a :class:`Logins`); the service runs them on
:class:`PostgresLogins`, over the batch's transaction, and unit tests on an in-memory one
(tests/support/memory_authentication.py), so the rules are tested without a database and the SQL by the
real-stack tests.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from consumers.runtime import UnitOfWork
from consumers.runtime.unit_of_work import DbConnection
from schemas.users import UserCreated, UserUpdated


class Logins(Protocol):
    async def login_status(self, login_id: str) -> str | None:
        """The login's status (active, disabled, deleted), or None when it was never created."""

    async def insert_login(self, event: UserCreated, flow_id: str, at: dt.datetime) -> None:
        """A new login, active."""

    async def update_profile(self, event: UserUpdated, at: dt.datetime) -> None:
        """Change the profile fields the event carries; an absent field keeps its value."""

    async def set_status(self, login_id: str, status: str, reason: str | None, at: dt.datetime) -> None:
        """The login's new status and why."""


#: What the handlers are given.
LoginsUnit = UnitOfWork[Logins]


class PostgresLogins(Logins):
    def __init__(self, connection: DbConnection) -> None:
        self._db = connection

    async def login_status(self, login_id: str) -> str | None:
        status = await self._db.fetchval("select status from logins where login_id = $1", login_id)
        return None if status is None else str(status)

    async def insert_login(self, event: UserCreated, flow_id: str, at: dt.datetime) -> None:
        await self._db.execute(
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

    async def update_profile(self, event: UserUpdated, at: dt.datetime) -> None:
        await self._db.execute(
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

    async def set_status(self, login_id: str, status: str, reason: str | None, at: dt.datetime) -> None:
        await self._db.execute(
            "update logins set status = $2, status_reason = $3, updated_at = $4 where login_id = $1",
            login_id,
            status,
            reason,
            at,
        )
