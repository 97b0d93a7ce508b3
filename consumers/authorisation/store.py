"""Resource Authorisation's SQL: logins, permissions, accounts, access, pending associations.

Every time written is the handled event's time (``unit.cause.time``), passed in as ``at``.
Revocation marks rows (``revoked_at``, ``revoked_by``) and never deletes them, so that what a
disabled login had is still there to restore, and to audit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from consumers.runtime import UnitOfWork
from schemas.accounts import AccountLogin


@dataclass(frozen=True)
class Account:
    account_id: str
    #: open or closed
    state: str
    #: None while only the account's close has been seen
    opened_flow_id: str | None


@dataclass(frozen=True)
class Pending:
    flow_id: str
    account_id: str


# --- logins and their permissions ---------------------------------------------------------------


async def login_status(unit: UnitOfWork, login_id: str) -> str | None:
    """active, disabled or deleted; None for a login never created."""
    status = await unit.fetchval("select status from logins where login_id = $1", login_id)
    return None if status is None else str(status)


async def insert_login(
    unit: UnitOfWork, login_id: str, roles: Sequence[str], markets: Sequence[str], flow_id: str, at: dt.datetime
) -> None:
    await unit.execute(
        """
        insert into logins (login_id, status, roles, markets, created_flow_id, created_at, updated_at)
        values ($1, 'active', $2, $3, $4, $5, $5)
        """,
        login_id,
        list(roles),
        list(markets),
        flow_id,
        at,
    )


async def update_roles_and_markets(
    unit: UnitOfWork, login_id: str, roles: Sequence[str] | None, markets: Sequence[str] | None, at: dt.datetime
) -> tuple[list[str], list[str]]:
    """Replace whichever of roles and markets is given; return both as they now stand."""
    row = await unit.fetchrow(
        """
        update logins set roles = coalesce($2, roles), markets = coalesce($3, markets), updated_at = $4
        where login_id = $1 returning roles, markets
        """,
        login_id,
        None if roles is None else list(roles),
        None if markets is None else list(markets),
        at,
    )
    assert row is not None, "the caller checked that the login exists"
    return list(row["roles"]), list(row["markets"])


async def set_login_status(unit: UnitOfWork, login_id: str, status: str, at: dt.datetime) -> None:
    await unit.execute("update logins set status = $2, updated_at = $3 where login_id = $1", login_id, status, at)


async def replace_permissions(unit: UnitOfWork, login_id: str, permissions: Sequence[str], at: dt.datetime) -> None:
    """Make the login's own permissions exactly ``permissions``: drop the others, add the new ones
    (already revoked when the login is not active, so that enabling it grants them)."""
    await unit.execute(
        "delete from permissions where login_id = $1 and not (permission = any($2::text[]))",
        login_id,
        list(permissions),
    )
    await unit.execute(
        """
        insert into permissions (login_id, permission, granted_at, revoked_at)
        select l.login_id, p, $3, case when l.status = 'active' then null else $3::timestamptz end
        from logins l, unnest($2::text[]) as p
        where l.login_id = $1
        on conflict (login_id, permission) do nothing
        """,
        login_id,
        list(permissions),
        at,
    )


async def effective_permissions(unit: UnitOfWork, login_id: str) -> tuple[str, ...]:
    """What the login may do now: its own permissions and trade:<account>, none revoked."""
    rows = await unit.fetch(
        "select permission from login_permissions where login_id = $1 and revoked_at is null order by permission",
        login_id,
    )
    return tuple(row["permission"] for row in rows)


async def revoke_login(unit: UnitOfWork, login_id: str, at: dt.datetime) -> None:
    """Mark everything the login holds revoked by 'login' (what a later enable restores)."""
    await unit.execute(
        "update permissions set revoked_at = $2 where login_id = $1 and revoked_at is null", login_id, at
    )
    await unit.execute(
        """
        update account_access set revoked_by = 'login', revoked_at = $2
        where login_id = $1 and revoked_by is null
        """,
        login_id,
        at,
    )


async def restore_login(unit: UnitOfWork, login_id: str) -> list[tuple[str, AccountLogin]]:
    """Undo :func:`revoke_login`; access taken away by an unlink or a close stays revoked.

    Returns the account associations given back, as (account id, the login with its rights).
    """
    await unit.execute("update permissions set revoked_at = null where login_id = $1", login_id)
    rows = await unit.fetch(
        "update account_access set revoked_by = null, revoked_at = null where login_id = $1 and revoked_by = 'login' "
        "returning account_id, rights",
        login_id,
    )
    return [
        (row["account_id"], AccountLogin(login_id=login_id, rights=tuple(row["rights"])))
        for row in sorted(rows, key=lambda row: row["account_id"])
    ]


async def unknown_logins(unit: UnitOfWork, login_ids: Sequence[str]) -> list[str]:
    """The ones of ``login_ids`` never created, in the order given."""
    known = {
        row["login_id"]
        for row in await unit.fetch("select login_id from logins where login_id = any($1::text[])", list(login_ids))
    }
    return [login_id for login_id in login_ids if login_id not in known]


# --- accounts and access ------------------------------------------------------------------------


async def account(unit: UnitOfWork, account_id: str) -> Account | None:
    row = await unit.fetchrow(
        "select account_id, state, opened_flow_id from accounts where account_id = $1", account_id
    )
    return None if row is None else Account(**dict(row))


async def account_opened_by(unit: UnitOfWork, flow_id: str) -> str | None:
    """The account whose opening is the flow ``flow_id``, if this service has applied it."""
    value = await unit.fetchval("select account_id from accounts where opened_flow_id = $1", flow_id)
    return None if value is None else str(value)


async def open_account(unit: UnitOfWork, account_id: str, flow_id: str, at: dt.datetime) -> None:
    """Record the opening; an account whose close came first stays closed."""
    await unit.execute(
        """
        insert into accounts (account_id, state, opened_flow_id, opened_at) values ($1, 'open', $2, $3)
        on conflict (account_id) do update set opened_flow_id = excluded.opened_flow_id, opened_at = excluded.opened_at
        """,
        account_id,
        flow_id,
        at,
    )


async def close_account(unit: UnitOfWork, account_id: str, flow_id: str, at: dt.datetime) -> None:
    await unit.execute(
        """
        insert into accounts (account_id, state, closed_flow_id, closed_at) values ($1, 'closed', $2, $3)
        on conflict (account_id) do update
            set state = 'closed', closed_flow_id = excluded.closed_flow_id, closed_at = excluded.closed_at
        """,
        account_id,
        flow_id,
        at,
    )


async def grant(unit: UnitOfWork, account_id: str, login: AccountLogin, flow_id: str, at: dt.datetime) -> bool:
    """Associate the login with the account (replacing an earlier association's rights); return
    whether the access is in force.

    The row is born revoked when the account is closed ('account') or the login is not active
    ('login'), so that the association is on record and a later enable restores it.
    """
    revoked_by = await unit.fetchrow(
        """
        insert into account_access as x (account_id, login_id, rights, flow_id, granted_at, revoked_by, revoked_at)
        select a.account_id, l.login_id, $3::text[], $4, $5, r.revoked_by,
               case when r.revoked_by is null then null else $5::timestamptz end
        from accounts a, logins l,
             lateral (select case when a.state = 'closed' then 'account'
                                  when l.status <> 'active' then 'login' end as revoked_by) r
        where a.account_id = $1 and l.login_id = $2
        on conflict (account_id, login_id) do update
            set rights = excluded.rights, flow_id = excluded.flow_id, granted_at = excluded.granted_at,
                revoked_by = excluded.revoked_by, revoked_at = excluded.revoked_at
        returning x.revoked_by
        """,
        account_id,
        login.login_id,
        [str(right) for right in login.rights],
        flow_id,
        at,
    )
    return revoked_by is not None and revoked_by["revoked_by"] is None


async def revoke_account(unit: UnitOfWork, account_id: str, at: dt.datetime) -> list[str]:
    """Revoke every login's access to the account for good; return the logins that had it."""
    rows = await unit.fetch(
        "select login_id from account_access where account_id = $1 and revoked_by is null order by login_id",
        account_id,
    )
    await unit.execute(
        """
        update account_access set revoked_by = 'account', revoked_at = coalesce(revoked_at, $2)
        where account_id = $1 and revoked_by is distinct from 'account'
        """,
        account_id,
        at,
    )
    return [row["login_id"] for row in rows]


async def revoke_account_login(unit: UnitOfWork, account_id: str, login_id: str, at: dt.datetime) -> None:
    """Take one login's access to the account away; a close's revocation stays as it is."""
    await unit.execute(
        """
        update account_access set revoked_by = 'account_login', revoked_at = coalesce(revoked_at, $3)
        where account_id = $1 and login_id = $2 and revoked_by is distinct from 'account'
        """,
        account_id,
        login_id,
        at,
    )


# --- pending associations -----------------------------------------------------------------------


async def add_pending(
    unit: UnitOfWork, flow_id: str, account_id: str, logins: Sequence[AccountLogin], at: dt.datetime
) -> None:
    await unit.execute(
        "insert into pending_access (flow_id, account_id, received_at) values ($1, $2, $3)", flow_id, account_id, at
    )
    for position, login in enumerate(logins):
        await unit.execute(
            "insert into pending_access_logins (flow_id, position, login_id, rights) values ($1, $2, $3, $4)",
            flow_id,
            position,
            login.login_id,
            [str(right) for right in login.rights],
        )


_READY = """
    select p.flow_id, p.account_id from pending_access p
    where {which} and not exists (
        select 1 from pending_access_logins w
        where w.flow_id = p.flow_id and not exists (select 1 from logins l where l.login_id = w.login_id)
    )
    order by p.seq
"""


async def ready_for_login(unit: UnitOfWork, login_id: str) -> list[Pending]:
    """Pending associations naming ``login_id`` whose logins are now all known, oldest first."""
    which = "exists (select 1 from pending_access_logins w where w.flow_id = p.flow_id and w.login_id = $1)"
    return [Pending(**dict(row)) for row in await unit.fetch(_READY.format(which=which), login_id)]


async def ready_for_account(unit: UnitOfWork, account_id: str) -> list[Pending]:
    """Pending associations of the account whose logins are now all known, oldest first."""
    return [Pending(**dict(row)) for row in await unit.fetch(_READY.format(which="p.account_id = $1"), account_id)]


async def pending_logins(unit: UnitOfWork, flow_id: str) -> list[AccountLogin]:
    rows = await unit.fetch(
        "select login_id, rights from pending_access_logins where flow_id = $1 order by position", flow_id
    )
    return [AccountLogin(login_id=row["login_id"], rights=tuple(row["rights"])) for row in rows]


async def drop_pending(unit: UnitOfWork, flow_id: str) -> None:
    await unit.execute("delete from pending_access where flow_id = $1", flow_id)


async def drop_pending_of_account(unit: UnitOfWork, account_id: str) -> list[str]:
    """Forget every pending association of the account; return their flow ids, oldest first."""
    rows = await unit.fetch(
        """
        with dropped as (delete from pending_access where account_id = $1 returning flow_id, seq)
        select flow_id from dropped order by seq
        """,
        account_id,
    )
    return [row["flow_id"] for row in rows]


async def drop_pending_login(unit: UnitOfWork, account_id: str, login_id: str) -> None:
    """Take the login out of the account's pending associations (it was unlinked meanwhile)."""
    await unit.execute(
        """
        delete from pending_access_logins w using pending_access p
        where w.flow_id = p.flow_id and p.account_id = $1 and w.login_id = $2
        """,
        account_id,
        login_id,
    )


# --- failed flows -------------------------------------------------------------------------------


async def remember_failed_flow(unit: UnitOfWork, flow_id: str, account_id: str, reason: str, at: dt.datetime) -> None:
    await unit.execute(
        """
        insert into failed_flows (flow_id, account_id, reason, failed_at) values ($1, $2, $3, $4)
        on conflict (flow_id) do nothing
        """,
        flow_id,
        account_id,
        reason,
        at,
    )


async def failed_flow_reason(unit: UnitOfWork, flow_id: str) -> str | None:
    value = await unit.fetchval("select reason from failed_flows where flow_id = $1", flow_id)
    return None if value is None else str(value)
