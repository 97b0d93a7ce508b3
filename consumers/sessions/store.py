"""Session Management's state: each login's policy, the limits in force and whether it is disabled.

Handlers reach it through ``unit.store`` (a :class:`SessionsStore`); the service runs them on
:class:`PostgresSessions`, over the batch's transaction (its schema is the search path), and
unit tests on an in-memory one (tests/support/memory_sessions.py)."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from consumers.runtime import UnitOfWork
from consumers.runtime.unit_of_work import DbConnection
from consumers.sessions.pools import Limits
from schemas.users import SessionLimits, SessionPolicy


class SessionsStore(Protocol):
    async def save_policy(self, login_id: str, policy: SessionPolicy, limits: Limits | None, at: dt.datetime) -> bool:
        """Keep ``policy`` and the limits assigned from it; return whether the login is disabled."""

    async def end_sessions(self, login_id: str, reason: str, at: dt.datetime) -> None:
        """Mark the login disabled and its sessions ended; a login never seen gets a row, so that a
        policy it is given while disabled is not put in force before it is enabled."""

    async def enable(self, login_id: str, at: dt.datetime) -> SessionPolicy | None:
        """Mark the login enabled; return the policy it keeps (None: it has none)."""

    async def forget(self, login_id: str) -> None:
        """The login's policy and limits go."""


#: What the handlers are given.
SessionsUnit = UnitOfWork[SessionsStore]


class PostgresSessions(SessionsStore):
    def __init__(self, connection: DbConnection) -> None:
        self._db = connection

    async def save_policy(self, login_id: str, policy: SessionPolicy, limits: Limits | None, at: dt.datetime) -> bool:
        overrides = policy.overrides
        return bool(
            await self._db.fetchval(
                """
                insert into logins (login_id, pool, override_max_sessions, override_max_connections,
                                    override_grace_period_seconds, max_sessions, max_connections,
                                    grace_period_seconds, changed_at)
                values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                on conflict (login_id) do update set
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
            insert into logins (login_id, disabled, sessions_ended_at, ended_reason, changed_at)
            values ($1, true, $2, $3, $2)
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

    async def forget(self, login_id: str) -> None:
        await self._db.execute("delete from logins where login_id = $1", login_id)
