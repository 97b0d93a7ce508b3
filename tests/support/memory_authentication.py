"""An in-memory store with the protocol of the authentication service's PostgreSQL store, for unit tests
of its rules on a FakeUnitOfWork. It keeps exactly what the rules read back; the SQL and its
constraints are proven by the real-stack tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from consumers.authentication.store import Logins
from schemas.users import UserCreated, UserUpdated


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
