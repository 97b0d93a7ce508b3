"""Resource Authorisation's rules, on a FakeUnitOfWork over an in-memory store: a login's
permissions from its roles and markets (created once, updated, revoked by a disable or a delete and
restored by an enable), trading-account access (granted at once or kept pending until every login
it names is known, unlinked, revoked for good by a close), what is refused as a failed step, and
the compensation of a failed opening, even one whose failure arrives first (the permission
strings alone are in test_authorisation_permissions.py; the SQL, its view and the runtime are
proven on the real stack in tests/integration/test_authorisation.py)."""

from __future__ import annotations

from typing import TypeVar

import pytest

from consumers.authorisation.service import SERVICE
from consumers.authorisation.store import Entitlements
from consumers.runtime import DomainError, FakeUnitOfWork, MissingPrerequisite
from schemas import Event
from schemas.accounts import AccountLogin, AccountLoginLinked, AccountLoginUnlinked, Investor, TradingAccountOpened
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted, RevokedScope
from schemas.oms import AccountState, OmsAccountStateChanged
from schemas.provisioning import FlowKind, ProvisioningFailed, StepFailed, StepWaiting
from schemas.registry import RegistryAccountStateChanged
from schemas.types import AccountRight, InvestorType, Role
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated
from tests.support.memory_authorisation import MemoryEntitlements

ACCOUNT = "XS:acct1"
OTHER_ACCOUNT = "XS:acct2"
VIEW, TRADE = AccountRight.VIEW, AccountRight.TRADE
E = TypeVar("E", bound=Event)


def unit_of(event: Event, book: MemoryEntitlements) -> FakeUnitOfWork[Entitlements]:
    """The unit of work ``event`` will be handled in: its flow id is known before it is handled."""
    return FakeUnitOfWork.handling(event, book, service="authorisation")


async def handle(event: Event, book: MemoryEntitlements) -> FakeUnitOfWork[Entitlements]:
    return await run(event, unit_of(event, book))


async def run(event: Event, unit: FakeUnitOfWork[Entitlements]) -> FakeUnitOfWork[Entitlements]:
    await SERVICE.by_type[event.event_type](event, unit)
    return unit


def created(
    login_id: str = "pk-1", roles: tuple[Role, ...] = (Role.MOTIF_USER,), markets: tuple[str, ...] = ("XSX",)
) -> UserCreated:
    return UserCreated(
        login_id=login_id,
        username=login_id,
        email=f"{login_id}@example.com",
        display_name=login_id.upper(),
        roles=roles,
        markets=markets,
    )


def access(login_id: str, *rights: AccountRight) -> AccountLogin:
    return AccountLogin(login_id=login_id, rights=rights or (VIEW, TRADE))


def opened(*logins: AccountLogin, account_id: str = ACCOUNT) -> TradingAccountOpened:
    return TradingAccountOpened(
        account_id=account_id,
        owner="XS",
        name="Pat's account",
        classification="Retail",
        default_currency="AUD",
        investor=Investor(investor_id="inv-1", full_name="Pat Kim", country="AU", type=InvestorType.INDIVIDUAL),
        logins=logins,
    )


def closed(
    account_id: str = ACCOUNT, reason: str | None = "closed at the investor's request"
) -> RegistryAccountStateChanged:
    return RegistryAccountStateChanged(
        flow_id="close-1", account_id=account_id, state=AccountState.CLOSED, reason=reason
    )


def opening_failed(flow_id: str, *, kind: FlowKind = FlowKind.ACCOUNT, service: str = "registry") -> ProvisioningFailed:
    return ProvisioningFailed(
        flow_id=flow_id, kind=kind, entity_id=ACCOUNT, service=service, step="registry.account", reason="bad investor"
    )


async def with_logins(*login_ids: str) -> MemoryEntitlements:
    book = MemoryEntitlements()
    for login_id in login_ids:
        await handle(created(login_id), book)
    return book


