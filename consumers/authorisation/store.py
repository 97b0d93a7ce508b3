"""Resource Authorisation's state: logins and their roles, accounts, assets and the associations
between them, pending associations.

Handlers reach it through ``unit.store`` (an :class:`Entitlements`): :class:`PostgresEntitlements`
in the service, over the batch's transaction, and an in-memory one in unit tests
(tests/support/memory_authorisation.py), so that the rules are tested without a database and the
SQL by the real-stack tests. Every time written is the handled event's time (``unit.cause.time``),
passed in as ``at``. Revocation marks rows (``revoked_at``, ``revoked_by``) and never deletes them,
so that what a disabled login had is still there to restore, and to audit; a removed association
is deleted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from consumers.authorisation import queries
from consumers.authorisation.queries import Account
from consumers.authorisation.reach import Asset, Association
from consumers.runtime import UnitOfWork
from consumers.runtime.unit_of_work import DbConnection
from schemas.accounts import AccountLogin
from schemas.types import AccountRight


@dataclass(frozen=True)
class Pending:
    flow_id: str
    account_id: str


@dataclass(frozen=True)
class Granted:
    """A login whose association with an account is in force."""

    login_id: str
    #: Whether it is a member of a group: then a group may give it more rights on the account
    #: than its own association, and only the walk of its associations says which.
    in_group: bool


@dataclass(frozen=True)
class Creation:
    """What a login's creation learns as it is recorded."""

    #: The status of the login already there (nothing was created); None when this one created it.
    existing: str | None
    #: Whether associations from the login were defined before it arrived (a group's member list
    #: may name it first): then it may reach more than its own markets.
    associated_before: bool
    #: Whether an association waits for the login (an account that named it came first).
    awaited: bool


@dataclass(frozen=True)
class Opening:
    """What an account's opening learns as it is recorded."""

    #: The flow that opened the account before (this opening is then refused); None when this one did.
    opened_by: str | None
    #: Why this opening's flow failed before it was applied here (it must be compensated at once).
    failed: str | None
    #: The logins it names that were never created, in the order named (what its access waits for).
    unknown_logins: tuple[str, ...]


