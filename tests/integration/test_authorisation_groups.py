"""Resource Authorisation's assets and associations on the real stack: groups followed
transitively by the SQL walk (migration 0002's ``reach``), around cycles and after removals; the
answer to "what may this login see and trade" (queries.reach); a new exchange's markets defined as
assets; the migration that turns 0001's permission strings and account links into associations;
and the group graph's lock, which keeps what a group's change announces and what a login's own
events announce from missing each other.

One service runs for the module (tests/support/service_under_test.py); each test uses logins,
accounts and groups of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from consumers.authorisation import queries
from consumers.authorisation.locks import GROUP_GRAPH, SERVICE_NAME
from consumers.authorisation.service import SERVICE
from consumers.runtime.checksum import state_checksum
from consumers.runtime.migrations import load_migrations, migrate
from schemas import Envelope, Event
from schemas.accounts import AccountLogin, AccountLoginUnlinked
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted, RevokedScope
from schemas.exchanges import ExchangeAdded, Market, TradingHours
from schemas.groups import AssetType, GroupAssociationDefined, GroupAssociationUndefined, GroupDefined
from schemas.types import AccountRight, Role
from tests.conftest import Stack
from tests.integration.test_authorisation import created, new_account, new_login, opened, unordered
from tests.support.service_under_test import ServiceUnderTest, module_settings
from xbus.rebuild.run import rebuild

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

VIEW, TRADE = AccountRight.VIEW, AccountRight.TRADE


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def authorisation(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await module_settings(stack)) as service:
        yield service


def new_group() -> str:
    return f"G{uuid.uuid4().hex[:8]}"


def joins(group: str, login: str) -> GroupAssociationDefined:
    return GroupAssociationDefined(group=group, from_asset=f"User:{login}", to_asset=f"Group:{group}")


def gives(group: str, asset: str, *rights: AccountRight) -> GroupAssociationDefined:
    return GroupAssociationDefined(group=group, from_asset=f"Group:{group}", to_asset=asset, rights=rights)


def removed(association: GroupAssociationDefined) -> GroupAssociationUndefined:
    return GroupAssociationUndefined(
        group=association.group, from_asset=association.from_asset, to_asset=association.to_asset
    )


def rows(associations: list[queries.AssociationView]) -> list[tuple[str, str]]:
    return [(a.from_asset, a.to_asset) for a in associations]


async def test_a_login_reaches_through_its_group_what_the_reference_lists(authorisation: ServiceUnderTest) -> None:
    """authority-api, cli/association/transitive.md, `Association Transitive XOSP User 1234`:
    "User,1234,Group,DTR / User,1234,Market,XSX / Group,DTR,TradingAccount,XS:0001 / ... XS:0004"."""
    login, group = new_login(), new_group()
    accounts = sorted(new_account() for _ in range(4))
    await authorisation.handle(created(login, (Role.MOTIF_USER,), ("XSX",)))
    await authorisation.handle(GroupDefined(group=group, name="Day traders"), joins(group, login))

    handled = await authorisation.handle(*(gives(group, f"TradingAccount:{a}", VIEW, TRADE) for a in accounts))
    granted = [event for event in handled.follow_ups if isinstance(event, AccountAccessGranted)]
    assert sorted((event.account_id, event.logins) for event in granted) == [
        (account, (AccountLogin(login_id=login, rights=(VIEW, TRADE)),)) for account in accounts
    ]
    assert rows(await queries.transitive(authorisation.db, f"User:{login}")) == [
        (f"Group:{group}", f"TradingAccount:{account}") for account in accounts
    ] + [(f"User:{login}", f"Group:{group}"), (f"User:{login}", "Market:XSX")]

    reach = await queries.reach(authorisation.db, f"User:{login}")
    assert (reach.subject, reach.groups, reach.markets, reach.trades) == (
        f"User:{login}",
        (group,),
        ("XSX",),
        tuple(accounts),
    )
    assert reach.accounts[0] == queries.AccountReach(accounts[0], ("view", "trade"), (f"Group:{group}",))
    permissions = [p.permission for p in await queries.permissions(authorisation.db, login, active_only=True)]
    assert permissions == ["market-data:XSX", "role:Motif:User", *(f"trade:{account}" for account in accounts)]
    [defined] = [a for a in await queries.assets(authorisation.db, AssetType.GROUP) if a.code == group]
    assert (defined.asset, defined.name) == (f"Group:{group}", "Day traders")


async def test_groups_in_a_cycle_end_the_walk_and_a_removed_association_takes_its_access_away(
    authorisation: ServiceUnderTest,
) -> None:
    """authority-api, cli/association/undefine.md: "Undefines (removes) an Association. Does not
    remove any associated Assets." A group in a group that leads back ends the walk."""
    login, outer, inner, account = new_login(), new_group(), new_group(), new_account()
    await authorisation.handle(created(login))
    account_association = gives(inner, f"TradingAccount:{account}", TRADE)
    await authorisation.handle(joins(outer, login), gives(outer, f"Group:{inner}"), account_association)
    cycle = await authorisation.handle(gives(inner, f"Group:{outer}"))
    assert cycle.follow_ups == []
    assert rows(await queries.transitive(authorisation.db, f"User:{login}")) == sorted(
        [
            (f"Group:{inner}", f"Group:{outer}"),
            (f"Group:{inner}", f"TradingAccount:{account}"),
            (f"Group:{outer}", f"Group:{inner}"),
            (f"User:{login}", f"Group:{outer}"),
        ]
    )

    undefined = await authorisation.handle(removed(account_association))
    assert unordered(undefined.follow_ups) == [
        AccessRevoked(
            flow_id=undefined.flow_id,
            scope=RevokedScope.ACCOUNT_LOGIN,
            subject_id=account,
            account_id=account,
            login_ids=(login,),
            reason=f"association Group:{inner} -> TradingAccount:{account} removed",
        ),
        PermissionsGranted(flow_id=undefined.flow_id, login_id=login, permissions=(), login_active=True),
    ]
    assert (await queries.reach(authorisation.db, f"User:{login}")).accounts == ()
    assert rows(await queries.associations(authorisation.db, f"Group:{inner}")) == [
        (f"Group:{inner}", f"Group:{outer}")
    ]