async def effective(book: MemoryEntitlements, login_id: str = "pk-1") -> tuple[str, ...]:
    return await book.effective_permissions(login_id)


def only(unit: FakeUnitOfWork[Entitlements], kind: type[E]) -> E:
    """The one follow-up the unit recorded, of type ``kind``."""
    [event] = unit.events
    assert isinstance(event, kind), unit.events
    return event


def only_of(unit: FakeUnitOfWork[Entitlements], kind: type[E]) -> E:
    """The one follow-up of type ``kind`` the unit recorded, among others."""
    [event] = [event for event in unit.events if isinstance(event, kind)]
    return event


def failed_step(unit: FakeUnitOfWork[Entitlements]) -> StepFailed:
    failed = only(unit, StepFailed)
    assert failed.service == "authorisation"
    return failed


# --- logins and their permissions ---------------------------------------------------------------


async def test_a_new_login_gets_a_permission_per_role_and_market_reported_in_its_flow() -> None:
    book = MemoryEntitlements()
    unit = await handle(created(roles=(Role.ZENITH_ADMINISTRATOR, Role.MOTIF_USER), markets=("XSX", "ASX")), book)
    expected = ("market-data:ASX", "market-data:XSX", "role:Motif:User", "role:Zenith:Administrator")
    assert unit.events == [
        PermissionsGranted(flow_id=unit.cause.id, login_id="pk-1", permissions=expected, login_active=True)
    ]
    stored = book.logins["pk-1"]
    assert (stored.status, stored.created_flow_id, stored.markets) == ("active", unit.cause.id, ["XSX", "ASX"])


@pytest.mark.parametrize("status", ["active", "disabled", "deleted"])
async def test_a_login_created_twice_fails_the_permissions_step_and_changes_nothing(status: str) -> None:
    book = await with_logins("pk-1")
    book.logins["pk-1"].status = status
    unit = await handle(created(roles=(Role.ZENITH_ADMINISTRATOR,)), book)
    failed = failed_step(unit)
    assert (failed.flow_id, failed.step) == (unit.cause.id, "authorisation.permissions")
    assert failed.reason == f"login pk-1 already exists ({status})"
    assert book.logins["pk-1"].roles == ["Motif:User"]


async def test_new_roles_replace_the_role_permissions_and_keep_the_markets() -> None:
    book = await with_logins("pk-1")
    unit = await handle(UserUpdated(login_id="pk-1", roles=(Role.FOUNDRY_OPERATOR,)), book)
    expected = ("market-data:XSX", "role:Foundry:Operator")
    assert unit.events == [
        PermissionsGranted(flow_id=unit.cause.id, login_id="pk-1", permissions=expected, login_active=True)
    ]
    assert await effective(book) == expected


async def test_new_markets_replace_the_market_permissions_and_keep_the_roles() -> None:
    book = await with_logins("pk-1")
    unit = await handle(UserUpdated(login_id="pk-1", markets=("ASX", "XSX[Demo]")), book)
    expected = ("market-data:ASX", "market-data:XSX[Demo]", "role:Motif:User")
    assert unit.events == [
        PermissionsGranted(flow_id=unit.cause.id, login_id="pk-1", permissions=expected, login_active=True)
    ]


async def test_an_update_without_roles_or_markets_is_not_authorisations_business() -> None:
    unit = await handle(UserUpdated(login_id="pk-1", display_name="Renamed"), MemoryEntitlements())
    assert unit.events == []  # not even for a login it never heard of


async def test_an_update_of_a_login_never_created_waits_for_its_creation() -> None:
    with pytest.raises(MissingPrerequisite) as waiting:
        await handle(UserUpdated(login_id="pk-1", markets=("XSX",)), MemoryEntitlements())
    assert waiting.value.waits_for == "pk-1"