class Entitlements(Protocol):
    """What each login may do (its roles and the assets its associations reach) and which trading
    accounts it may reach, with what those decisions wait for (pending associations, failed
    openings)."""

    # --- logins and their own permissions -------------------------------------------------------

    async def login_status(self, login_id: str) -> str | None:
        """active, disabled or deleted; None for a login never created."""

    async def create_login(
        self,
        login_id: str,
        roles: Sequence[str],
        markets: Sequence[str],
        permissions: Sequence[str],
        flow_id: str,
        at: dt.datetime,
    ) -> Creation:
        """A new login (the asset ``User:<login id>``), active, with its roles, the role
        ``permissions`` and its associations with its ``markets``. For a login that exists already
        nothing changes (:class:`Creation` says which)."""

    async def update_roles_and_markets(
        self, login_id: str, roles: Sequence[str] | None, markets: Sequence[str] | None, at: dt.datetime
    ) -> tuple[list[str], list[str]]:
        """Replace whichever of roles and markets is given; return both as they now stand (an
        update may carry only one)."""

    async def set_login_status(self, login_id: str, status: str, at: dt.datetime) -> None:
        """The login's new status: a disabled login's later grants are born revoked."""

    async def replace_permissions(self, login_id: str, permissions: Sequence[str], at: dt.datetime) -> None:
        """Make the login's role permissions exactly ``permissions``: drop the others, add the new
        ones (already revoked when the login is not active, so that enabling it grants them)."""

    async def associate_markets(self, login_id: str, markets: Sequence[str], flow_id: str, at: dt.datetime) -> None:
        """Make the login's own ``Market`` associations exactly ``markets``: remove the others, add
        the new ones (already revoked when the login is not active); those it keeps stay as granted."""

    async def effective_permissions(self, login_id: str) -> tuple[str, ...]:
        """What the login may do now, sorted: its roles, and market-data:<market> and
        trade:<account> of what its associations reach, none revoked."""

    async def revoke_login(self, login_id: str, at: dt.datetime) -> None:
        """Mark the login's role permissions and its own associations revoked by 'login' (what a
        later enable restores)."""

    async def restore_login(self, login_id: str) -> None:
        """Undo :meth:`revoke_login`; access taken away by an unlink or a close stays revoked."""

    async def unknown_logins(self, login_ids: Sequence[str]) -> list[str]:
        """The ones of ``login_ids`` never created, in the order given (what an association waits for)."""

    # --- assets and what they reach -------------------------------------------------------------

    async def define_asset(self, asset: Asset, name: str | None, flow_id: str, at: dt.datetime) -> None:
        """Define a ``Market`` or ``Group`` asset; defined again, it takes ``name`` (when given)."""

    async def define_association(
        self, source: Asset, target: Asset, rights: Sequence[AccountRight], flow_id: str, at: dt.datetime
    ) -> None:
        """Associate ``source`` with ``target`` (replacing an earlier association's rights). It is
        born revoked when ``target`` is a closed account ('account') or ``source`` a login that is
        not active ('login'), as a login's own grants are."""

    async def undefine_association(self, source: Asset, target: Asset) -> None:
        """Remove the association; one that does not exist is removed already."""

    async def reached(self, root: Asset) -> list[Association]:
        """Every association in force reachable from ``root``, each once, followed transitively;
        none for a login that is not active."""

    async def reached_by_logins(self, login_ids: Sequence[str]) -> dict[str, list[Association]]:
        """:meth:`reached` from each login's ``User`` asset, by login id (every one of ``login_ids``)."""

    async def logins_reaching(self, asset: Asset) -> list[str]:
        """The active logins whose associations in force lead to ``asset`` (or that are it), by id."""

    # --- accounts and access --------------------------------------------------------------------

    async def account(self, account_id: str) -> Account | None:
        """The account as this service has heard of it; None when neither its opening nor its close was seen."""

    async def account_opened_by(self, flow_id: str) -> str | None:
        """The account whose opening is the flow ``flow_id``, if this service has applied it (what a
        failed flow compensates)."""

    async def open_account(self, account_id: str, flow_id: str, login_ids: Sequence[str], at: dt.datetime) -> Opening:
        """Record the opening unless one is on record already (then nothing changes); an account
        whose close came first stays closed. Say what the opening of an account naming
        ``login_ids`` must know (:class:`Opening`)."""

    async def close_account(self, account_id: str, flow_id: str, at: dt.datetime) -> None:
        """The account closed by ``flow_id``, whether or not its opening was seen (it may come later)."""

    async def grant(
        self, account_id: str, logins: Sequence[AccountLogin], flow_id: str, at: dt.datetime
    ) -> list[Granted]:
        """Associate each login with the account (replacing an earlier association's rights); return
        the logins whose association is in force, in the order given.

        An association is born revoked when the account is closed ('account') or the login is not
        active ('login'), so that it is on record and a later enable restores it.
        """

    async def revoke_account(self, account_id: str, at: dt.datetime) -> list[str]:
        """Revoke every association to the account for good, a group's too; return the logins whose
        own association was in force, by id."""

    async def revoke_account_login(self, account_id: str, login_id: str, at: dt.datetime) -> None:
        """Take the login's own association with the account away; a close's revocation stays as it is."""

    # --- pending associations -------------------------------------------------------------------

    async def add_pending(self, flow_id: str, account_id: str, logins: Sequence[AccountLogin], at: dt.datetime) -> None:
        """Keep the association of ``flow_id`` whole, logins in their order, until its logins are known."""

    async def ready_for_login(self, login_id: str) -> list[Pending]:
        """Pending associations naming ``login_id`` whose logins are now all known, oldest first;
        until the transaction ends, they stay as read: the batch holds their accounts' pending
        locks (pending_locks.py), so no other login's arrival, unlink or close of their account
        changes them meanwhile."""

    async def ready_for_account(self, account_id: str) -> list[Pending]:
        """Pending associations of the account whose logins are now all known, oldest first."""

    async def take_pending(self, flow_id: str) -> list[AccountLogin]:
        """Forget a pending association (it is being granted); return its logins, in the order its
        event named them."""

    async def drop_pending_of_account(self, account_id: str) -> list[str]:
        """Forget every pending association of the account; return their flow ids, oldest first."""

    async def drop_pending_login(self, account_id: str, login_id: str) -> None:
        """Take the login out of the account's pending associations (it was unlinked meanwhile);
        the batch holds the account's pending lock, so no login's arrival grants them meanwhile."""

    # --- failed flows ---------------------------------------------------------------------------

    async def remember_failed_flow(self, flow_id: str, account_id: str, reason: str, at: dt.datetime) -> None:
        """Keep the failure of an opening not applied yet (the first reason of a flow stays), so that
        the opening is compensated as soon as it arrives."""


