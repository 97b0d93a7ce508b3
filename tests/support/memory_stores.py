"""In-memory stores with the protocols of the services' PostgreSQL stores, for unit tests of the
services' rules on a FakeUnitOfWork. Each keeps exactly what its rules read back; the SQL and its
constraints are proven by the real-stack tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from consumers.authentication.store import Logins
from consumers.sessions.pools import Limits
from consumers.sessions.store import SessionsStore
from schemas.users import SessionPolicy, UserCreated, UserUpdated


@dataclass
class StoredLogin:
    username: str
    email: str
    display_name: str
    status: str
    status_reason: str | None
    created_flow_id: str
    updated_at: dt.datetime


@dataclass
class MemoryLogins(Logins):
    rows: dict[str, StoredLogin] = field(default_factory=dict)

    async def login_status(self, login_id: str) -> str | None:
        login = self.rows.get(login_id)
        return None if login is None else login.status

    async def insert_login(self, event: UserCreated, flow_id: str, at: dt.datetime) -> None:
        assert event.login_id not in self.rows, "the table's primary key refuses a second row"
        self.rows[event.login_id] = StoredLogin(
            event.username, str(event.email), event.display_name, "active", None, flow_id, at
        )

    async def update_profile(self, event: UserUpdated, at: dt.datetime) -> None:
        login = self.rows.get(event.login_id)
        if login is None:
            return
        login.username = event.username or login.username
        login.email = str(event.email) if event.email else login.email
        login.display_name = event.display_name or login.display_name
        login.updated_at = at

    async def set_status(self, login_id: str, status: str, reason: str | None, at: dt.datetime) -> None:
        login = self.rows.get(login_id)
        if login is not None:
            login.status, login.status_reason, login.updated_at = status, reason, at


@dataclass
class SessionsRow:
    policy: SessionPolicy | None = None
    #: Assigned from the policy; None when the policy was refused (an unknown pool).
    limits: Limits | None = None
    disabled: bool = False
    ended_reason: str | None = None
    changed_at: dt.datetime | None = None


@dataclass
class MemorySessions(SessionsStore):
    rows: dict[str, SessionsRow] = field(default_factory=dict)

    async def save_policy(self, login_id: str, policy: SessionPolicy, limits: Limits | None, at: dt.datetime) -> bool:
        row = self.rows.setdefault(login_id, SessionsRow())
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

    async def forget(self, login_id: str) -> None:
        self.rows.pop(login_id, None)