async def test_an_update_of_a_deleted_login_is_refused_for_a_person() -> None:
    book = await with_logins("pk-1")
    await handle(UserDeleted(login_id="pk-1"), book)
    with pytest.raises(DomainError, match="login pk-1 is deleted") as refused:
        await handle(UserUpdated(login_id="pk-1", markets=("ASX",)), book)
    assert not isinstance(refused.value, MissingPrerequisite)
    assert book.logins["pk-1"].markets == ["XSX"]


async def test_a_disabled_login_loses_its_permissions_and_access_and_the_revocation_is_reported() -> None:
    book = await with_logins("pk-1")
    await handle(opened(access("pk-1")), book)
    unit = await handle(UserDisabled(login_id="pk-1", reason="left the firm"), book)
    assert unit.events == [
        AccessRevoked(
            flow_id=unit.cause.id,
            scope=RevokedScope.LOGIN,
            subject_id="pk-1",
            login_ids=("pk-1",),
            reason="left the firm",
        )
    ]
    assert (book.logins["pk-1"].status, await effective(book)) == ("disabled", ())
    assert book.access[(ACCOUNT, "pk-1")].revoked_by == "login"


async def test_a_reason_is_cut_to_fit_the_event_only_when_too_long() -> None:
    book = await with_logins("pk-1")
    fits = await handle(UserDisabled(login_id="pk-1", reason="x" * 200), book)
    opening = await handle(opened(), book)
    failure = opening_failed(opening.cause.id).model_copy(update={"reason": "y" * 500})
    cut = await handle(failure, book)
    prefix = "compensation: registry.account failed: "
    assert [event.reason for event in fits.events + cut.events if isinstance(event, AccessRevoked)] == [
        "x" * 200,
        prefix + "y" * (199 - len(prefix)) + "…",
    ]


async def test_a_permission_granted_while_disabled_is_held_back_until_the_enable() -> None:
    book = await with_logins("pk-1")
    await handle(UserDisabled(login_id="pk-1", reason="on leave"), book)
    update = await handle(UserUpdated(login_id="pk-1", roles=(Role.FOUNDRY_OPERATOR,)), book)
    assert update.events == [
        PermissionsGranted(flow_id=update.cause.id, login_id="pk-1", permissions=(), login_active=False)
    ]
    enable = await handle(UserEnabled(login_id="pk-1"), book)
    assert enable.events == [
        PermissionsGranted(
            flow_id=enable.cause.id,
            login_id="pk-1",
            permissions=("market-data:XSX", "role:Foundry:Operator"),
            login_active=True,
        )
    ]


async def test_an_enable_restores_what_the_disable_took_and_announces_each_account_again() -> None:
    book = await with_logins("pk-1")
    await handle(opened(access("pk-1", VIEW, TRADE), account_id=OTHER_ACCOUNT), book)
    await handle(opened(access("pk-1", VIEW)), book)
    await handle(UserDisabled(login_id="pk-1", reason="on leave"), book)
    unit = await handle(UserEnabled(login_id="pk-1"), book)
    assert unit.events == [
        PermissionsGranted(
            flow_id=unit.cause.id,
            login_id="pk-1",
            permissions=("market-data:XSX", "role:Motif:User", f"trade:{OTHER_ACCOUNT}"),
            login_active=True,
        ),
        AccountAccessGranted(flow_id=unit.cause.id, account_id=ACCOUNT, logins=(access("pk-1", VIEW),)),
        AccountAccessGranted(flow_id=unit.cause.id, account_id=OTHER_ACCOUNT, logins=(access("pk-1", VIEW, TRADE),)),
    ]
    assert book.logins["pk-1"].status == "active"


async def test_an_enable_does_not_restore_access_an_unlink_or_a_close_took_away() -> None:
    book = await with_logins("pk-1")
    await handle(opened(access("pk-1")), book)
    await handle(opened(access("pk-1"), account_id=OTHER_ACCOUNT), book)
    await handle(AccountLoginUnlinked(account_id=ACCOUNT, login_id="pk-1"), book)
    await handle(closed(OTHER_ACCOUNT), book)
    await handle(UserDisabled(login_id="pk-1", reason="on leave"), book)
    unit = await handle(UserEnabled(login_id="pk-1"), book)
    granted = only(unit, PermissionsGranted)
    assert granted.permissions == ("market-data:XSX", "role:Motif:User")
    assert (book.access[(ACCOUNT, "pk-1")].revoked_by, book.access[(OTHER_ACCOUNT, "pk-1")].revoked_by) == (
        "account_login",
        "account",
    )


