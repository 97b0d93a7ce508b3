"""An in-memory store with the protocol of the sessions service's PostgreSQL store, for unit tests
of its rules on a FakeUnitOfWork. It keeps exactly what the rules read back; the SQL and its
constraints are proven by the real-stack tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from consumers.sessions.pools import Limits
from consumers.sessions.store import LoginStatus, SessionsStore
from schemas.users import SessionPolicy


@dataclass
class SessionsRow:
    status: LoginStatus = "not_created"
    policy: SessionPolicy | None = None
    #: Assigned from the policy; None when the policy was refused (an unknown pool).
    limits: Limits | None = None
    disabled: bool = False
    ended_reason: str | None = None
    changed_at: dt.datetime | None = None


@dataclass
class MemorySessions(SessionsStore):
    rows: dict[str, SessionsRow] = field(default_factory=dict)

    async def status(self, login_id: str) -> LoginStatus | None:
        row = self.rows.get(login_id)
        return None if row is None else row.status

    async def create(self, login_id: str, policy: SessionPolicy | None, limits: Limits | None, at: dt.datetime) -> bool:
        row = self.rows.setdefault(login_id, SessionsRow())
        row.status, row.policy, row.limits, row.changed_at = "created", policy, limits, at
        return row.disabled

    async def save_policy(self, login_id: str, policy: SessionPolicy, limits: Limits | None, at: dt.datetime) -> bool:
        row = self.rows.get(login_id)
        if row is None:  # an update of no row, as in SQL
            return False
        row.policy, row.limits, row.changed_at = policy, limits, at
        return row.disabled

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
