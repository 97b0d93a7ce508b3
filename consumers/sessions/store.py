"""Session Management's state: the pools in force, and each login's status, policy, the limits in
force and whether it is disabled.

Handlers reach it through ``unit.store`` (a :class:`SessionsStore`); the service runs them on
:class:`PostgresSessions`, over the batch's transaction (its schema is the search path), and
unit tests on an in-memory one (tests/support/memory_sessions.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from consumers.runtime import UnitOfWork
from consumers.runtime.unit_of_work import DbConnection
from consumers.sessions.pools import Limits
from schemas.users import SessionLimits, SessionPolicy

#: Where a login is in its life (sql/0002_login_status.sql): ``not_created``, heard of only through
#: a disabling; ``created``, its UserCreated applied; ``deleted``, kept without policy or limits.
LoginStatus = Literal["not_created", "created", "deleted"]


@dataclass(frozen=True)
class PoolMember:
    """A created login whose policy names a pool: its overrides and the limits assigned to it."""

    login_id: str
    overrides: SessionLimits
    #: None: none assigned (a pool an earlier release refused).
    limits: Limits | None


class SessionsStore(Protocol):
    async def status(self, login_id: str) -> LoginStatus | None:
        """The login's status; None for a login never heard of."""

    async def create(self, login_id: str, policy: SessionPolicy | None, limits: Limits | None, at: dt.datetime) -> bool:
        """Mark the login created with ``policy`` (None: it has none) and the limits assigned from
        it, keeping whether it is disabled (a disabling may come first); return that."""

    async def save_policy(self, login_id: str, policy: SessionPolicy, limits: Limits, at: dt.datetime) -> bool:
        """Keep a created login's new ``policy`` and the limits assigned from it; return whether the
        login is disabled."""

    async def remove_policy(self, login_id: str, at: dt.datetime) -> str | None:
        """Take a created login's policy and limits away; the pool it was in (None: it had none,
        and nothing changed)."""

    async def end_sessions(self, login_id: str, reason: str, at: dt.datetime) -> None:
        """Mark the login disabled and its sessions ended; a login never seen gets a row (not
        created), so that the policy it is created with is not put in force before it is enabled."""

    async def enable(self, login_id: str, at: dt.datetime) -> SessionPolicy | None:
        """Mark the login enabled; return the policy it keeps (None: it has none)."""

    async def delete(self, login_id: str, at: dt.datetime) -> None:
        """Mark the login deleted: its policy and limits go, its row stays."""

    async def pool(self, name: str) -> Limits | None:
        """The settings of pool ``name`` (None: no such pool), held until the transaction ends: a
        change of the pool waits for it, or, made first, is what this reads."""

    async def pool_names(self) -> list[str]:
        """The names of the pools in force, sorted."""

    async def save_pool(self, name: str, settings: Limits, at: dt.datetime) -> None:
        """Define pool ``name`` with ``settings``, or give it them."""

    async def logins_in_pool(self, name: str) -> list[PoolMember]:
        """The created logins whose policy names pool ``name``, by login id."""

    async def save_limits(self, pool: str, limits: Mapping[str, Limits], at: dt.datetime) -> list[str]:
        """Give each login of ``limits`` its limits, if it is still a created login of ``pool`` (one
        removed, moved or deleted meanwhile is left as it is); those of them not disabled."""


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
                                    grace_period_seconds, resource_scoped, changed_at)
                values ($1, 'created', $2, $3, $4, $5, $6, $7, $8, $9, $10)
                on conflict (login_id) do update set
                    status = 'created',
                    pool = excluded.pool,
                    override_max_sessions = excluded.override_max_sessions,
                    override_max_connections = excluded.override_max_connections,
                    override_grace_period_seconds = excluded.override_grace_period_seconds,
                    max_sessions = excluded.max_sessions,
                    max_connections = excluded.max_connections,
                    grace_period_seconds = excluded.grace_period_seconds,
                    resource_scoped = excluded.resource_scoped,
                    changed_at = excluded.changed_at
                returning disabled
                """,
                login_id,
                policy.pool if policy else None,
                overrides.max_sessions,
                overrides.max_connections,
                overrides.grace_period_seconds,
                *_limit_columns(limits),
                at,
            )
        )

    async def save_policy(self, login_id: str, policy: SessionPolicy, limits: Limits, at: dt.datetime) -> bool:
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
                    resource_scoped = $9,
                    changed_at = $10
                where login_id = $1
                returning disabled
                """,
                login_id,
                policy.pool,
                overrides.max_sessions,
                overrides.max_connections,
                overrides.grace_period_seconds,
                *_limit_columns(limits),
                at,
            )
        )

    async def remove_policy(self, login_id: str, at: dt.datetime) -> str | None:
        # ``kept`` is the row as it was (UPDATE ... RETURNING gives the new one): the pool it names.
        pool: str | None = await self._db.fetchval(
            f"""
            update logins l set {_NO_POLICY}, changed_at = $2
            from logins kept
            where l.login_id = $1 and kept.login_id = l.login_id and l.status = 'created' and l.pool is not null
            returning kept.pool
            """,
            login_id,
            at,
        )
        return pool

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
            f"""
            update logins set status = 'deleted', {_NO_POLICY}, changed_at = $2
            where login_id = $1
            """,
            login_id,
            at,
        )

    async def pool(self, name: str) -> Limits | None:
        row = await self._db.fetchrow(_POOL_HELD, name)
        if row is None:
            # The platform's pools are copied in the first time one is needed, so that their rows
            # can be held; all of them, in name order: two batches copying Default and General
            # one at a time, in the order their logins came, deadlocked (bench/backlog.py).
            await self._db.execute(
                """
                insert into pools (name, max_sessions, max_connections, grace_period_seconds, resource_scoped)
                select * from reference_pools order by name
                on conflict (name) do nothing
                """
            )
            row = await self._db.fetchrow(_POOL_HELD, name)
        return None if row is None else limits_of_row(row)

    async def pool_names(self) -> list[str]:
        rows = await self._db.fetch("select name from pools union select name from reference_pools order by name")
        return [row["name"] for row in rows]

    async def save_pool(self, name: str, settings: Limits, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into pools (name, max_sessions, max_connections, grace_period_seconds, resource_scoped, changed_at)
            values ($1, $2, $3, $4, $5, $6)
            on conflict (name) do update set
                max_sessions = excluded.max_sessions,
                max_connections = excluded.max_connections,
                grace_period_seconds = excluded.grace_period_seconds,
                resource_scoped = excluded.resource_scoped,
                changed_at = excluded.changed_at
            """,
            name,
            *_limit_columns(settings),
            at,
        )

    async def logins_in_pool(self, name: str) -> list[PoolMember]:
        rows = await self._db.fetch(
            "select * from logins where status = 'created' and pool = $1 order by login_id",
            name,
        )
        return [
            PoolMember(
                row["login_id"],
                SessionLimits(
                    max_sessions=row["override_max_sessions"],
                    max_connections=row["override_max_connections"],
                    grace_period_seconds=row["override_grace_period_seconds"],
                ),
                None if row["resource_scoped"] is None else limits_of_row(row),
            )
            for row in rows
        ]

    async def save_limits(self, pool: str, limits: Mapping[str, Limits], at: dt.datetime) -> list[str]:
        logins = sorted(limits)
        columns = [_limit_columns(limits[login]) for login in logins]
        rows = await self._db.fetch(
            """
            update logins l set
                max_sessions = u.max_sessions,
                max_connections = u.max_connections,
                grace_period_seconds = u.grace_period_seconds,
                resource_scoped = u.resource_scoped,
                changed_at = $7
            from unnest($2::text[], $3::int[], $4::int[], $5::int[], $6::bool[])
                as u(login_id, max_sessions, max_connections, grace_period_seconds, resource_scoped)
            where l.login_id = u.login_id and l.status = 'created' and l.pool = $1
            returning l.login_id, l.disabled
            """,
            pool,
            logins,
            *([column[index] for column in columns] for index in range(4)),
            at,
        )
        return sorted(row["login_id"] for row in rows if not row["disabled"])


#: A policy's columns, and the limits assigned from it, emptied.
_NO_POLICY = """pool = null, override_max_sessions = null, override_max_connections = null,
                override_grace_period_seconds = null, max_sessions = null, max_connections = null,
                grace_period_seconds = null, resource_scoped = null"""

#: A pool's row, held until the transaction ends: a change of the pool (an update) waits for it.
_POOL_HELD = """
select max_sessions, max_connections, grace_period_seconds, resource_scoped from pools where name = $1 for share
"""


def _limit_columns(limits: Limits | None) -> tuple[int | None, int | None, int | None, bool | None]:
    """The limits as their columns are written (all null: none assigned)."""
    if limits is None:
        return None, None, None, None
    return limits.max_sessions, limits.max_connections, limits.grace_period_seconds, limits.resource_scoped


def limits_of_row(row: Any) -> Limits:
    """Limits from a row of ``pools`` or ``logins`` (one with limits assigned)."""
    return Limits(row["max_sessions"], row["max_connections"], row["grace_period_seconds"], row["resource_scoped"])