@pytest.mark.parametrize(
    ("event", "step"),
    [
        (UserDisabled(login_id="pk-1", reason="r"), "authorisation.revoke"),
        (UserEnabled(login_id="pk-1"), "authorisation.enable"),
    ],
)
@pytest.mark.parametrize("status", [None, "deleted"])
async def test_a_status_change_of_an_unknown_or_deleted_login_fails_its_step(
    event: Event, step: str, status: str | None
) -> None:
    book = MemoryEntitlements() if status is None else await with_logins("pk-1")
    if status is not None:
        book.logins["pk-1"].status = status
    unit = await handle(event, book)
    failed = failed_step(unit)
    assert (failed.flow_id, failed.step) == (unit.cause.id, step)
    assert failed.reason == f"login pk-1 is {status or 'unknown'}"
    assert status is None or book.logins["pk-1"].status == status


@pytest.mark.parametrize(("reason", "reported"), [("gdpr", "gdpr"), (None, "login deleted")])
async def test_a_deleted_login_loses_everything_for_good(reason: str | None, reported: str) -> None:
    book = await with_logins("pk-1")
    await handle(opened(access("pk-1")), book)
    unit = await handle(UserDeleted(login_id="pk-1", reason=reason), book)
    assert unit.events == [
        AccessRevoked(
            flow_id=unit.cause.id, scope=RevokedScope.LOGIN, subject_id="pk-1", login_ids=("pk-1",), reason=reported
        )
    ]
    assert (book.logins["pk-1"].status, await effective(book)) == ("deleted", ())
    relink = await handle(AccountLoginLinked(account_id=ACCOUNT, login_id="pk-1", rights=(VIEW,)), book)
    assert relink.events == [AccountAccessGranted(flow_id=relink.cause.id, account_id=ACCOUNT, logins=())]


async def test_deleting_a_login_never_created_changes_nothing() -> None:
    book = MemoryEntitlements()
    unit = await handle(UserDeleted(login_id="pk-1", reason="gdpr"), book)
    assert (unit.events, book.logins) == ([], {})


# --- accounts and access ------------------------------------------------------------------------


async def test_an_account_without_logins_is_granted_at_once() -> None:
    book = MemoryEntitlements()
    unit = await handle(opened(), book)
    assert unit.events == [AccountAccessGranted(flow_id=unit.cause.id, account_id=ACCOUNT, logins=())]
    stored = book.accounts[ACCOUNT]
    assert (stored.state, stored.opened_flow_id) == ("open", unit.cause.id)


async def test_an_account_naming_known_logins_grants_them_and_the_trade_right_gives_a_permission() -> None:
    book = await with_logins("pk-1", "pk-2")
    logins = (access("pk-1", VIEW, TRADE), access("pk-2", VIEW))
    unit = await handle(opened(*logins), book)
    assert unit.events == [AccountAccessGranted(flow_id=unit.cause.id, account_id=ACCOUNT, logins=logins)]
    assert await effective(book, "pk-1") == ("market-data:XSX", "role:Motif:User", f"trade:{ACCOUNT}")
    assert await effective(book, "pk-2") == ("market-data:XSX", "role:Motif:User")


