"""Reading Session Management's tables, for the CLI and the HTTP API.

Every function takes a connection whose ``search_path`` is the service's schema
(``settings.db_schema("sessions")``), as the service's own SQL does: no query names a schema.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from consumers.runtime.unit_of_work import DbConnection
from consumers.sessions.pools import Limits
from consumers.sessions.store import limits_of_row
from schemas.users import SessionLimits


@dataclass(frozen=True)
class LoginLimits:
    login_id: str
    #: ``created``; ``not_created`` (only disabled so far); ``deleted`` (no policy or limits left).
    status: str
    #: None: the login has no session policy.
    pool: str | None
    overrides: SessionLimits
    #: The pool's limits with the overrides applied (each None: no limit of that kind); None
    #: without a policy, or for a pool an earlier release refused.
    limits: Limits | None
    disabled: bool
    sessions_ended_at: dt.datetime | None
    ended_reason: str | None
    changed_at: dt.datetime

    @property
    def in_force(self) -> bool:
        """Whether the login's sessions are held to limits now (assigned, and not ended)."""
        return self.limits is not None and not self.disabled


async def limits(connection: DbConnection, login_id: str) -> LoginLimits | None:
    """The login's policy and limits; None for a login Session Management has not heard of."""
    row = await connection.fetchrow("select * from logins where login_id = $1", login_id)
    if row is None:
        return None
    assigned = limits_of_row(row) if row["resource_scoped"] is not None else None
    return LoginLimits(
        login_id=row["login_id"],
        status=row["status"],
        pool=row["pool"],
        overrides=SessionLimits(
            max_sessions=row["override_max_sessions"],
            max_connections=row["override_max_connections"],
            grace_period_seconds=row["override_grace_period_seconds"],
        ),
        limits=assigned,
        disabled=row["disabled"],
        sessions_ended_at=row["sessions_ended_at"],
        ended_reason=row["ended_reason"],
        changed_at=row["changed_at"],
    )


@dataclass(frozen=True)
class Pool:
    name: str
    settings: Limits
    #: The time of the event that last defined or changed it; None: the platform's, as seeded.
    changed_at: dt.datetime | None


async def pool(connection: DbConnection, name: str) -> Pool | None:
    """A pool in force: defined or changed by events, or the platform's as sql/0003_pools.sql seeds
    it; None for a pool Session Management does not have."""
    row = await connection.fetchrow(
        """
        select name, max_sessions, max_connections, grace_period_seconds, resource_scoped, changed_at
        from pools where name = $1
        union all
        select name, max_sessions, max_connections, grace_period_seconds, resource_scoped, null
        from reference_pools r where name = $1 and not exists (select 1 from pools p where p.name = r.name)
        """,
        name,
    )
    if row is None:
        return None
    return Pool(row["name"], limits_of_row(row), row["changed_at"])
