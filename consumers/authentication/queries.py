"""Reading the authentication service's logins, for the CLI and the HTTP API.

Every function takes an asyncpg connection whose ``search_path`` is the service's schema
(``Settings.db_schema("authentication")``), as the runtime's own connections have: the SQL never
names a schema, so the same query serves any deployment's or test's schema prefix.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from consumers.runtime.unit_of_work import DbConnection

_COLUMNS = (
    "login_id, username, email, display_name, status, status_reason, credential_ref, "
    "created_flow_id, created_at, updated_at"
)


@dataclass(frozen=True)
class Login:
    login_id: str
    username: str
    email: str
    display_name: str
    #: active, disabled or deleted
    status: str
    status_reason: str | None
    credential_ref: str | None
    created_flow_id: str
    created_at: dt.datetime
    updated_at: dt.datetime


async def login(connection: DbConnection, login_id: str) -> Login | None:
    row = await connection.fetchrow(f"select {_COLUMNS} from logins where login_id = $1", login_id)
    return None if row is None else _login(row)


async def logins(connection: DbConnection, *, status: str | None = None, limit: int = 100) -> list[Login]:
    """Logins by id, optionally only those with ``status``."""
    rows = await connection.fetch(
        f"select {_COLUMNS} from logins where $1::text is null or status = $1 order by login_id limit $2",
        status,
        limit,
    )
    return [_login(row) for row in rows]


def _login(row: asyncpg.Record) -> Login:
    return Login(**dict(row))