async def test_an_account_naming_an_unknown_login_waits_then_is_granted_whole_when_it_arrives() -> None:
    book = await with_logins("pk-1")
    logins = (access("pk-1"), access("pk-2", VIEW), access("pk-3", VIEW))
    opening = await handle(opened(*logins), book)
    assert opening.events == [
        StepWaiting(
            flow_id=opening.cause.id,
            service="authorisation",
            step="authorisation.access",
            reason=f"account {ACCOUNT} names logins not known yet: pk-2, pk-3",
            waiting_for=("login:pk-2", "login:pk-3"),
        )
    ]
    assert book.access == {}
    first = await handle(created("pk-2"), book)
    assert [type(event) for event in first.events] == [PermissionsGranted]  # pk-3 is still missing
    last = await handle(created("pk-3"), book)
    assert last.events == [
        AccountAccessGranted(flow_id=opening.cause.id, account_id=ACCOUNT, logins=logins),
        PermissionsGranted(
            flow_id=last.cause.id,
            login_id="pk-3",
            permissions=("market-data:XSX", "role:Motif:User"),
            login_active=True,
        ),
    ]
    assert (book.pending, book.access[(ACCOUNT, "pk-3")].flow_id) == ({}, opening.cause.id)


async def test_a_login_arriving_grants_every_association_waiting_for_it_oldest_first() -> None:
    book = MemoryEntitlements()
    opening = await handle(opened(access("pk-1")), book)
    other = await handle(opened(account_id=OTHER_ACCOUNT), book)
    link = await handle(AccountLoginLinked(account_id=OTHER_ACCOUNT, login_id="pk-1", rights=(VIEW,)), book)
    assert [type(event) for event in opening.events + other.events + link.events] == [
        StepWaiting,
        AccountAccessGranted,
        StepWaiting,
    ]
    arrival = await handle(created("pk-1"), book)
    assert arrival.events[:2] == [
        AccountAccessGranted(flow_id=opening.cause.id, account_id=ACCOUNT, logins=(access("pk-1"),)),
        AccountAccessGranted(flow_id=link.cause.id, account_id=OTHER_ACCOUNT, logins=(access("pk-1", VIEW),)),
    ]


async def test_a_login_arriving_to_a_waiting_trade_association_reports_the_trade_permission() -> None:
    """What the login reaches is read after the association waiting for it is granted, so its
    permissions report the trade right it brings (its creation reads nothing else otherwise)."""
    book = MemoryEntitlements()
    await handle(opened(access("pk-1", VIEW, TRADE)), book)
    arrival = await handle(created("pk-1"), book)
    assert only_of(arrival, PermissionsGranted).permissions == (
        "market-data:XSX",
        "role:Motif:User",
        f"trade:{ACCOUNT}",
    )


async def test_an_account_opened_twice_fails_the_access_step_and_changes_nothing() -> None:
    book = MemoryEntitlements()
    first = await handle(opened(), book)
    unit = await handle(opened(), book)
    failed = failed_step(unit)
    assert (failed.flow_id, failed.step) == (unit.cause.id, "authorisation.access")
    assert failed.reason == f"account {ACCOUNT} was already opened (flow {first.cause.id})"
    assert book.accounts[ACCOUNT].opened_flow_id == first.cause.id


async def test_an_opening_after_its_close_stays_closed_and_grants_nothing() -> None:
    book = await with_logins("pk-1")
    await handle(closed(), book)
    unit = await handle(opened(access("pk-1")), book)
    assert unit.events == [AccountAccessGranted(flow_id=unit.cause.id, account_id=ACCOUNT, logins=())]
    assert (book.accounts[ACCOUNT].state, book.access[(ACCOUNT, "pk-1")].revoked_by) == ("closed", "account")


async def test_a_login_associated_while_disabled_is_left_out_until_enabled() -> None:
    book = await with_logins("pk-1", "pk-2")
    await handle(UserDisabled(login_id="pk-2", reason="on leave"), book)
    unit = await handle(opened(access("pk-1", VIEW), access("pk-2")), book)
    assert unit.events == [
        AccountAccessGranted(flow_id=unit.cause.id, account_id=ACCOUNT, logins=(access("pk-1", VIEW),))
    ]
    enable = await handle(UserEnabled(login_id="pk-2"), book)
    assert enable.events[1:] == [
        AccountAccessGranted(flow_id=enable.cause.id, account_id=ACCOUNT, logins=(access("pk-2"),))
    ]


