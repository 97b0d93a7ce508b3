"""Reading Resource Authorisation's state, for the CLI and the HTTP API.

Every function takes an asyncpg connection whose ``search_path`` is the service's schema
(``Settings.db_schema("authorisation")``), as the runtime's own connections have: the SQL never
names a schema, so the same query serves any deployment's or test's schema prefix. Revoked rows
are returned too, with ``revoked_at`` set: a disabled login keeps them, and that is worth seeing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from consumers.runtime.unit_of_work import DbConnection


@dataclass(frozen=True)
class Login:
    login_id: str
    #: active, disabled or deleted
    status: str
    roles: tuple[str, ...]
    markets: tuple[str, ...]
    created_flow_id: str


@dataclass(frozen=True)
class PermissionGrant:
    permission: str
    granted_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Access:
    """One login's association with one trading account."""

    account_id: str
    login_id: str
    rights: tuple[str, ...]
    #: the flow whose ``authorisation.access`` step granted it
    flow_id: str
    granted_at: dt.datetime
    #: login (disabled or deleted), account_login (unlinked), account (closed), or None: in force
    revoked_by: str | None
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_by is None


@dataclass(frozen=True)
class Account:
    account_id: str
    #: open or closed
    state: str
    opened_flow_id: str | None
    closed_flow_id: str | None


@dataclass(frozen=True)
class PendingAccess:
    """An opening or a link kept until every login it names is known."""

    flow_id: str
    account_id: str
    #: (login id, rights) of every login the event names, in its order
    logins: tuple[tuple[str, tuple[str, ...]], ...]
    #: the logins not known yet
    waiting_for: tuple[str, ...]


async def login(connection: DbConnection, login_id: str) -> Login | None:
    row = await connection.fetchrow(
        "select login_id, status, roles, markets, created_flow_id from logins where login_id = $1", login_id
    )
    if row is None:
        return None
    return Login(row["login_id"], row["status"], tuple(row["roles"]), tuple(row["markets"]), row["created_flow_id"])


async def permissions(connection: DbConnection, login_id: str, *, active_only: bool = False) -> list[PermissionGrant]:
    """The login's permissions (its own and ``trade:<account>``), by name."""
    rows = await connection.fetch(
        """
        select permission, granted_at, revoked_at from login_permissions
        where login_id = $1 and (not $2 or revoked_at is null) order by permission
        """,
        login_id,
        active_only,
    )
    return [PermissionGrant(**dict(row)) for row in rows]


async def account(connection: DbConnection, account_id: str) -> Account | None:
    row = await connection.fetchrow(
        "select account_id, state, opened_flow_id, closed_flow_id from accounts where account_id = $1", account_id
    )
    return None if row is None else Account(**dict(row))


async def account_access(connection: DbConnection, account_id: str) -> list[Access]:
    """Every login associated with the account, revoked or not, by login id."""
    return await _access(connection, "account_id = $1", account_id)


async def login_access(connection: DbConnection, login_id: str) -> list[Access]:
    """Every account the login is associated with, revoked or not, by account id."""
    return await _access(connection, "login_id = $1", login_id)


async def pending(connection: DbConnection, account_id: str | None = None) -> list[PendingAccess]:
    """Associations waiting for logins, oldest first; of one account when ``account_id`` is given."""
    rows = await connection.fetch(
        """
        select p.flow_id, p.account_id,
               array_agg(w.login_id order by w.position) as login_ids,
               array_agg(array_to_string(w.rights, ',') order by w.position) as rights,
               array_agg(w.login_id order by w.position)
                   filter (where w.login_id is not null and l.login_id is null) as waiting_for
        from pending_access p
        left join pending_access_logins w on w.flow_id = p.flow_id
        left join logins l on l.login_id = w.login_id
        where $1::text is null or p.account_id = $1
        group by p.flow_id, p.account_id, p.seq
        order by p.seq
        """,
        account_id,
    )
    return [
        PendingAccess(
            flow_id=row["flow_id"],
            account_id=row["account_id"],
            logins=tuple(
                (login_id, tuple(rights.split(",")))
                for login_id, rights in zip(row["login_ids"], row["rights"], strict=True)
                if login_id is not None
            ),
            waiting_for=tuple(row["waiting_for"] or ()),
        )
        for row in rows
    ]


async def _access(connection: DbConnection, where: str, value: str) -> list[Access]:
    rows = await connection.fetch(
        "select account_id, login_id, rights, flow_id, granted_at, revoked_by, revoked_at "
        f"from account_access where {where} order by account_id, login_id",
        value,
    )
    return [Access(**{**dict(row), "rights": tuple(row["rights"])}) for row in rows]
