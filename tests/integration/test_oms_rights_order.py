"""The OMS's trade rights, whatever the order in which it reads Resource Authorisation's partitions.

Authorisation announces an account's logins (``AccountAccessGranted``, and the unlinks and closes
that take them away) keyed by the account, and a login's disable and enable (``AccessRevoked``
scope login, ``PermissionsGranted``) keyed by the login. The OMS reads those partitions in no order
between them (lag, a rebalance, a replay). Each story here is played on the real authorisation
service, on topics of its own; what it emits for the OMS is then handed to the OMS in every
interleaving that keeps each key's own order (what one partition guarantees), one copy of the
story per interleaving, every copy's next event at once. In each copy the login's rights in force
in the OMS must end as authorisation holds them, and an order by the login must be accepted
exactly when authorisation gives it the trade right.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio

from consumers.authorisation import queries as authorisation_queries
from consumers.authorisation.service import SERVICE as AUTHORISATION
from consumers.oms.service import SERVICE as OMS
from schemas import Event
from schemas.accounts import (
    AccountLogin,
    AccountLoginLinked,
    AccountLoginUnlinked,
    Investor,
    TradingAccountOpened,
)
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted
from schemas.oms import AccountState, OrderAccepted, OrderRejected, RejectionCode
from schemas.registry import RegistryAccountStateChanged
from schemas.types import AccountRight, InvestorType, Role
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated
from tests.conftest import Stack
from tests.integration.test_oms_orders import Venue, deposit, order
from tests.support.exchanges import new_exchange_code
from tests.support.service_under_test import ServiceUnderTest, module_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

VIEW, TRADE = AccountRight.VIEW, AccountRight.TRADE

#: A story after the login is created (role Motif:User) and the account opened with it (view,
#: trade): the upstream events authorisation reads, in the order it reads them.
Story = Callable[[str, str], list[Event]]


def _disabled(login: str) -> UserDisabled:
    return UserDisabled(login_id=login, reason="on leave")


def _closed(account: str) -> RegistryAccountStateChanged:
    return RegistryAccountStateChanged(flow_id=str(uuid.uuid4()), account_id=account, state=AccountState.CLOSED)


STORIES: dict[str, Story] = {
    "disabled": lambda login, account: [_disabled(login)],
    "deleted": lambda login, account: [UserDeleted(login_id=login)],
    # authorisation reports the update of a disabled login with a PermissionsGranted naming nothing
    "updated while disabled": lambda login, account: [
        _disabled(login),
        UserUpdated(login_id=login, roles=(Role.MOTIFXL_USER,)),
    ],
    "enabled again": lambda login, account: [_disabled(login), UserEnabled(login_id=login)],
    "updated while disabled, then enabled": lambda login, account: [
        _disabled(login),
        UserUpdated(login_id=login, roles=(Role.MOTIFXL_USER,)),
        UserEnabled(login_id=login),
    ],
    "enabled, then disabled again": lambda login, account: [
        _disabled(login),
        UserEnabled(login_id=login),
        _disabled(login),
    ],
    "unlinked while disabled, then enabled": lambda login, account: [
        _disabled(login),
        AccountLoginUnlinked(account_id=account, login_id=login),
        UserEnabled(login_id=login),
    ],
    "closed while disabled, then enabled": lambda login, account: [
        _disabled(login),
        _closed(account),
        UserEnabled(login_id=login),
    ],
    "linked again for viewing while disabled, then enabled": lambda login, account: [
        _disabled(login),
        AccountLoginLinked(account_id=account, login_id=login, rights=(VIEW,)),
        UserEnabled(login_id=login),
    ],
    # enabled with no role, no market and no trade right: its PermissionsGranted names nothing, and
    # only login_active tells the OMS that it is an enable (its view right comes back in force)
    "left with a view right and no role, disabled, then enabled": lambda login, account: [
        AccountLoginLinked(account_id=account, login_id=login, rights=(VIEW,)),
        UserUpdated(login_id=login, roles=()),
        _disabled(login),
        UserEnabled(login_id=login),
    ],
    "unlinked, then linked again": lambda login, account: [
        AccountLoginUnlinked(account_id=account, login_id=login),
        AccountLoginLinked(account_id=account, login_id=login, rights=(VIEW, TRADE)),
    ],
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def authorisation(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    """Topics of its own: its follow-ups reach the OMS only as the test hands them over."""
    async with ServiceUnderTest(AUTHORISATION, await module_settings(stack)) as service:
        yield service


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def oms(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(OMS, await module_settings(stack)) as service:
        yield service


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def venue(oms: ServiceUnderTest) -> Venue:
    """An exchange listed in the OMS, with its adapter registered: orders on it reach vetting's end."""
    code = new_exchange_code()
    listed = Venue(code, f"XS01.{code}", f"XS02.{code}")
    await oms.handle(*listed.listing())
    return listed


@dataclass(frozen=True)
class Copy:
    """One run of a story: its login and account, and what authorisation emitted for the OMS,
    one sequence per key (login, account) in the order it was emitted."""

    login: str
    account: str
    opening: TradingAccountOpened
    sequences: tuple[tuple[Event, ...], ...]

    def delivered(self, order_of_keys: tuple[int, ...]) -> list[Event]:
        """The events in the order that takes the next event of sequence ``order_of_keys[i]`` at step i."""
        taken = [iter(sequence) for sequence in self.sequences]
        return [next(taken[key]) for key in order_of_keys]