async def test_a_link_of_a_known_login_is_granted_in_the_links_flow() -> None:
    book = await with_logins("pk-1")
    await handle(opened(), book)
    unit = await handle(AccountLoginLinked(account_id=ACCOUNT, login_id="pk-1", rights=(VIEW, TRADE)), book)
    assert unit.events == [AccountAccessGranted(flow_id=unit.cause.id, account_id=ACCOUNT, logins=(access("pk-1"),))]
    assert await effective(book) == ("market-data:XSX", "role:Motif:User", f"trade:{ACCOUNT}")


async def test_a_link_of_an_unknown_login_waits_for_it() -> None:
    book = MemoryEntitlements()
    await handle(opened(), book)
    unit = await handle(AccountLoginLinked(account_id=ACCOUNT, login_id="pk-1", rights=(VIEW,)), book)
    waiting = only(unit, StepWaiting)
    assert (waiting.flow_id, waiting.step, waiting.waiting_for) == (
        unit.cause.id,
        "authorisation.access",
        ("login:pk-1",),
    )
    assert list(book.pending) == [unit.cause.id]


async def test_a_new_link_after_an_unlink_gives_the_access_back_with_its_rights() -> None:
    book = await with_logins("pk-1")
    await handle(opened(access("pk-1")), book)
    await handle(AccountLoginUnlinked(account_id=ACCOUNT, login_id="pk-1"), book)
    unit = await handle(AccountLoginLinked(account_id=ACCOUNT, login_id="pk-1", rights=(VIEW,)), book)
    assert unit.events == [
        AccountAccessGranted(flow_id=unit.cause.id, account_id=ACCOUNT, logins=(access("pk-1", VIEW),))
    ]
    assert await effective(book) == ("market-data:XSX", "role:Motif:User")  # no trade right any more


@pytest.mark.parametrize(
    ("before", "why"), [("nothing", "was never opened"), ("close", "was never opened"), ("open+close", "is closed")]
)
async def test_a_link_to_an_account_never_opened_or_closed_fails_the_access_step(before: str, why: str) -> None:
    book = await with_logins("pk-1")
    if "open" in before:
        await handle(opened(), book)
    if "close" in before:
        await handle(closed(), book)
    unit = await handle(AccountLoginLinked(account_id=ACCOUNT, login_id="pk-1", rights=(VIEW,)), book)
    failed = failed_step(unit)
    assert (failed.flow_id, failed.step, failed.reason) == (
        unit.cause.id,
        "authorisation.access",
        f"account {ACCOUNT} {why}",
    )
    assert book.access == {}


async def test_an_unlinked_login_loses_its_access_to_that_account_only() -> None:
    book = await with_logins("pk-1", "pk-2")
    await handle(opened(access("pk-1"), access("pk-2")), book)
    await handle(opened(access("pk-1"), account_id=OTHER_ACCOUNT), book)
    unit = await handle(AccountLoginUnlinked(account_id=ACCOUNT, login_id="pk-1"), book)
    assert unit.events == [
        AccessRevoked(
            flow_id=unit.cause.id,
            scope=RevokedScope.ACCOUNT_LOGIN,
            subject_id=ACCOUNT,
            account_id=ACCOUNT,
            login_ids=("pk-1",),
            reason="login unlinked from the account",
        )
    ]
    assert await effective(book, "pk-1") == ("market-data:XSX", "role:Motif:User", f"trade:{OTHER_ACCOUNT}")
    assert await effective(book, "pk-2") == ("market-data:XSX", "role:Motif:User", f"trade:{ACCOUNT}")


