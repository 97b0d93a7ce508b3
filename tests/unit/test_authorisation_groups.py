"""Groups in Resource Authorisation (consumers/authorisation/groups.py and what the login and account
handlers do with them), on a FakeUnitOfWork over an in-memory store: associations from and to a
group followed transitively, through groups in groups and around their cycles, and what each
change announces to the readers that keep access themselves (the OMS's trade rights). The SQL of
the walk is proven on the real stack (tests/integration/test_authorisation_groups.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consumers.authorisation.reach import Asset
from consumers.authorisation.store import Entitlements
from consumers.runtime import FakeUnitOfWork
from schemas import Event
from schemas.accounts import AccountLogin, AccountLoginUnlinked
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted, RevokedScope
from schemas.groups import AssetType, GroupAssociationDefined, GroupAssociationUndefined, GroupDefined
from schemas.types import AccountRight
from schemas.users import UserDisabled, UserEnabled
from tests.support.memory_authorisation import MemoryEntitlements
from tests.unit.test_authorisation_handlers import closed, created, handle, opened, with_logins

VIEW, TRADE, ADMIN = AccountRight.VIEW, AccountRight.TRADE, AccountRight.ADMIN
LOGIN = "1234"


def joins(group: str, member: str = f"User:{LOGIN}") -> GroupAssociationDefined:
    return GroupAssociationDefined(group=group, from_asset=member, to_asset=f"Group:{group}")


def gives(group: str, asset: str, *rights: AccountRight) -> GroupAssociationDefined:
    return GroupAssociationDefined(group=group, from_asset=f"Group:{group}", to_asset=asset, rights=rights)


def removed(association: GroupAssociationDefined) -> GroupAssociationUndefined:
    return GroupAssociationUndefined(
        group=association.group, from_asset=association.from_asset, to_asset=association.to_asset
    )


def granted(unit: FakeUnitOfWork[Entitlements], account_id: str, *logins: AccountLogin) -> AccountAccessGranted:
    return AccountAccessGranted(flow_id=unit.cause.id, account_id=account_id, logins=logins)


def permissions(unit: FakeUnitOfWork[Entitlements], *names: str, login_id: str = LOGIN) -> PermissionsGranted:
    return PermissionsGranted(flow_id=unit.cause.id, login_id=login_id, permissions=names, login_active=True)


def access(login_id: str, *rights: AccountRight) -> AccountLogin:
    return AccountLogin(login_id=login_id, rights=rights)


async def run_all(book: MemoryEntitlements, *events: Event) -> list[Event]:
    recorded: list[Event] = []
    for event in events:
        recorded += (await handle(event, book)).events
    return recorded


async def test_the_reference_lists_a_logins_transitive_associations_through_its_group() -> None:
    """authority-api, cli/association/transitive.md: `Association Transitive XOSP User 1234` lists
    "User,1234,Group,DTR", "User,1234,Market,XSX", "Group,DTR,TradingAccount,XS:0001" ... "XS:0004":
    defining the group's accounts gives login 1234 each of them."""
    book = await with_logins(LOGIN)  # markets ("XSX",): the login's own User -> Market association
    await handle(joins("DTR"), book)
    units = [await handle(gives("DTR", f"TradingAccount:XS:000{n}", VIEW, TRADE), book) for n in range(1, 5)]
    for n, unit in enumerate(units, start=1):
        trades = tuple(f"trade:XS:000{k}" for k in range(1, n + 1))
        assert unit.events == [
            granted(unit, f"XS:000{n}", access(LOGIN, VIEW, TRADE)),
            permissions(unit, "market-data:XSX", "role:Motif:User", *trades),
        ]
    reached = {(str(a.source), str(a.target)) for a in await book.reached(Asset.user(LOGIN))}
    assert reached == {
        (f"User:{LOGIN}", "Group:DTR"),
        (f"User:{LOGIN}", "Market:XSX"),
        *((("Group:DTR", f"TradingAccount:XS:000{n}")) for n in range(1, 5)),
    }


async def test_joining_a_group_gives_the_login_what_the_group_is_associated_with() -> None:
    """authority-api, concepts/permissions.md: the Authority service "will then locate all associated
    Assets, and recursively any associated Assets of those Assets (their transitive relations)"."""
    book = await with_logins(LOGIN)
    await run_all(book, gives("Traders", "TradingAccount:XS:0001", TRADE), gives("Traders", "Market:ASX"))
    unit = await handle(joins("Traders"), book)
    assert unit.events == [
        granted(unit, "XS:0001", access(LOGIN, TRADE)),
        permissions(unit, "market-data:ASX", "market-data:XSX", "role:Motif:User", "trade:XS:0001"),
    ]


async def test_a_group_in_a_group_gives_its_members_what_the_inner_group_gives() -> None:
    book = await with_logins(LOGIN)
    await run_all(book, joins("Outer"), gives("Inner", "TradingAccount:XS:0001", VIEW))
    unit = await handle(gives("Outer", "Group:Inner"), book)
    assert unit.events == [granted(unit, "XS:0001", access(LOGIN, VIEW))]  # view only: no permission string


