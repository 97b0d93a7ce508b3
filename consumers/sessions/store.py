"""The SQL of Session Management, run in the handler's unit of work (its schema is the search path)."""

from __future__ import annotations

import datetime as dt

from consumers.runtime import UnitOfWork
from consumers.sessions.pools import Limits
from schemas.users import SessionLimits, SessionPolicy


async def save_policy(
    unit: UnitOfWork, login_id: str, policy: SessionPolicy, limits: Limits | None, at: dt.datetime
) -> bool:
    """Keep ``policy`` and the limits assigned from it; return whether the login is disabled."""
    overrides = policy.overrides
    return bool(
        await unit.fetchval(
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


async def end_sessions(unit: UnitOfWork, login_id: str, reason: str, at: dt.datetime) -> None:
    """Mark the login disabled and its sessions ended; a login never seen gets a row, so that a
    policy it is given while disabled is not put in force before it is enabled."""
    await unit.execute(
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


async def enable(unit: UnitOfWork, login_id: str, at: dt.datetime) -> SessionPolicy | None:
    """Mark the login enabled; return the policy it keeps (None: it has none)."""
    row = await unit.fetchrow(
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


async def forget(unit: UnitOfWork, login_id: str) -> None:
    await unit.execute("delete from logins where login_id = $1", login_id)