async def test_unlinking_the_login_an_association_waits_for_grants_the_rest_of_it() -> None:
    book = await with_logins("pk-1")
    opening = await handle(opened(access("pk-1"), access("pk-2")), book)
    unit = await handle(AccountLoginUnlinked(account_id=ACCOUNT, login_id="pk-2"), book)
    assert [type(event) for event in unit.events] == [AccountAccessGranted, AccessRevoked]
    assert unit.events[0] == AccountAccessGranted(
        flow_id=opening.cause.id, account_id=ACCOUNT, logins=(access("pk-1"),)
    )
    assert book.pending == {}


async def test_an_unlink_from_an_account_never_heard_of_fails_the_revoke_step() -> None:
    book = await with_logins("pk-1")
    unit = await handle(AccountLoginUnlinked(account_id=ACCOUNT, login_id="pk-1"), book)
    failed = failed_step(unit)
    assert (failed.flow_id, failed.step, failed.reason) == (
        unit.cause.id,
        "authorisation.revoke",
        f"account {ACCOUNT} is unknown to authorisation",
    )


# --- closes and compensation --------------------------------------------------------------------


async def test_an_account_the_registry_closed_loses_every_logins_access_for_good() -> None:
    book = await with_logins("pk-2", "pk-1", "pk-3")
    await handle(opened(access("pk-2"), access("pk-1"), access("pk-3")), book)
    await handle(AccountLoginUnlinked(account_id=ACCOUNT, login_id="pk-3"), book)
    unit = await handle(closed(), book)
    assert unit.events == [
        AccessRevoked(
            flow_id="close-1",
            scope=RevokedScope.ACCOUNT,
            subject_id=ACCOUNT,
            account_id=ACCOUNT,
            login_ids=("pk-1", "pk-2"),
            reason="closed at the investor's request",
        )
    ]
    assert book.accounts[ACCOUNT].state == "closed"
    assert {access.revoked_by for access in book.access.values()} == {"account"}
    assert await effective(book) == ("market-data:XSX", "role:Motif:User")


def oms_closed(state: AccountState = AccountState.CLOSED) -> OmsAccountStateChanged:
    return OmsAccountStateChanged(flow_id="close-1", account_id=ACCOUNT, state=state, reason="closed on request")


@pytest.mark.usefixtures("without_registry")
async def test_without_the_registry_an_account_the_oms_closed_loses_every_logins_access() -> None:
    """The OMS is the book of record then, and closes the account itself (consumers/oms/funds.py)."""
    book = await with_logins("pk-1")
    await handle(opened(access("pk-1")), book)
    assert (await handle(oms_closed(AccountState.SUSPENDED), book)).events == []
    unit = await handle(oms_closed(), book)
    revoked = only(unit, AccessRevoked)
    assert (revoked.flow_id, revoked.scope, revoked.login_ids, revoked.reason) == (
        "close-1",
        RevokedScope.ACCOUNT,
        ("pk-1",),
        "closed on request",
    )
    assert book.access[(ACCOUNT, "pk-1")].revoked_by == "account"


async def test_with_the_registry_the_omss_closing_changes_nothing_here() -> None:
    """The registry's closing is the one that counts; the OMS only follows it."""
    book = await with_logins("pk-1")
    await handle(opened(access("pk-1")), book)
    unit = await handle(oms_closed(), book)
    assert unit.events == [] and book.access[(ACCOUNT, "pk-1")].revoked_by is None


async def test_a_close_without_a_reason_says_the_registry_closed_it() -> None:
    book = MemoryEntitlements()
    await handle(opened(), book)
    unit = await handle(closed(reason=None), book)
    revoked = only(unit, AccessRevoked)
    assert revoked.reason == "account closed in the registry"


async def test_a_close_fails_the_associations_still_waiting_for_logins() -> None:
    book = MemoryEntitlements()
    await handle(opened(), book)
    link = await handle(AccountLoginLinked(account_id=ACCOUNT, login_id="pk-1", rights=(VIEW,)), book)
    unit = await handle(closed(), book)
    assert unit.events[0] == StepFailed(
        flow_id=link.cause.id,
        service="authorisation",
        step="authorisation.access",
        reason=f"account {ACCOUNT} was closed before the logins it names were known",
    )
    assert [type(event) for event in unit.events] == [StepFailed, AccessRevoked]
    assert book.pending == {}


