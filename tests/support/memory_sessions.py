"""An in-memory store with the protocol of the sessions service's PostgreSQL store, for unit tests
of its rules on a FakeUnitOfWork. It keeps exactly what the rules read back; the SQL and its
constraints (and the platform's pools the migration seeds) are proven by the real-stack tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from consumers.sessions.pools import Limits
from consumers.sessions.store import LoginStatus, PoolMember, SessionsStore
from schemas.users import SessionPolicy

#: The platform's pools, as the reference deployment's ``Config/Init/sessions-init.ps1`` (plxtra/xosp)
#: sets them and sql/0003_pools.sql seeds them: ``Pool Set XOSP Default`` (no ``-Sessions``,
#: ``-Connections``, ``-Grace`` nor ``-Resource``) and
#: ``Pool Set XOSP General -Sessions 1 -Connections 5 -Grace '00:00:04' -Resource``.
DEFAULT = Limits(max_sessions=None, max_connections=None, grace_period_seconds=None, resource_scoped=False)
GENERAL = Limits(max_sessions=1, max_connections=5, grace_period_seconds=4, resource_scoped=True)


def platform_pools() -> dict[str, Limits]:
    return {"Default": DEFAULT, "General": GENERAL}


@dataclass
class SessionsRow:
    status: LoginStatus = "not_created"
    policy: SessionPolicy | None = None
    #: Assigned from the policy; None without a policy.
    limits: Limits | None = None
    disabled: bool = False
    ended_reason: str | None = None
    changed_at: dt.datetime | None = None


@dataclass
class MemorySessions(SessionsStore):
    #: The pools in force by name: the platform's, as the migration seeds them.
    pools: dict[str, Limits] = field(default_factory=platform_pools)
    rows: dict[str, SessionsRow] = field(default_factory=dict)
    #: When each pool was last defined or changed by an event.
    pools_changed_at: dict[str, dt.datetime] = field(default_factory=dict)

    async def status(self, login_id: str) -> LoginStatus | None:
        row = self.rows.get(login_id)
        return None if row is None else row.status

    async def create(self, login_id: str, policy: SessionPolicy | None, limits: Limits | None, at: dt.datetime) -> bool:
        row = self.rows.setdefault(login_id, SessionsRow())
        row.status, row.policy, row.limits, row.changed_at = "created", policy, limits, at
        return row.disabled

    async def save_policy(self, login_id: str, policy: SessionPolicy, limits: Limits, at: dt.datetime) -> bool:
        row = self.rows.get(login_id)
        if row is None:  # an update of no row, as in SQL
            return False
        row.policy, row.limits, row.changed_at = policy, limits, at
        return row.disabled

    async def remove_policy(self, login_id: str, at: dt.datetime) -> str | None:
        row = self.rows[login_id]
        if row.policy is None:
            return None
        pool = row.policy.pool
        row.policy, row.limits, row.changed_at = None, None, at
        return pool

    async def end_sessions(self, login_id: str, reason: str, at: dt.datetime) -> None:
        row = self.rows.setdefault(login_id, SessionsRow())
        row.disabled, row.ended_reason, row.changed_at = True, reason, at

    async def enable(self, login_id: str, at: dt.datetime) -> SessionPolicy | None:
        row = self.rows.get(login_id)
        if row is None:
            return None
        row.disabled, row.ended_reason, row.changed_at = False, None, at
        return row.policy

    async def delete(self, login_id: str, at: dt.datetime) -> None:
        row = self.rows[login_id]
        row.status, row.policy, row.limits, row.changed_at = "deleted", None, None, at

    async def pool(self, name: str) -> Limits | None:
        return self.pools.get(name)

    async def pool_names(self) -> list[str]:
        return sorted(self.pools)

    async def save_pool(self, name: str, settings: Limits, at: dt.datetime) -> None:
        self.pools[name], self.pools_changed_at[name] = settings, at

    async def logins_in_pool(self, name: str) -> list[PoolMember]:
        return [
            PoolMember(login_id, row.policy.overrides, row.limits)
            for login_id, row in sorted(self.rows.items())
            if row.status == "created" and row.policy is not None and row.policy.pool == name
        ]

    async def save_limits(self, pool: str, limits: Mapping[str, Limits], at: dt.datetime) -> list[str]:
        saved = []
        for login_id, row in sorted(self.rows.items()):
            if login_id in limits and row.status == "created" and row.policy is not None and row.policy.pool == pool:
                row.limits, row.changed_at = limits[login_id], at
                if not row.disabled:
                    saved.append(login_id)
        return saved
