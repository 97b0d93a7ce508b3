"""Resource Authorisation on the real stack: permissions, account access, waiting, revocation and
compensation, as docs/provisioning.md specifies them.

One service runs for the module (tests/support/service_under_test.py); each test uses logins and
accounts of its own. Events of other services (the registry's close, the tracker's failure) are
published as those services would, on their follow-up topics.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from consumers.authorisation import queries
from consumers.authorisation.pending_locks import pending_locks
from consumers.authorisation.service import SERVICE
from producers import Outgoing
from schemas import Event
from schemas.accounts import AccountLogin, AccountLoginLinked, AccountLoginUnlinked, Investor, TradingAccountOpened
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted, RevokedScope
from schemas.oms import AccountState
from schemas.provisioning import FlowKind, ProvisioningFailed, StepFailed, StepWaiting
from schemas.registry import RegistryAccountStateChanged
from schemas.types import AccountRight, InvestorType, Role
from schemas.users import UserCreated, UserDisabled, UserEnabled, UserUpdated
from tests.conftest import Stack
from tests.support.service_under_test import ServiceUnderTest, module_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

VIEW, TRADE, ADMIN = AccountRight.VIEW, AccountRight.TRADE, AccountRight.ADMIN


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def authorisation(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await module_settings(stack)) as service:
        yield service


def new_login() -> str:
    return str(uuid.uuid4())


def new_account() -> str:
    return f"XS:{uuid.uuid4().hex[:8]}"


def new_flow() -> str:
    return str(uuid.uuid4())


def created(login: str, roles: tuple[Role, ...] = (), markets: tuple[str, ...] = ()) -> UserCreated:
    return UserCreated(
        login_id=login,
        username=login,
        email=f"{login}@example.com",
        display_name="Someone",
        roles=roles,
        markets=markets,
    )


def opened(account: str, *logins: AccountLogin) -> TradingAccountOpened:
    return TradingAccountOpened(
        account_id=account,
        owner="XS",
        name="Trading account",
        classification="Retail",
        default_currency="AUD",
        investor=Investor(investor_id="INV-1", full_name="Jo Bloggs", country="AU", type=InvestorType.INDIVIDUAL),
        logins=logins,
    )


def access(login: str, *rights: AccountRight) -> AccountLogin:
    return AccountLogin(login_id=login, rights=rights)


def registry_closed(account: str, flow_id: str) -> RegistryAccountStateChanged:
    return RegistryAccountStateChanged(
        flow_id=flow_id, account_id=account, state=AccountState.CLOSED, reason="closed on request"
    )


def opening_failed(account: str, flow_id: str, step: str = "oms.account") -> ProvisioningFailed:
    return ProvisioningFailed(
        flow_id=flow_id,
        kind=FlowKind.ACCOUNT,
        entity_id=account,
        service=step.split(".")[0],
        step=step,
        reason="the OMS refused the account",
    )


def unordered(events: list[Event]) -> list[Event]:
    """Follow-ups of one event in a fixed order: those with different keys may sit on different
    partitions, which a reader does not read in the order they were written."""
    return sorted(events, key=lambda event: (event.event_type, event.model_dump_json()))


async def active_permissions(service: ServiceUnderTest, login: str) -> list[str]:
    return [grant.permission for grant in await queries.permissions(service.db, login, active_only=True)]


async def test_created_user_is_granted_role_and_market_data_permissions(authorisation: ServiceUnderTest) -> None:
    login = new_login()
    handled = await authorisation.handle(created(login, (Role.MOTIF_USER,), ("XSX", "XSX[Demo]")))

    expected = ("market-data:XSX", "market-data:XSX[Demo]", "role:Motif:User")
    assert handled.follow_ups == [
        PermissionsGranted(flow_id=handled.flow_id, login_id=login, permissions=expected, login_active=True)
    ]
    assert await active_permissions(authorisation, login) == list(expected)
    stored = await queries.login(authorisation.db, login)
    assert stored is not None and (stored.status, stored.created_flow_id) == ("active", handled.flow_id)


async def test_second_user_created_for_an_existing_login_fails_the_permissions_step(
    authorisation: ServiceUnderTest,
) -> None:
    login = new_login()
    await authorisation.handle(created(login, (Role.MOTIF_USER,)))
    handled = await authorisation.handle(created(login, (Role.ZENITH_ADMINISTRATOR,)))

    [failed] = handled.follow_ups
    assert isinstance(failed, StepFailed)
    assert (failed.flow_id, failed.step) == (handled.flow_id, "authorisation.permissions")
    assert await active_permissions(authorisation, login) == ["role:Motif:User"]


async def test_updated_roles_and_markets_are_granted_again_untracked(authorisation: ServiceUnderTest) -> None:
    login = new_login()
    await authorisation.handle(created(login, (Role.MOTIF_USER,), ("XSX",)))

    handled = await authorisation.handle(UserUpdated(login_id=login, markets=("ASX", "XSX[Demo]")))
    expected = ("market-data:ASX", "market-data:XSX[Demo]", "role:Motif:User")
    assert handled.follow_ups == [
        PermissionsGranted(flow_id=handled.flow_id, login_id=login, permissions=expected, login_active=True)
    ]
    assert [grant.permission for grant in await queries.permissions(authorisation.db, login)] == list(expected)

    ignored = await authorisation.handle(UserUpdated(login_id=login, display_name="Renamed"))
    assert ignored.follow_ups == []


async def test_account_without_logins_is_granted_at_once(authorisation: ServiceUnderTest) -> None:
    account = new_account()
    handled = await authorisation.handle(opened(account))

    assert handled.follow_ups == [AccountAccessGranted(flow_id=handled.flow_id, account_id=account, logins=())]
    stored = await queries.account(authorisation.db, account)
    assert stored is not None and (stored.state, stored.opened_flow_id) == ("open", handled.flow_id)


async def test_account_naming_unknown_login_reports_waiting_then_grants(authorisation: ServiceUnderTest) -> None:
    known, unknown, account = new_login(), new_login(), new_account()
    await authorisation.handle(created(known))
    logins = (access(known, VIEW, TRADE), access(unknown, VIEW))

    opening = await authorisation.handle(opened(account, *logins))
    assert opening.follow_ups == [
        StepWaiting(
            flow_id=opening.flow_id,
            service="authorisation",
            step="authorisation.access",
            reason=f"account {account} names logins not known yet: {unknown}",
            waiting_for=(f"login:{unknown}",),
        )
    ]
    [pending] = await queries.pending(authorisation.db, account)
    assert (pending.flow_id, pending.waiting_for) == (opening.flow_id, (unknown,))
    assert pending.logins == ((known, ("view", "trade")), (unknown, ("view",)))
    assert await queries.account_access(authorisation.db, account) == []

    arrival = await authorisation.handle(created(unknown))
    assert unordered(arrival.follow_ups) == [
        AccountAccessGranted(flow_id=opening.flow_id, account_id=account, logins=logins),
        PermissionsGranted(flow_id=arrival.flow_id, login_id=unknown, permissions=(), login_active=True),
    ]
    granted = await queries.account_access(authorisation.db, account)
    assert {(a.login_id, a.rights, a.flow_id, a.active) for a in granted} == {
        (known, ("view", "trade"), opening.flow_id, True),
        (unknown, ("view",), opening.flow_id, True),
    }
    assert await queries.pending(authorisation.db, account) == []
    assert await active_permissions(authorisation, known) == [f"trade:{account}"]


async def test_link_before_user_exists_is_applied_when_user_arrives(authorisation: ServiceUnderTest) -> None:
    login, account = new_login(), new_account()
    await authorisation.handle(opened(account))

    link = await authorisation.handle(AccountLoginLinked(account_id=account, login_id=login, rights=(VIEW, TRADE)))
    [waiting] = link.follow_ups
    assert isinstance(waiting, StepWaiting)
    assert (waiting.flow_id, waiting.waiting_for) == (link.flow_id, (f"login:{login}",))

    arrival = await authorisation.handle(created(login, (Role.MOTIF_USER,)))
    assert unordered(arrival.follow_ups) == [
        AccountAccessGranted(flow_id=link.flow_id, account_id=account, logins=(access(login, VIEW, TRADE),)),
        PermissionsGranted(
            flow_id=arrival.flow_id,
            login_id=login,
            permissions=("role:Motif:User", f"trade:{account}"),
            login_active=True,
        ),
    ]
    [granted] = await queries.login_access(authorisation.db, login)
    assert (granted.account_id, granted.flow_id, granted.active) == (account, link.flow_id, True)


async def test_link_of_a_known_login_is_granted_at_once(authorisation: ServiceUnderTest) -> None:
    login, account = new_login(), new_account()
    await authorisation.handle(created(login), opened(account))

    link = await authorisation.handle(AccountLoginLinked(account_id=account, login_id=login, rights=(ADMIN,)))
    assert link.follow_ups == [
        AccountAccessGranted(flow_id=link.flow_id, account_id=account, logins=(access(login, ADMIN),))
    ]


async def test_disabled_user_loses_every_permission_and_account_access(authorisation: ServiceUnderTest) -> None:
    login, account = new_login(), new_account()
    await authorisation.handle(created(login, (Role.MOTIF_USER,), ("XSX",)))
    await authorisation.handle(opened(account, access(login, VIEW, TRADE)))
    everything = ["market-data:XSX", "role:Motif:User", f"trade:{account}"]
    assert await active_permissions(authorisation, login) == everything

    disabled = await authorisation.handle(UserDisabled(login_id=login, reason="left the firm"))
    assert disabled.follow_ups == [
        AccessRevoked(
            flow_id=disabled.flow_id,
            scope=RevokedScope.LOGIN,
            subject_id=login,
            login_ids=(login,),
            reason="left the firm",
        )
    ]
    kept = await queries.permissions(authorisation.db, login)
    assert [grant.permission for grant in kept] == everything  # the rows stay...
    assert not any(grant.active for grant in kept)  # ...marked revoked
    [revoked] = await queries.account_access(authorisation.db, account)
    assert (revoked.revoked_by, revoked.active) == ("login", False)

    enabled = await authorisation.handle(UserEnabled(login_id=login))
    # keyed by login and by account: on two partitions, read back in either order
    assert sorted(enabled.follow_ups, key=lambda event: event.event_type) == [
        AccountAccessGranted(flow_id=enabled.flow_id, account_id=account, logins=(access(login, VIEW, TRADE),)),
        PermissionsGranted(flow_id=enabled.flow_id, login_id=login, permissions=tuple(everything), login_active=True),
    ]
    [restored] = await queries.account_access(authorisation.db, account)
    assert restored.active


async def test_a_login_associated_while_disabled_gets_access_only_when_enabled(
    authorisation: ServiceUnderTest,
) -> None:
    """Announcing such an association as granted would give a disabled login trade rights in the OMS."""
    login, account = new_login(), new_account()
    await authorisation.handle(created(login), UserDisabled(login_id=login, reason="on leave"))

    opening = await authorisation.handle(opened(account, access(login, VIEW, TRADE)))
    assert opening.follow_ups == [AccountAccessGranted(flow_id=opening.flow_id, account_id=account, logins=())]
    [on_record] = await queries.account_access(authorisation.db, account)
    assert (on_record.revoked_by, on_record.active) == ("login", False)

    enabled = await authorisation.handle(UserEnabled(login_id=login))
    assert (
        AccountAccessGranted(flow_id=enabled.flow_id, account_id=account, logins=(access(login, VIEW, TRADE),))
        in enabled.follow_ups
    )


async def test_disabling_an_unknown_login_fails_the_revoke_step(authorisation: ServiceUnderTest) -> None:
    handled = await authorisation.handle(UserDisabled(login_id=new_login(), reason="x"))

    [failed] = handled.follow_ups
    assert isinstance(failed, StepFailed)
    assert (failed.flow_id, failed.step) == (handled.flow_id, "authorisation.revoke")
    assert not await authorisation.dead_lettered(handled.flow_id)


async def test_unlinked_login_loses_its_access_to_that_account_only(authorisation: ServiceUnderTest) -> None:
    login, account, other = new_login(), new_account(), new_account()
    await authorisation.handle(created(login))
    await authorisation.handle(opened(account, access(login, TRADE)), opened(other, access(login, TRADE)))

    unlinked = await authorisation.handle(AccountLoginUnlinked(account_id=account, login_id=login))
    assert unlinked.follow_ups == [
        AccessRevoked(
            flow_id=unlinked.flow_id,
            scope=RevokedScope.ACCOUNT_LOGIN,
            subject_id=account,
            account_id=account,
            login_ids=(login,),
            reason="login unlinked from the account",
        )
    ]
    assert {(a.account_id, a.revoked_by) for a in await queries.login_access(authorisation.db, login)} == {
        (account, "account_login"),
        (other, None),
    }
    assert await active_permissions(authorisation, login) == [f"trade:{other}"]


async def test_closed_account_in_registry_revokes_access(authorisation: ServiceUnderTest) -> None:
    first, second, account = new_login(), new_login(), new_account()
    await authorisation.handle(created(first), created(second))
    await authorisation.handle(opened(account, access(first, TRADE), access(second, VIEW)))
    close_flow = new_flow()

    suspended = RegistryAccountStateChanged(flow_id=new_flow(), account_id=account, state=AccountState.SUSPENDED)
    assert (await authorisation.handle(suspended)).follow_ups == []

    closed = await authorisation.handle(registry_closed(account, close_flow))
    assert closed.follow_ups == [
        AccessRevoked(
            flow_id=close_flow,
            scope=RevokedScope.ACCOUNT,
            subject_id=account,
            account_id=account,
            login_ids=tuple(sorted((first, second))),
            reason="closed on request",
        )
    ]
    assert {a.revoked_by for a in await queries.account_access(authorisation.db, account)} == {"account"}
    stored = await queries.account(authorisation.db, account)
    assert stored is not None and (stored.state, stored.closed_flow_id) == ("closed", close_flow)

    late_link = await authorisation.handle(AccountLoginLinked(account_id=account, login_id=first, rights=(VIEW,)))
    [refused] = late_link.follow_ups
    assert isinstance(refused, StepFailed)
    assert (refused.step, refused.reason) == ("authorisation.access", f"account {account} is closed")


async def test_account_closed_while_waiting_for_a_login_fails_the_waiting_step(
    authorisation: ServiceUnderTest,
) -> None:
    login, account, close_flow = new_login(), new_account(), new_flow()
    opening = await authorisation.handle(opened(account, access(login, VIEW)))

    closed = await authorisation.handle(registry_closed(account, close_flow))
    revoked, failed = unordered(closed.follow_ups)
    assert isinstance(failed, StepFailed) and (failed.flow_id, failed.step) == (opening.flow_id, "authorisation.access")
    assert isinstance(revoked, AccessRevoked) and (revoked.flow_id, revoked.login_ids) == (close_flow, ())

    arrival = await authorisation.handle(created(login))
    assert [type(event) for event in arrival.follow_ups] == [PermissionsGranted]
    assert await queries.account_access(authorisation.db, account) == []


async def test_failed_account_opening_is_compensated(authorisation: ServiceUnderTest) -> None:
    login, account, kept_account = new_login(), new_account(), new_account()
    await authorisation.handle(created(login))
    opening = await authorisation.handle(opened(account, access(login, TRADE)))
    kept = await authorisation.handle(opened(kept_account, access(login, TRADE)))

    refused_withdrawal = opening_failed(kept_account, new_flow(), step="registry.cash")
    assert (await authorisation.handle(refused_withdrawal)).follow_ups == []
    own_failure = opening_failed(kept_account, kept.flow_id, step="authorisation.access")
    assert (await authorisation.handle(own_failure)).follow_ups == []

    compensated = await authorisation.handle(opening_failed(account, opening.flow_id))
    assert compensated.follow_ups == [
        AccessRevoked(
            flow_id=opening.flow_id,
            scope=RevokedScope.ACCOUNT,
            subject_id=account,
            account_id=account,
            login_ids=(login,),
            reason="compensation: oms.account failed: the OMS refused the account",
        )
    ]
    assert {(a.account_id, a.active) for a in await queries.login_access(authorisation.db, login)} == {
        (account, False),
        (kept_account, True),
    }


async def test_failure_that_overtakes_its_opening_is_compensated_when_the_opening_arrives(
    authorisation: ServiceUnderTest,
) -> None:
    login, account, flow = new_login(), new_account(), new_flow()
    await authorisation.handle(created(login))
    assert (await authorisation.handle(opening_failed(account, flow, step="registry.account"))).follow_ups == []

    opening = await authorisation.handle(Outgoing(opened(account, access(login, VIEW)), event_id=flow))
    revoked, granted = unordered(opening.follow_ups)
    assert granted == AccountAccessGranted(flow_id=flow, account_id=account, logins=(access(login, VIEW),))
    assert isinstance(revoked, AccessRevoked)
    assert (revoked.flow_id, revoked.scope, revoked.login_ids) == (flow, RevokedScope.ACCOUNT, (login,))
    [access_row] = await queries.account_access(authorisation.db, account)
    assert access_row.revoked_by == "account"


async def test_a_batch_locks_the_accounts_whose_pending_associations_its_logins_complete(
    authorisation: ServiceUnderTest,
) -> None:
    """Found in the tables once the logins' locks are held, all at once and sorted: taken by each
    UserCreated handler in turn, two batches took two accounts' in opposite orders and deadlocked
    (bench/backlog.py)."""
    first, second, elsewhere = new_account(), new_account(), new_account()
    waiting, other = new_login(), new_login()
    await authorisation.handle(opened(second, access(waiting, VIEW)), opened(first, access(waiting, TRADE)))
    await authorisation.handle(opened(elsewhere, access(other, VIEW)))
    found = await pending_locks(
        authorisation.db, [created(waiting), AccountLoginUnlinked(account_id=elsewhere, login_id=other)]
    )
    assert found == sorted([f"pending:{first}", f"pending:{second}", f"pending:{elsewhere}"])
    assert await pending_locks(authorisation.db, [created(new_login())]) == []
    await authorisation.handle(created(waiting))  # granted: no longer pending
    assert await pending_locks(authorisation.db, [created(waiting)]) == []