#: What the handlers are given.
EntitlementsUnit = UnitOfWork[Entitlements]


_READY = """
    select p.flow_id, p.account_id from pending_access p
    where {which} and not exists (
        select 1 from pending_access_logins w
        where w.flow_id = p.flow_id and not exists (select 1 from logins l where l.login_id = w.login_id)
    )
    order by p.seq
"""


#: The walk of transitive_associations (migration 0002) backwards, from an asset to the logins.
_LOGINS_REACHING = """
    with recursive walk (type, code) as (
        select $1::text, $2::text
        union
        select a.from_type, a.from_code
        from walk w join associations a on a.to_type = w.type and a.to_code = w.code
        where a.revoked_by is null
    )
    select l.login_id from walk w join logins l on w.type = 'User' and l.login_id = w.code
    where l.status = 'active'
    order by l.login_id
"""
#: A login, its role permissions and its market associations, written together unless the login
#: exists. The last select reads the snapshot the statement began with: the status of a login
#: there before (null for the one it creates), whether associations from it were there, and
#: whether an association waits for it.
_CREATE_LOGIN = """
    with created as (
        insert into logins (login_id, status, roles, markets, created_flow_id, created_at, updated_at)
        values ($1, 'active', $2, $3, $5, $6, $6)
        on conflict (login_id) do nothing
        returning login_id
    ), granted as (
        insert into permissions (login_id, permission, granted_at)
        select c.login_id, p, $6 from created c, unnest($4::text[]) as p
    ), associated as (
        insert into associations (from_type, from_code, to_type, to_code, flow_id, granted_at)
        select 'User', c.login_id, 'Market', m, $5, $6 from created c, unnest($3::text[]) as m
    )
    select (select status from logins where login_id = $1) as existing,
           exists (select 1 from associations where from_type = 'User' and from_code = $1) as associated_before,
           exists (select 1 from pending_access_logins where login_id = $1) as awaited
"""
_USER_ASSOCIATION = "from_type = 'User' and from_code = $1"
_LOGIN_ACCOUNT = "from_type = 'User' and from_code = $2 and to_type = 'TradingAccount' and to_code = $1"