async def test_a_suspension_in_the_registry_leaves_access_as_it_is() -> None:
    book = await with_logins("pk-1")
    await handle(opened(access("pk-1")), book)
    suspended = RegistryAccountStateChanged(flow_id="s-1", account_id=ACCOUNT, state=AccountState.SUSPENDED)
    unit = await handle(suspended, book)
    assert unit.events == []
    assert (book.accounts[ACCOUNT].state, book.access[(ACCOUNT, "pk-1")].revoked_by) == ("open", None)


async def test_a_failed_opening_is_compensated_by_revoking_its_access() -> None:
    book = await with_logins("pk-1")
    opening = await handle(opened(access("pk-1")), book)
    unit = await handle(opening_failed(opening.cause.id), book)
    assert unit.events == [
        AccessRevoked(
            flow_id=opening.cause.id,
            scope=RevokedScope.ACCOUNT,
            subject_id=ACCOUNT,
            account_id=ACCOUNT,
            login_ids=("pk-1",),
            reason="compensation: registry.account failed: bad investor",
        )
    ]
    assert (book.accounts[ACCOUNT].state, book.accounts[ACCOUNT].closed_flow_id) == ("closed", opening.cause.id)


async def test_a_failure_that_overtakes_its_opening_is_compensated_when_the_opening_arrives() -> None:
    book = await with_logins("pk-1")
    event = opened(access("pk-1"))
    unit = unit_of(event, book)
    early = await handle(opening_failed(unit.cause.id), book)
    assert (early.events, book.failed_flows) == (
        [],
        {unit.cause.id: "compensation: registry.account failed: bad investor"},
    )
    await run(event, unit)
    assert unit.events == [
        AccountAccessGranted(flow_id=unit.cause.id, account_id=ACCOUNT, logins=(access("pk-1"),)),
        AccessRevoked(
            flow_id=unit.cause.id,
            scope=RevokedScope.ACCOUNT,
            subject_id=ACCOUNT,
            account_id=ACCOUNT,
            login_ids=("pk-1",),
            reason="compensation: registry.account failed: bad investor",
        ),
    ]
    assert book.accounts[ACCOUNT].state == "closed"


async def test_an_overtaken_opening_waiting_for_a_login_is_dropped_without_failing_its_own_step() -> None:
    book = MemoryEntitlements()
    event = opened(access("pk-1"))
    unit = unit_of(event, book)
    await handle(opening_failed(unit.cause.id), book)
    await run(event, unit)
    assert [type(event) for event in unit.events] == [StepWaiting, AccessRevoked]
    assert book.pending == {}


async def test_a_failure_remembered_twice_keeps_its_first_reason() -> None:
    book = MemoryEntitlements()
    await handle(opening_failed("f-1"), book)
    await handle(opening_failed("f-1").model_copy(update={"reason": "another"}), book)
    assert book.failed_flows == {"f-1": "compensation: registry.account failed: bad investor"}


@pytest.mark.parametrize(("kind", "service"), [(FlowKind.USER, "registry"), (FlowKind.ACCOUNT, "authorisation")])
async def test_only_other_services_failed_account_flows_are_compensated(kind: FlowKind, service: str) -> None:
    book = await with_logins("pk-1")
    opening = await handle(opened(access("pk-1")), book)
    unit = await handle(opening_failed(opening.cause.id, kind=kind, service=service), book)
    assert (unit.events, book.failed_flows, book.accounts[ACCOUNT].state) == ([], {}, "open")


async def test_the_handlers_reach_their_state_only_through_the_store() -> None:
    unit: FakeUnitOfWork[Entitlements] = FakeUnitOfWork.handling(
        created(), MemoryEntitlements(), service="authorisation"
    )
    with pytest.raises(AssertionError, match="no database"):
        await unit.fetchval("select 1")
