"""Reading Resource Authorisation's state, for the CLI and the HTTP API.

Every function takes an asyncpg connection whose ``search_path`` is the service's schema
(``Settings.db_schema("authorisation")``), as the runtime's own connections have: the SQL never
names a schema, so the same query serves any deployment's or test's schema prefix. Revoked rows
are returned too, with ``revoked_at`` set: a disabled login keeps them, and that is worth seeing.

Assets and subjects are named as the platform names them: ``User:<login id>``,
``Client:<client id>``, ``TradingAccount:XS:0001``, ``Market:XSX``, ``Group:<code>``.
:func:`reach` answers what a login (or a client) may see and trade, by following its
associations as the Authority service does (:func:`transitive`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from consumers.authorisation.reach import Asset, Association, account_rights, codes
from consumers.runtime.unit_of_work import DbConnection
from schemas.groups import AssetType
from schemas.types import AccountRight


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
class AssetView:
    """One asset, defined by its own lifecycle (a login, an account, an exchange's market, a group)."""

    type: str
    code: str
    #: for people: a group's name, a market's exchange
    name: str | None
    #: the flow (or event) that defined it
    defined_flow_id: str | None

    @property
    def asset(self) -> str:
        return f"{self.type}:{self.code}"


@dataclass(frozen=True)
class AssociationView:
    """One association from an asset to another, in force or revoked."""

    from_asset: str
    to_asset: str
    #: what an association to a trading account allows there; () for the others
    rights: tuple[str, ...]
    flow_id: str
    granted_at: dt.datetime
    #: login, account_login, account, or None: in force
    revoked_by: str | None
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_by is None


@dataclass(frozen=True)
class AccountReach:
    """A trading account a subject reaches, and what it may do there."""

    account_id: str
    #: the union of what every association reaching it allows: the subject's own first, as granted
    rights: tuple[str, ...]
    #: the assets whose associations lead to it: the subject itself, its groups
    via: tuple[str, ...]


@dataclass(frozen=True)
class Reach:
    """What a subject may see and trade, following its associations in force transitively."""

    subject: str
    #: the groups it is in, directly or through another group
    groups: tuple[str, ...]
    #: the markets whose data it may see
    markets: tuple[str, ...]
    #: the trading accounts it may see, with its rights on each
    accounts: tuple[AccountReach, ...]

    @property
    def trades(self) -> tuple[str, ...]:
        """The accounts it may trade (the trade right)."""
        return tuple(account.account_id for account in self.accounts if AccountRight.TRADE in account.rights)


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
    """Every login associated with the account itself (not through a group), revoked or not, by login id."""
    return await _access(connection, "to_code = $1", account_id)


async def login_access(connection: DbConnection, login_id: str) -> list[Access]:
    """Every account the login itself is associated with, revoked or not, by account id."""
    return await _access(connection, "from_code = $1", login_id)


async def assets(connection: DbConnection, asset_type: AssetType | None = None) -> list[AssetView]:
    """Every asset (of ``asset_type`` when given), by type and code."""
    rows = await connection.fetch(
        "select type, code, name, defined_flow_id from assets where $1::text is null or type = $1 order by type, code",
        asset_type,
    )
    return [AssetView(**dict(row)) for row in rows]


async def associations(connection: DbConnection, asset: str) -> list[AssociationView]:
    """The associations from ``asset`` itself (``User:<login id>``, ``Group:<code>``), revoked or not."""
    source = Asset.named(asset)
    rows = await connection.fetch(
        f"{_ASSOCIATIONS} where from_type = $1 and from_code = $2 order by to_type, to_code",
        source.type.value,
        source.code,
    )
    return [_association(row) for row in rows]


async def transitive(connection: DbConnection, subject: str) -> list[AssociationView]:
    """Every association in force that ``subject`` reaches, each once, by what it goes from and to:
    its own, then those of the assets they lead to, and so on (the Authority service's
    ``Association Transitive``). A cycle of groups ends where it closes; a login that is not
    active reaches nothing."""
    root = Asset.named(subject)
    rows = await connection.fetch(
        "select from_type, from_code, to_type, to_code, rights, flow_id, granted_at, null as revoked_by, "
        "null as revoked_at from transitive_associations where root_type = $1 and root_code = $2 "
        "order by from_type, from_code, to_type, to_code",
        root.type.value,
        root.code,
    )
    return [_association(row) for row in rows]


async def reached(connection: DbConnection, root: Asset) -> list[Association]:
    """What :func:`transitive` gives, as the rules read it (consumers/authorisation/reach.py)."""
    return (await reached_from(connection, [root]))[root]


async def reached_by_logins(connection: DbConnection, login_ids: Sequence[str]) -> dict[str, list[Association]]:
    """:func:`reached` from each login's ``User`` asset, in one statement, by login id."""
    found = await reached_from(connection, [Asset.user(login_id) for login_id in login_ids])
    return {root.code: associations for root, associations in found.items()}


async def reached_from(connection: DbConnection, roots: Sequence[Asset]) -> dict[Asset, list[Association]]:
    """:func:`reached` from each of ``roots``, in one statement.

    The walk of the ``transitive_associations`` view (migration 0002), from the given roots only:
    a handler asks it for every login it grants or creates, and PostgreSQL planned the view, which
    starts from every asset with an association, at several times the cost of the walk itself
    (bench/README.md, backlog.py run 6). tests/integration/test_authorisation_reach_walk.py holds
    the two equal."""
    rows = await connection.fetch(_WALK, [root.type.value for root in roots], [root.code for root in roots])
    found: dict[Asset, list[Association]] = {root: [] for root in roots}
    for row in rows:
        found[Asset(AssetType(row["root_type"]), row["root_code"])].append(_reached(row))
    return found


_WALK = """
    with recursive walk (root_type, root_code, type, code) as (
        select r.type, r.code, r.type, r.code
        from unnest($1::text[], $2::text[]) as r (type, code)
        where r.type <> 'User' or exists (select 1 from logins l where l.login_id = r.code and l.status = 'active')
        union
        select w.root_type, w.root_code, a.to_type, a.to_code
        from walk w join associations a on a.from_type = w.type and a.from_code = w.code
        where a.revoked_by is null
    )
    select w.root_type, w.root_code, a.from_type, a.from_code, a.to_type, a.to_code, a.rights
    from walk w join associations a on a.from_type = w.type and a.from_code = w.code
    where a.revoked_by is null
"""


def _reached(row: asyncpg.Record) -> Association:
    return Association(
        Asset(AssetType(row["from_type"]), row["from_code"]),
        Asset(AssetType(row["to_type"]), row["to_code"]),
        tuple(AccountRight(right) for right in row["rights"]),
    )


async def reach(connection: DbConnection, subject: str) -> Reach:
    """What ``subject`` (``User:<login id>``, ``Client:<client id>``) may see and trade: the
    markets and trading accounts its associations in force reach, through its groups too."""
    root = Asset.named(subject)
    found = await reached(connection, root)
    via: dict[str, set[str]] = {}
    for association in found:
        if association.target.type is AssetType.TRADING_ACCOUNT:
            via.setdefault(association.target.code, set()).add(str(association.source))
    return Reach(
        subject=str(root),
        groups=codes(found, AssetType.GROUP),
        markets=codes(found, AssetType.MARKET),
        accounts=tuple(
            AccountReach(account_id, tuple(str(right) for right in rights), tuple(sorted(via[account_id])))
            for account_id, rights in account_rights(root, found).items()
        ),
    )


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


_ASSOCIATIONS = (
    "select from_type, from_code, to_type, to_code, rights, flow_id, granted_at, revoked_by, revoked_at "
    "from associations"
)


def _association(row: asyncpg.Record) -> AssociationView:
    return AssociationView(
        from_asset=f"{row['from_type']}:{row['from_code']}",
        to_asset=f"{row['to_type']}:{row['to_code']}",
        rights=tuple(row["rights"]),
        flow_id=row["flow_id"],
        granted_at=row["granted_at"],
        revoked_by=row["revoked_by"],
        revoked_at=row["revoked_at"],
    )


async def _access(connection: DbConnection, where: str, value: str) -> list[Access]:
    """A login's own associations with trading accounts, as ``Access``."""
    rows = await connection.fetch(
        "select to_code as account_id, from_code as login_id, rights, flow_id, granted_at, revoked_by, revoked_at "
        f"from associations where from_type = 'User' and to_type = 'TradingAccount' and {where} "
        "order by to_code, from_code",
        value,
    )
    return [Access(**{**dict(row), "rights": tuple(row["rights"])}) for row in rows]