class PostgresEntitlements(Entitlements):
    """Over the batch's connection. The batch holds the group graph shared (``Service.shared_lock``,
    locks.py): a batch changing a group's associations holds it alone, and whatever this one reads
    or writes it sees whole, before or after that change."""

    def __init__(self, connection: DbConnection) -> None:
        self._db = connection

    # --- logins and their own permissions -------------------------------------------------------

    async def login_status(self, login_id: str) -> str | None:
        status = await self._db.fetchval("select status from logins where login_id = $1", login_id)
        return None if status is None else str(status)

    async def create_login(
        self,
        login_id: str,
        roles: Sequence[str],
        markets: Sequence[str],
        permissions: Sequence[str],
        flow_id: str,
        at: dt.datetime,
    ) -> Creation:
        row = await self._db.fetchrow(
            _CREATE_LOGIN, login_id, list(roles), list(markets), list(permissions), flow_id, at
        )
        assert row is not None, "a select without from answers one row"
        return Creation(row["existing"], row["associated_before"], row["awaited"])

    async def update_roles_and_markets(
        self, login_id: str, roles: Sequence[str] | None, markets: Sequence[str] | None, at: dt.datetime
    ) -> tuple[list[str], list[str]]:
        row = await self._db.fetchrow(
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

    async def set_login_status(self, login_id: str, status: str, at: dt.datetime) -> None:
        await self._db.execute(
            "update logins set status = $2, updated_at = $3 where login_id = $1", login_id, status, at
        )

    async def replace_permissions(self, login_id: str, permissions: Sequence[str], at: dt.datetime) -> None:
        await self._db.execute(
            "delete from permissions where login_id = $1 and not (permission = any($2::text[]))",
            login_id,
            list(permissions),
        )
        await self._db.execute(
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

    async def associate_markets(self, login_id: str, markets: Sequence[str], flow_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            f"delete from associations where {_USER_ASSOCIATION} and to_type = 'Market' "
            "and not (to_code = any($2::text[]))",
            login_id,
            list(markets),
        )
        await self._db.execute(
            """
            insert into associations (from_type, from_code, to_type, to_code, flow_id, granted_at,
                                      revoked_by, revoked_at)
            select 'User', l.login_id, 'Market', m, $3, $4,
                   case when l.status <> 'active' then 'login' end,
                   case when l.status <> 'active' then $4::timestamptz end
            from logins l, unnest($2::text[]) as m
            where l.login_id = $1
            on conflict (from_type, from_code, to_type, to_code) do nothing
            """,
            login_id,
            list(markets),
            flow_id,
            at,
        )

    async def effective_permissions(self, login_id: str) -> tuple[str, ...]:
        return tuple(grant.permission for grant in await queries.permissions(self._db, login_id, active_only=True))

    async def revoke_login(self, login_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            "update permissions set revoked_at = $2 where login_id = $1 and revoked_at is null", login_id, at
        )
        await self._db.execute(
            f"update associations set revoked_by = 'login', revoked_at = $2 where {_USER_ASSOCIATION} "
            "and revoked_by is null",
            login_id,
            at,
        )

    async def restore_login(self, login_id: str) -> None:
        await self._db.execute("update permissions set revoked_at = null where login_id = $1", login_id)
        await self._db.execute(
            f"update associations set revoked_by = null, revoked_at = null where {_USER_ASSOCIATION} "
            "and revoked_by = 'login'",
            login_id,
        )

    async def unknown_logins(self, login_ids: Sequence[str]) -> list[str]:
        rows = await self._db.fetch("select login_id from logins where login_id = any($1::text[])", list(login_ids))
        known = {row["login_id"] for row in rows}
        return [login_id for login_id in login_ids if login_id not in known]

    # --- assets and what they reach -------------------------------------------------------------

    async def define_asset(self, asset: Asset, name: str | None, flow_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into asset_definitions (type, code, name, defined_flow_id, defined_at) values ($1, $2, $3, $4, $5)
            on conflict (type, code) do update set name = coalesce(excluded.name, asset_definitions.name)
            """,
            asset.type.value,
            asset.code,
            name,
            flow_id,
            at,
        )

    async def define_association(
        self, source: Asset, target: Asset, rights: Sequence[AccountRight], flow_id: str, at: dt.datetime
    ) -> None:
        await self._db.execute(
            """
            insert into associations as x (from_type, from_code, to_type, to_code, rights, flow_id, granted_at,
                                           revoked_by, revoked_at)
            select $1, $2, $3, $4, $5::text[], $6, $7, r.revoked_by,
                   case when r.revoked_by is not null then $7::timestamptz end
            from (select case
                    when $3 = 'TradingAccount'
                         and exists (select 1 from accounts where account_id = $4 and state = 'closed') then 'account'
                    when $1 = 'User'
                         and exists (select 1 from logins where login_id = $2 and status <> 'active') then 'login'
                  end as revoked_by) r
            on conflict (from_type, from_code, to_type, to_code) do update
                set rights = excluded.rights, flow_id = excluded.flow_id, granted_at = excluded.granted_at,
                    revoked_by = excluded.revoked_by, revoked_at = excluded.revoked_at
            """,
            source.type.value,
            source.code,
            target.type.value,
            target.code,
            [str(right) for right in rights],
            flow_id,
            at,
        )

    async def undefine_association(self, source: Asset, target: Asset) -> None:
        await self._db.execute(
            "delete from associations where from_type = $1 and from_code = $2 and to_type = $3 and to_code = $4",
            source.type.value,
            source.code,
            target.type.value,
            target.code,
        )

    async def reached(self, root: Asset) -> list[Association]:
        return await queries.reached(self._db, root)

    async def reached_by_logins(self, login_ids: Sequence[str]) -> dict[str, list[Association]]:
        return await queries.reached_by_logins(self._db, login_ids)

    async def logins_reaching(self, asset: Asset) -> list[str]:
        rows = await self._db.fetch(_LOGINS_REACHING, asset.type.value, asset.code)
        return [row["login_id"] for row in rows]

    # --- accounts and access --------------------------------------------------------------------

    async def account(self, account_id: str) -> Account | None:
        return await queries.account(self._db, account_id)

    async def account_opened_by(self, flow_id: str) -> str | None:
        value = await self._db.fetchval("select account_id from accounts where opened_flow_id = $1", flow_id)
        return None if value is None else str(value)

    async def open_account(self, account_id: str, flow_id: str, login_ids: Sequence[str], at: dt.datetime) -> Opening:
        row = await self._db.fetchrow(
            """
            with opened as (
                insert into accounts (account_id, state, opened_flow_id, opened_at) values ($1, 'open', $2, $3)
                on conflict (account_id) do update
                    set opened_flow_id = excluded.opened_flow_id, opened_at = excluded.opened_at
                    where accounts.opened_flow_id is null
            )
            select (select opened_flow_id from accounts where account_id = $1) as opened_by,
                   (select reason from failed_flows where flow_id = $2) as failed,
                   array(select n.login_id from unnest($4::text[]) with ordinality as n (login_id, position)
                         where not exists (select 1 from logins l where l.login_id = n.login_id)
                         order by n.position) as unknown_logins
            """,
            account_id,
            flow_id,
            at,
            list(login_ids),
        )
        assert row is not None, "a select without from answers one row"
        return Opening(row["opened_by"], row["failed"], tuple(row["unknown_logins"]))

    async def close_account(self, account_id: str, flow_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into accounts (account_id, state, closed_flow_id, closed_at) values ($1, 'closed', $2, $3)
            on conflict (account_id) do update
                set state = 'closed', closed_flow_id = excluded.closed_flow_id, closed_at = excluded.closed_at
            """,
            account_id,
            flow_id,
            at,
        )

    async def grant(
        self, account_id: str, logins: Sequence[AccountLogin], flow_id: str, at: dt.datetime
    ) -> list[Granted]:
        rows = await self._db.fetch(
            """
            insert into associations as x (from_type, from_code, to_type, to_code, rights, flow_id, granted_at,
                                           revoked_by, revoked_at)
            select 'User', l.login_id, 'TradingAccount', a.account_id, string_to_array(g.rights, ','), $4, $5,
                   r.revoked_by, case when r.revoked_by is null then null else $5::timestamptz end
            from unnest($2::text[], $3::text[]) as g (login_id, rights)
            join logins l on l.login_id = g.login_id
            join accounts a on a.account_id = $1,
                 lateral (select case when a.state = 'closed' then 'account'
                                      when l.status <> 'active' then 'login' end as revoked_by) r
            on conflict (from_type, from_code, to_type, to_code) do update
                set rights = excluded.rights, flow_id = excluded.flow_id, granted_at = excluded.granted_at,
                    revoked_by = excluded.revoked_by, revoked_at = excluded.revoked_at
            returning x.from_code, x.revoked_by,
                      exists (select 1 from associations m where m.from_type = 'User' and m.from_code = x.from_code
                              and m.to_type = 'Group' and m.revoked_by is null) as in_group
            """,
            account_id,
            [login.login_id for login in logins],
            [",".join(str(right) for right in login.rights) for login in logins],
            flow_id,
            at,
        )
        in_force = {row["from_code"]: row["in_group"] for row in rows if row["revoked_by"] is None}
        return [Granted(login.login_id, in_force[login.login_id]) for login in logins if login.login_id in in_force]

    async def revoke_account(self, account_id: str, at: dt.datetime) -> list[str]:
        rows = await self._db.fetch(
            """
            select from_code from associations
            where to_type = 'TradingAccount' and to_code = $1 and from_type = 'User' and revoked_by is null
            order by from_code
            """,
            account_id,
        )
        await self._db.execute(
            """
            update associations set revoked_by = 'account', revoked_at = coalesce(revoked_at, $2)
            where to_type = 'TradingAccount' and to_code = $1 and revoked_by is distinct from 'account'
            """,
            account_id,
            at,
        )
        return [row["from_code"] for row in rows]

    async def revoke_account_login(self, account_id: str, login_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            f"""
            update associations set revoked_by = 'account_login', revoked_at = coalesce(revoked_at, $3)
            where {_LOGIN_ACCOUNT} and revoked_by is distinct from 'account'
            """,
            account_id,
            login_id,
            at,
        )

    # --- pending associations -------------------------------------------------------------------

    async def add_pending(self, flow_id: str, account_id: str, logins: Sequence[AccountLogin], at: dt.datetime) -> None:
        await self._db.execute(
            """
            with pending as (
                insert into pending_access (flow_id, account_id, received_at) values ($1, $2, $3) returning flow_id
            )
            insert into pending_access_logins (flow_id, position, login_id, rights)
            select p.flow_id, g.position - 1, g.login_id, string_to_array(g.rights, ',')
            from pending p, unnest($4::text[], $5::text[]) with ordinality as g (login_id, rights, position)
            """,
            flow_id,
            account_id,
            at,
            [login.login_id for login in logins],
            [",".join(str(right) for right in login.rights) for login in logins],
        )

    async def ready_for_login(self, login_id: str) -> list[Pending]:
        which = "exists (select 1 from pending_access_logins w where w.flow_id = p.flow_id and w.login_id = $1)"
        return [Pending(**dict(row)) for row in await self._db.fetch(_READY.format(which=which), login_id)]

    async def ready_for_account(self, account_id: str) -> list[Pending]:
        rows = await self._db.fetch(_READY.format(which="p.account_id = $1"), account_id)
        return [Pending(**dict(row)) for row in rows]

    async def take_pending(self, flow_id: str) -> list[AccountLogin]:
        rows = await self._db.fetch(
            """
            with dropped as (delete from pending_access where flow_id = $1)
            select login_id, rights from pending_access_logins where flow_id = $1 order by position
            """,
            flow_id,
        )
        return [AccountLogin(login_id=row["login_id"], rights=tuple(row["rights"])) for row in rows]

    async def drop_pending_of_account(self, account_id: str) -> list[str]:
        rows = await self._db.fetch(
            """
            with dropped as (delete from pending_access where account_id = $1 returning flow_id, seq)
            select flow_id from dropped order by seq
            """,
            account_id,
        )
        return [row["flow_id"] for row in rows]

    async def drop_pending_login(self, account_id: str, login_id: str) -> None:
        await self._db.execute(
            """
            delete from pending_access_logins w using pending_access p
            where w.flow_id = p.flow_id and p.account_id = $1 and w.login_id = $2
            """,
            account_id,
            login_id,
        )

    # --- failed flows ---------------------------------------------------------------------------

    async def remember_failed_flow(self, flow_id: str, account_id: str, reason: str, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into failed_flows (flow_id, account_id, reason, failed_at) values ($1, $2, $3, $4)
            on conflict (flow_id) do nothing
            """,
            flow_id,
            account_id,
            reason,
            at,
        )