async def test_a_cycle_of_groups_ends_where_it_closes_and_changes_nothing() -> None:
    book = await with_logins(LOGIN)
    await run_all(book, joins("A"), gives("A", "Group:B"), gives("B", "TradingAccount:XS:0001", TRADE))
    unit = await handle(gives("B", "Group:A"), book)  # B -> A closes the cycle A -> B -> A
    assert unit.events == []
    reached = await book.reached(Asset.user(LOGIN))
    assert sorted((str(a.source), str(a.target)) for a in reached) == [
        ("Group:A", "Group:B"),
        ("Group:B", "Group:A"),
        ("Group:B", "TradingAccount:XS:0001"),
        (f"User:{LOGIN}", "Group:A"),
        (f"User:{LOGIN}", "Market:XSX"),
    ]
    again = await handle(gives("B", "TradingAccount:XS:0002", VIEW), book)
    assert again.events == [granted(again, "XS:0002", access(LOGIN, VIEW))]


async def test_removing_a_groups_association_revokes_what_only_it_gave() -> None:
    """authority-api, cli/association/undefine.md: "Undefines (removes) an Association. Does not
    remove any associated Assets." """
    book = await with_logins(LOGIN, "other")
    account = gives("Traders", "TradingAccount:XS:0001", VIEW, TRADE)
    await run_all(book, joins("Traders"), joins("Traders", "User:other"), account)
    unit = await handle(removed(account), book)
    assert unit.events == [
        AccessRevoked(
            flow_id=unit.cause.id,
            scope=RevokedScope.ACCOUNT_LOGIN,
            subject_id="XS:0001",
            account_id="XS:0001",
            login_ids=(LOGIN, "other"),
            reason="association Group:Traders -> TradingAccount:XS:0001 removed",
        ),
        permissions(unit, "market-data:XSX", "role:Motif:User"),
        permissions(unit, "market-data:XSX", "role:Motif:User", login_id="other"),
    ]
    assert await book.logins_reaching(Asset(AssetType.GROUP, "Traders")) == [LOGIN, "other"]


async def test_leaving_a_group_keeps_what_the_login_has_of_its_own_there() -> None:
    book = await with_logins(LOGIN)
    await handle(opened(access(LOGIN, VIEW), account_id="XS:0001"), book)
    membership = joins("Traders")
    await run_all(book, membership, gives("Traders", "TradingAccount:XS:0001", TRADE))
    unit = await handle(removed(membership), book)
    assert unit.events == [
        granted(unit, "XS:0001", access(LOGIN, VIEW)),
        permissions(unit, "market-data:XSX", "role:Motif:User"),
    ]


async def test_removing_an_association_never_defined_changes_nothing() -> None:
    book = await with_logins(LOGIN)
    unit = await handle(removed(gives("Traders", "TradingAccount:XS:0001", VIEW)), book)
    assert (unit.events, book.associations.keys() - {(Asset.user(LOGIN), Asset(AssetType.MARKET, "XSX"))}) == (
        [],
        set(),
    )


async def test_a_group_redefined_with_other_rights_announces_them() -> None:
    book = await with_logins(LOGIN)
    await run_all(book, joins("Traders"), gives("Traders", "TradingAccount:XS:0001", VIEW, TRADE))
    unit = await handle(gives("Traders", "TradingAccount:XS:0001", VIEW), book)
    assert unit.events == [
        granted(unit, "XS:0001", access(LOGIN, VIEW)),
        permissions(unit, "market-data:XSX", "role:Motif:User"),
    ]


async def test_a_logins_own_association_announces_what_its_groups_add_there() -> None:
    book = await with_logins(LOGIN)
    await run_all(book, joins("Admins"), gives("Admins", "TradingAccount:XS:0001", ADMIN))
    opening = await handle(opened(access(LOGIN, VIEW), account_id="XS:0001"), book)
    assert opening.events == [granted(opening, "XS:0001", access(LOGIN, VIEW, ADMIN))]


async def test_an_unlinked_login_keeps_what_its_groups_give_and_the_reader_is_told_so() -> None:
    """The OMS forgets a login's rights on an ``AccessRevoked`` of the account and the login, and
    takes them from the next ``AccountAccessGranted``: both come, in that order."""
    book = await with_logins(LOGIN)
    await handle(opened(access(LOGIN, VIEW, TRADE), account_id="XS:0001"), book)
    await run_all(book, joins("Viewers"), gives("Viewers", "TradingAccount:XS:0001", VIEW))
    unit = await handle(AccountLoginUnlinked(account_id="XS:0001", login_id=LOGIN), book)
    assert [type(event) for event in unit.events] == [AccessRevoked, AccountAccessGranted]
    assert unit.events[1] == granted(unit, "XS:0001", access(LOGIN, VIEW))
    assert book.access[("XS:0001", LOGIN)].revoked_by == "account_login"