async def test_an_unlinked_login_keeps_what_its_group_gives_on_the_account(authorisation: ServiceUnderTest) -> None:
    login, group, account = new_login(), new_group(), new_account()
    await authorisation.handle(created(login))
    await authorisation.handle(opened(account, AccountLogin(login_id=login, rights=(VIEW, TRADE))))
    await authorisation.handle(joins(group, login), gives(group, f"TradingAccount:{account}", VIEW))

    unlinked = await authorisation.handle(AccountLoginUnlinked(account_id=account, login_id=login))
    revoked, granted = unlinked.follow_ups  # keyed by the account: in this order on its partition
    assert isinstance(revoked, AccessRevoked) and revoked.login_ids == (login,)
    assert granted == AccountAccessGranted(
        flow_id=unlinked.flow_id, account_id=account, logins=(AccountLogin(login_id=login, rights=(VIEW,)),)
    )
    [own] = await queries.login_access(authorisation.db, login)
    assert (own.account_id, own.revoked_by) == (account, "account_login")
    assert [(a.account_id, a.rights) for a in (await queries.reach(authorisation.db, f"User:{login}")).accounts] == [
        (account, ("view",))
    ]


async def test_a_new_exchange_defines_its_markets_as_assets(authorisation: ServiceUnderTest) -> None:
    """plxtra/xosp Config/Tasks/market-create.ps1: "& dotnet $AuthorityControl Asset Define XOSP
    Market $MarketCode" as the market is created."""
    code = f"X{uuid.uuid4().hex[:6].upper()}"
    hours = TradingHours(open=dt.time(10), close=dt.time(16))
    markets = tuple(
        Market(code=market, currency="AUD", time_zone="Australia/Sydney", trading_hours=hours)
        for market in (code, f"{code}[Demo]")
    )
    exchange = ExchangeAdded(
        code=code, name="XOSP Stock Exchange", markets=markets, market_data_plugin="prodigy", oms_adapter="prodigy"
    )
    handled = await authorisation.handle(exchange)
    assert handled.follow_ups == []
    defined = [a for a in await queries.assets(authorisation.db, AssetType.MARKET) if a.code.startswith(code)]
    assert [(a.asset, a.name, a.defined_flow_id) for a in defined] == [
        (f"Market:{code}", "XOSP Stock Exchange", handled.flow_id),
        (f"Market:{code}[Demo]", "XOSP Stock Exchange", handled.flow_id),
    ]