def _opened(account: str, login: str, exchange: str) -> TradingAccountOpened:
    return TradingAccountOpened(
        account_id=account,
        owner="XS",
        name="Growth fund",
        classification="Retail",
        default_currency="AUD",
        investor=Investor(investor_id="INV-1", full_name="Jo Citizen", country="AU", type=InvestorType.INDIVIDUAL),
        logins=(AccountLogin(login_id=login, rights=(VIEW, TRADE)),),
        allowed_exchanges=(exchange,),
    )


async def _played(authorisation: ServiceUnderTest, story: Story, copies: int, exchange: str) -> list[Copy]:
    """``copies`` runs of the story on authorisation, each with a login and an account of its own,
    step by step (every run's next event at once)."""
    pairs = [(str(uuid.uuid4()), f"XS:{uuid.uuid4().hex[:12]}") for _ in range(copies)]
    openings = [_opened(account, login, exchange) for login, account in pairs]
    runs = [
        [
            UserCreated(
                login_id=login, username=login, email=f"{login}@example.com", display_name="T", roles=(Role.MOTIF_USER,)
            ),
            opening,
            *story(login, account),
        ]
        for (login, account), opening in zip(pairs, openings, strict=True)
    ]
    owner = {key: index for index, pair in enumerate(pairs) for key in pair}
    emitted: list[dict[str, list[Event]]] = [{} for _ in pairs]
    for step in zip(*runs, strict=True):
        for event in (await authorisation.handle(*step)).follow_ups:
            if type(event) in OMS.handlers:
                emitted[owner[event.aggregate_id]].setdefault(event.aggregate_id, []).append(event)
    return [
        Copy(login, account, opening, tuple(tuple(sequence) for sequence in emitted[index].values()))
        for index, ((login, account), opening) in enumerate(zip(pairs, openings, strict=True))
    ]


def _orders_of_keys(lengths: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every interleaving of sequences of these lengths that keeps each one's order."""
    labels = [key for key, length in enumerate(lengths) for _ in range(length)]
    return sorted(set(itertools.permutations(labels)))


def _shown(events: list[Event]) -> str:
    def one(event: Event) -> str:
        if isinstance(event, AccessRevoked):
            return f"AccessRevoked({event.scope})"
        if isinstance(event, PermissionsGranted):
            return f"PermissionsGranted({len(event.permissions)} permissions)"
        if isinstance(event, AccountAccessGranted):
            return f"AccountAccessGranted({','.join(str(r) for login in event.logins for r in login.rights)})"
        return type(event).__name__

    return " → ".join(one(event) for event in events)


async def _authorised(authorisation: ServiceUnderTest, copy: Copy) -> tuple[str, ...] | None:
    """The login's rights on the account in force in authorisation; None: no access in force."""
    for access in await authorisation_queries.account_access(authorisation.db, copy.account):
        if access.login_id == copy.login and access.active:
            return tuple(sorted(access.rights))
    return None


async def _in_force_in_oms(oms: ServiceUnderTest, copy: Copy) -> tuple[str, ...] | None:
    rights = await oms.db.fetchval(
        "select rights from account_rights where account_id = $1 and login_id = $2", copy.account, copy.login
    )
    return None if rights is None else tuple(sorted(rights))


@pytest.mark.parametrize("name", list(STORIES))
async def test_rights_in_force_end_as_authorisation_holds_them_in_every_delivery_order(
    authorisation: ServiceUnderTest, oms: ServiceUnderTest, venue: Venue, name: str
) -> None:
    story = STORIES[name]
    [probe] = await _played(authorisation, story, 1, venue.code)
    orders_of_keys = _orders_of_keys(tuple(len(sequence) for sequence in probe.sequences))
    copies = [probe, *await _played(authorisation, story, len(orders_of_keys) - 1, venue.code)]
    assert {tuple(len(s) for s in copy.sequences) for copy in copies} == {tuple(len(s) for s in probe.sequences)}
    deliveries = [copy.delivered(keys) for copy, keys in zip(copies, orders_of_keys, strict=True)]

    await oms.handle(*(event for copy in copies for event in (copy.opening, deposit(copy.account, "1000.00"))))
    for step in zip(*deliveries, strict=True):
        await oms.handle(*step)

    placed = [order(copy.account, venue.instrument, 1, "10.00", login_id=copy.login) for copy in copies]
    answers = {
        event.order_id: event
        for event in (await oms.handle(*placed)).follow_ups
        if isinstance(event, OrderAccepted | OrderRejected)
    }
    for copy, delivery, order_placed in zip(copies, deliveries, placed, strict=True):
        authorised = await _authorised(authorisation, copy)
        seen = f"{name}: {_shown(delivery)}"
        assert await _in_force_in_oms(oms, copy) == authorised, seen
        answer = answers[order_placed.order_id]
        if authorised is not None and str(TRADE) in authorised:
            assert isinstance(answer, OrderAccepted), f"{seen}: {answer}"
        else:
            assert isinstance(answer, OrderRejected), seen
            assert answer.code is RejectionCode.LOGIN_NO_TRADE_RIGHT, f"{seen}: {answer.reason}"