async def test_a_login_associated_with_a_group_before_it_arrives_is_told_what_it_reaches_on_arrival() -> None:
    book = MemoryEntitlements()
    quiet = await run_all(book, joins("Traders"), gives("Traders", "TradingAccount:XS:0001", TRADE))
    assert quiet == []  # a login never created reaches nothing yet
    unit = await handle(created(LOGIN, markets=()), book)
    assert unit.events == [
        granted(unit, "XS:0001", access(LOGIN, TRADE)),
        permissions(unit, "role:Motif:User", "trade:XS:0001"),
    ]


async def test_a_disabled_login_reaches_nothing_and_its_enable_announces_what_its_groups_give() -> None:
    book = await with_logins(LOGIN)
    await handle(UserDisabled(login_id=LOGIN, reason="on leave"), book)
    quiet = await run_all(book, joins("Traders"), gives("Traders", "TradingAccount:XS:0001", TRADE))
    assert quiet == []
    assert book.associations[(Asset.user(LOGIN), Asset(AssetType.GROUP, "Traders"))].revoked_by == "login"
    unit = await handle(UserEnabled(login_id=LOGIN), book)
    assert unit.events == [
        permissions(unit, "market-data:XSX", "role:Motif:User", "trade:XS:0001"),
        granted(unit, "XS:0001", access(LOGIN, TRADE)),
    ]


async def test_a_closed_account_is_reached_through_no_group_and_a_later_association_is_born_revoked() -> None:
    book = await with_logins(LOGIN)
    await handle(opened(account_id="XS:0001"), book)
    await run_all(book, joins("Traders"), gives("Traders", "TradingAccount:XS:0001", TRADE))
    await handle(closed("XS:0001"), book)
    assert book.associations[(Asset(AssetType.GROUP, "Traders"), Asset.named("TradingAccount:XS:0001"))].revoked_by == (
        "account"
    )
    unit = await handle(gives("Other", "TradingAccount:XS:0001", VIEW), book)
    assert unit.events == []
    key = (Asset(AssetType.GROUP, "Other"), Asset.named("TradingAccount:XS:0001"))
    assert book.associations[key].revoked_by == "account"
    assert await book.effective_permissions(LOGIN) == ("market-data:XSX", "role:Motif:User")


async def test_a_client_in_a_group_reaches_what_it_gives_and_is_announced_to_no_login_reader() -> None:
    """authority-init.ps1 associates clients (``Asset Define XOSP Client $ClientId``) with markets;
    a client is no login: what it reaches is answered when asked (queries.reach), not announced."""
    book = MemoryEntitlements()
    unit = await handle(joins("Feeds", "Client:OMS$Service"), book)
    await handle(gives("Feeds", "Market:XSX"), book)
    assert unit.events == []
    [association] = [
        a for a in await book.reached(Asset.named("Client:OMS$Service")) if a.target.type is AssetType.MARKET
    ]
    assert str(association.target) == "Market:XSX"


async def test_a_group_is_defined_with_a_name_and_defined_again_keeps_it_unless_renamed() -> None:
    book = MemoryEntitlements()
    first = await handle(GroupDefined(group="Traders", name="Desk traders"), book)
    await handle(GroupDefined(group="Traders"), book)
    group = Asset(AssetType.GROUP, "Traders")
    assert (first.events, book.definitions[group]) == ([], ("Desk traders", first.cause.id))
    await handle(GroupDefined(group="Traders", name="Traders"), book)
    assert book.definitions[group] == ("Traders", first.cause.id)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"from_asset": "User:1", "to_asset": "Group:Other"}, "must be Group:G"),
        ({"from_asset": "Group:G", "to_asset": "User:1"}, "User:1 cannot be given by Group:G"),
        ({"from_asset": "Market:XSX", "to_asset": "Group:G"}, "Market:XSX cannot be a member of Group:G"),
        ({"from_asset": "Group:G", "to_asset": "Group:G"}, "not from Group:G to itself"),
        ({"from_asset": "Group:G", "to_asset": "TradingAccount:XS:1"}, "needs rights"),
        ({"from_asset": "Group:G", "to_asset": "Market:XSX", "rights": ("view",)}, "rights belong"),
        ({"from_asset": "Group:G", "to_asset": "Account:XS:1"}, "pattern"),
        ({"from_asset": "Group:G", "to_asset": "Market:xsx"}, "does not match"),
    ],
)
def test_an_association_that_the_group_cannot_have_is_refused_at_the_edge(fields: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        GroupAssociationDefined.model_validate({"group": "G", **fields})


def test_the_asset_types_are_the_reference_deployments_and_group() -> None:
    """plxtra/xosp Config/Init/asset-types.csv: "Code / Client / Market / News / TradingAccount / User";
    authority-api's examples add ``Group`` (``Group:SuperUsers``, ``Group,DTR``)."""
    assert sorted(AssetType) == ["Client", "Group", "Market", "News", "TradingAccount", "User"]