async def test_logins_arriving_while_their_group_gets_an_account_are_each_told_once(
    authorisation: ServiceUnderTest,
) -> None:
    """The logins' ``UserCreated`` (twelve partitions of xosp.users) and the group's new account
    (xosp.groups) are applied side by side. Each login must be told about the account exactly
    once: by the group's event if it was there first, by its own arrival otherwise. Without the
    group graph's lock each could miss the other's uncommitted rows, and a login would be told
    nothing."""
    group, account = new_group(), new_account()
    logins = [new_login() for _ in range(48)]
    quiet = await authorisation.handle(*(joins(group, login) for login in logins))
    assert quiet.follow_ups == []  # logins not created yet reach nothing

    events: list[Event] = [created(login) for login in logins]
    events.insert(len(events) // 2, gives(group, f"TradingAccount:{account}", TRADE))
    handled = await authorisation.handle(*events)
    told = [
        login.login_id
        for event in handled.follow_ups
        if isinstance(event, AccountAccessGranted) and event.account_id == account
        for login in event.logins
    ]
    assert sorted(told) == sorted(logins)


async def test_a_rebuild_from_the_topics_gives_the_same_assets_associations_and_answers(stack: Stack) -> None:
    """A rebuild empties every table of the schema and replays the topics: the asset types are a
    domain of the schema, not rows, so that associations can be written again."""
    settings = await module_settings(stack)
    login, group, account = new_login(), new_group(), new_account()
    async with ServiceUnderTest(SERVICE, settings) as service:
        await service.handle(created(login, markets=("XSX",)), GroupDefined(group=group, name="Desk"))
        await service.handle(joins(group, login), gives(group, f"TradingAccount:{account}", VIEW, TRADE))
        before = await queries.reach(service.db, f"User:{login}")
        schema = settings.db_schema(SERVICE.name)
        checksum = await state_checksum(service.db, schema)

    report = await rebuild(SERVICE, settings, stack.endpoints)
    assert (report.checksum, report.dead_lettered) == (checksum, 0)
    connection = await asyncpg.connect(settings.database_url or "", server_settings={"search_path": schema})
    try:
        assert await queries.reach(connection, f"User:{login}") == before
        assert before.trades == (account,)
    finally:
        await connection.close()


async def test_the_migration_turns_permission_strings_and_account_links_into_associations(stack: Stack) -> None:
    """A login's markets were ``market-data:<market>`` strings and its accounts ``account_access``
    rows (migration 0001); as user-create.ps1 imports ``MarketAssociations`` and
    ``AccountAssociations`` as associations from ``User`` to ``Market`` and ``TradingAccount``, 0002
    turns them into those, and every permission reads as it did."""
    schema = f"t{uuid.uuid4().hex[:8]}_authorisation_migration"
    migrations = load_migrations(SERVICE.migrations)
    before = [m for m in migrations if m.version < "0002"]
    connection = await asyncpg.connect(stack.endpoints.database_url or "")
    try:
        await migrate(connection, schema, before)
        await connection.execute(f'set search_path to "{schema}"')
        await connection.execute(
            """
            insert into logins (login_id, status, roles, markets, created_flow_id, created_at, updated_at)
            values ('pk-1', 'active', '{Motif:User}', '{XSX,ASX}', 'f-pk-1', now(), now()),
                   ('pk-2', 'disabled', '{}', '{XSX}', 'f-pk-2', now(), now());
            insert into permissions (login_id, permission, granted_at, revoked_at)
            values ('pk-1', 'role:Motif:User', now(), null), ('pk-1', 'market-data:XSX', now(), null),
                   ('pk-1', 'market-data:ASX', now(), null), ('pk-2', 'market-data:XSX', now(), now());
            insert into accounts (account_id, state, opened_flow_id, opened_at)
            values ('XS:0001', 'open', 'f-open-1', now()), ('XS:0002', 'open', 'f-open-2', now());
            insert into account_access (account_id, login_id, rights, flow_id, granted_at, revoked_by, revoked_at)
            values ('XS:0001', 'pk-1', '{view,trade}', 'f-open-1', now(), null, null),
                   ('XS:0002', 'pk-1', '{view}', 'f-link', now(), 'account_login', now()),
                   ('XS:0001', 'pk-2', '{trade}', 'f-open-1', now(), 'login', now());
            """
        )
        held_before = await _held(connection)

        assert await migrate(connection, schema, migrations) == [m.version for m in migrations if m not in before]
        assert await _held(connection) == held_before
        assert [
            (a.from_asset, a.to_asset, a.rights, a.flow_id, a.revoked_by)
            for a in await queries.associations(connection, "User:pk-1")
        ] == [
            ("User:pk-1", "Market:ASX", (), "f-pk-1", None),
            ("User:pk-1", "Market:XSX", (), "f-pk-1", None),
            ("User:pk-1", "TradingAccount:XS:0001", ("view", "trade"), "f-open-1", None),
            ("User:pk-1", "TradingAccount:XS:0002", ("view",), "f-link", "account_login"),
        ]
        assert [(a.to_asset, a.revoked_by) for a in await queries.associations(connection, "User:pk-2")] == [
            ("Market:XSX", "login"),
            ("TradingAccount:XS:0001", "login"),
        ]
        assert [a.asset for a in await queries.assets(connection)] == [
            "TradingAccount:XS:0001",
            "TradingAccount:XS:0002",
            "User:pk-1",
            "User:pk-2",
        ]
        reach = await queries.reach(connection, "User:pk-1")
        assert (reach.markets, reach.trades) == (("ASX", "XSX"), ("XS:0001",))
        assert await queries.reach(connection, "User:pk-2") == queries.Reach("User:pk-2", (), (), ())
    finally:
        await connection.execute(f'drop schema if exists "{schema}" cascade')
        await connection.close()


async def _held(connection: asyncpg.Connection) -> list[tuple[str, str, bool]]:
    """Every login's permissions as queries.permissions reads them: (login, permission, in force)."""
    return [
        (login, grant.permission, grant.active)
        for login in ("pk-1", "pk-2")
        for grant in await queries.permissions(connection, login)
    ]


async def test_a_groups_association_waits_for_batches_reading_the_groups_and_they_for_it(stack: Stack) -> None:
    """The runtime takes the group graph with each batch's locks (``Service.shared_lock``): shared
    for a batch of logins, alone for a batch of a group's association. Two batches of logins share
    it; a group's batch waits for them, and they for it. A batch of a group's association and a
    login takes it last, after the pending locks its login's arrival finds, as it takes it shared:
    holding it alone while it waits for one of those, it would wait for a batch that may wait for it."""
    schema = f"t{uuid.uuid4().hex[:8]}_authorisation_graph"
    url = stack.endpoints.database_url or ""
    setup = await asyncpg.connect(url)
    await migrate(setup, schema, load_migrations(SERVICE.migrations))
    first, second, group = [await asyncpg.connect(url, server_settings={"search_path": schema}) for _ in range(3)]

    def batch(*events: Event) -> list[tuple[Event, Envelope]]:
        return [(e, Envelope.new(type=e.event_type, subject=e.aggregate_id, source="tests")) for e in events]

    async def graph_held(connection: asyncpg.Connection) -> str | None:
        mode = await setup.fetchval(
            "select mode from pg_locks where locktype = 'advisory' and pid = $1 "
            "and objid = (hashtextextended($2, 0) & 4294967295)::oid",  # the key's low 32 bits
            connection.get_server_pid(),
            f"{SERVICE_NAME}:{GROUP_GRAPH}",
        )
        return None if mode is None else str(mode)

    try:
        for connection in (first, second, group):
            await connection.execute("begin")
        await SERVICE.hold_batch_locks(first, batch(created(new_login())))
        await asyncio.wait_for(SERVICE.hold_batch_locks(second, batch(created(new_login()))), timeout=5)
        assert (await graph_held(first), await graph_held(second)) == ("ShareLock", "ShareLock")

        waiting = asyncio.create_task(SERVICE.hold_batch_locks(group, batch(joins(new_group(), new_login()))))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await first.execute("commit")
        await second.execute("commit")
        await asyncio.wait_for(waiting, timeout=5)
        assert await graph_held(group) == "ExclusiveLock"

        await first.execute("begin")
        reading = asyncio.create_task(SERVICE.hold_batch_locks(first, batch(created(new_login()))))
        await asyncio.sleep(0.5)
        assert not reading.done()
        await group.execute("commit")
        await asyncio.wait_for(reading, timeout=5)
        await first.execute("commit")

        # an association of account A waits for logins L1 and L2; L1's batch holds A's pending lock
        account, l1, l2 = new_account(), new_login(), new_login()
        await setup.execute(
            f"""
            set search_path = "{schema}";
            insert into accounts (account_id, state, opened_flow_id, opened_at)
            values ('{account}', 'open', 'f', now());
            insert into pending_access (flow_id, account_id, received_at) values ('f', '{account}', now());
            insert into pending_access_logins (flow_id, position, login_id, rights)
            values ('f', 0, '{l1}', '{{view}}'), ('f', 1, '{l2}', '{{view}}');
            reset search_path
            """
        )
        await first.execute("begin")
        await SERVICE.hold_batch_locks(first, batch(created(l1)))
        await group.execute("begin")
        mixed = batch(joins(new_group(), new_login()), created(l2))
        both = asyncio.create_task(SERVICE.hold_batch_locks(group, mixed))
        await asyncio.sleep(0.5)
        assert not both.done()
        assert await graph_held(group) is None, "waiting for A's pending lock, the group's batch holds no graph yet"
        await first.execute("commit")
        await asyncio.wait_for(both, timeout=5)
        assert await graph_held(group) == "ExclusiveLock"
        await group.execute("commit")
    finally:
        for connection in (first, second, group):
            await connection.close()
        await setup.execute(f'drop schema if exists "{schema}" cascade')
        await setup.close()
