"""Session Management's state: each login's status, policy, the limits in force and whether it is
disabled.

Handlers reach it through ``unit.store`` (a :class:`SessionsStore`); the service runs them on
:class:`PostgresSessions`, over the batch's transaction (its schema is the search path), and
unit tests on an in-memory one (tests/support/memory_sessions.py)."""

from __future__ import annotations

import datetime as dt
from typing import Literal, Protocol

from consumers.runtime import UnitOfWork
from consumers.runtime.unit_of_work import DbConnection
from consumers.sessions.pools import Limits
from schemas.users import SessionLimits, SessionPolicy

#: Where a login is in its life (sql/0002_login_status.sql): ``not_created``, heard of only through
#: a disabling; ``created``, its UserCreated applied; ``deleted``, kept without policy or limits.
LoginStatus = Literal["not_created", "created", "deleted"]


class SessionsStore(Protocol):
    async def status(self, login_id: str) -> LoginStatus | None:
        """The login's status; None for a login never heard of."""

    async def create(self, login_id: str, policy: SessionPolicy | None, limits: Limits | None, at: dt.datetime) -> bool:
        """Mark the login created with ``policy`` (None: it has none) and the limits assigned from
        it, keeping whether it is disabled (a disabling may come first); return that."""

    async def save_policy(self, login_id: str, policy: SessionPolicy, limits: Limits | None, at: dt.datetime) -> bool:
        """Keep a created login's new ``policy`` and the limits assigned from it; return whether the
        login is disabled."""

    async def end_sessions(self, login_id: str, reason: str, at: dt.datetime) -> None:
        """Mark the login disabled and its sessions ended; a login never seen gets a row (not
        created), so that the policy it is created with is not put in force before it is enabled."""

    async def enable(self, login_id: str, at: dt.datetime) -> SessionPolicy | None:
        """Mark the login enabled; return the policy it keeps (None: it has none)."""

    async def delete(self, login_id: str, at: dt.datetime) -> None:
        """Mark the login deleted: its policy and limits go, its row stays."""


#: What the handlers are given.
SessionsUnit = UnitOfWork[SessionsStore]


class PostgresSessions(SessionsStore):
    def __init__(self, connection: DbConnection) -> None:
        self._db = connection

    async def status(self, login_id: str) -> LoginStatus | None:
        status: LoginStatus | None = await self._db.fetchval("select status from logins where login_id = $1", login_id)
        return status

    async def create(self, login_id: str, policy: SessionPolicy | None, limits: Limits | None, at: dt.datetime) -> bool:
        overrides = policy.overrides if policy else SessionLimits()
        return bool(
            await self._db.fetchval(
                """
                insert into logins (login_id, status, pool, override_max_sessions, override_max_connections,
                                    override_grace_period_seconds, max_sessions, max_connections,
                                    grace_period_seconds, changed_at)
                values ($1, 'created', $2, $3, $4, $5, $6, $7, $8, $9)
                on conflict (login_id) do update set
                    status = 'created',
                    pool = excluded.pool,
                    override_max_sessions = excluded.override_max_sessions,
                    override_max_connections = excluded.override_max_connections,
                    override_grace_period_seconds = excluded.override_grace_period_seconds,
                    max_sessions = excluded.max_sessions,
                    max_connections = excluded.max_connections,
                    grace_period_seconds = excluded.grace_period_seconds,
                    changed_at = excluded.changed_at
                returning disabled
                """,
                login_id,
                policy.pool if policy else None,
                overrides.max_sessions,
                overrides.max_connections,
                overrides.grace_period_seconds,
                limits.max_sessions if limits else None,
                limits.max_connections if limits else None,
                limits.grace_period_seconds if limits else None,
                at,
            )
        )

    async def save_policy(self, login_id: str, policy: SessionPolicy, limits: Limits | None, at: dt.datetime) -> bool:
        overrides = policy.overrides
        return bool(
            await self._db.fetchval(
                """
                update logins set
                    pool = $2,
                    override_max_sessions = $3,
                    override_max_connections = $4,
                    override_grace_period_seconds = $5,
                    max_sessions = $6,
                    max_connections = $7,
                    grace_period_seconds = $8,
                    changed_at = $9
                where login_id = $1
                returning disabled
                """,
                login_id,
                policy.pool,
                overrides.max_sessions,
                overrides.max_connections,
                overrides.grace_period_seconds,
                limits.max_sessions if limits else None,
                limits.max_connections if limits else None,
                limits.grace_period_seconds if limits else None,
                at,
            )
        )

    async def end_sessions(self, login_id: str, reason: str, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into logins (login_id, status, disabled, sessions_ended_at, ended_reason, changed_at)
            values ($1, 'not_created', true, $2, $3, $2)
            on conflict (login_id) do update set
                disabled = true, sessions_ended_at = $2, ended_reason = $3, changed_at = $2
            """,
            login_id,
            at,
            reason,
        )

    async def enable(self, login_id: str, at: dt.datetime) -> SessionPolicy | None:
        row = await self._db.fetchrow(
            """
            update logins set disabled = false, sessions_ended_at = null, ended_reason = null, changed_at = $2
            where login_id = $1
            returning pool, override_max_sessions, override_max_connections, override_grace_period_seconds
            """,
            login_id,
            at,
        )
        if row is None or row["pool"] is None:
            return None
        return SessionPolicy(
            pool=row["pool"],
            overrides=SessionLimits(
                max_sessions=row["override_max_sessions"],
                max_connections=row["override_max_connections"],
                grace_period_seconds=row["override_grace_period_seconds"],
            ),
        )

    async def delete(self, login_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            """
            update logins set
                status = 'deleted', pool = null, override_max_sessions = null, override_max_connections = null,
                override_grace_period_seconds = null, max_sessions = null, max_connections = null,
                grace_period_seconds = null, changed_at = $2
            where login_id = $1
            """,
            login_id,
            at,
        )
