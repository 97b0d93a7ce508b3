"""What each event Resource Authorisation reads locks (consumers/authorisation/locks.py): the
login of a login's event, the account and every login an account's event names, the account of
its close and of a failed opening's compensation, the group graph for a group's association. The
real stack proves the races these locks close (tests/integration/test_authorisation.py,
test_authorisation_groups.py, test_scale_out.py)."""

from __future__ import annotations

import pytest

from consumers.authorisation.locks import GROUP_GRAPH, entities_of
from consumers.authorisation.service import SERVICE
from schemas import Envelope, Event
from schemas.accounts import AccountLogin, AccountLoginLinked, AccountLoginUnlinked, Investor, TradingAccountOpened
from schemas.groups import GroupAssociationDefined, GroupAssociationUndefined, GroupDefined
from schemas.oms import AccountState
from schemas.provisioning import FlowKind, ProvisioningFailed
from schemas.registry import RegistryAccountStateChanged
from schemas.types import AccountRight, InvestorType
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated
from tests.unit.test_authorisation_markets import added


def opened(*login_ids: str) -> TradingAccountOpened:
    return TradingAccountOpened(
        account_id="XS:a1",
        owner="XS",
        name="Pat's account",
        classification="Retail",
        default_currency="AUD",
        investor=Investor(investor_id="inv-1", full_name="Pat Kim", country="AU", type=InvestorType.INDIVIDUAL),
        logins=tuple(AccountLogin(login_id=login_id, rights=(AccountRight.VIEW,)) for login_id in login_ids),
    )


def failed(kind: FlowKind) -> ProvisioningFailed:
    return ProvisioningFailed(
        flow_id="f1", kind=kind, entity_id="XS:a1", service="registry", step="registry.account", reason="no"
    )


@pytest.mark.parametrize(
    "event",
    [
        UserCreated(login_id="pk-1", username="pk-1", email="pk@example.com", display_name="PK"),
        UserUpdated(login_id="pk-1", display_name="P"),
        UserDisabled(login_id="pk-1", reason="r"),
        UserEnabled(login_id="pk-1"),
        UserDeleted(login_id="pk-1"),
    ],
)
def test_a_logins_event_locks_the_login(event: Event) -> None:
    assert entities_of(event) == ["login:pk-1"]


def test_an_opening_locks_its_account_and_every_login_it_names() -> None:
    assert entities_of(opened("pk-2", "pk-1")) == ["account:XS:a1", "login:pk-2", "login:pk-1"]
    assert entities_of(opened()) == ["account:XS:a1"]


@pytest.mark.parametrize(
    "event",
    [
        AccountLoginLinked(account_id="XS:a1", login_id="pk-1", rights=(AccountRight.VIEW,)),
        AccountLoginUnlinked(account_id="XS:a1", login_id="pk-1"),
    ],
)
def test_a_link_or_an_unlink_locks_the_account_and_the_login(event: Event) -> None:
    assert entities_of(event) == ["account:XS:a1", "login:pk-1"]


def test_the_registrys_change_of_an_account_locks_the_account() -> None:
    event = RegistryAccountStateChanged(flow_id="f", account_id="XS:a1", state=AccountState.CLOSED, reason=None)
    assert entities_of(event) == ["account:XS:a1"]


def test_only_a_failed_account_flow_locks_its_account() -> None:
    assert entities_of(failed(FlowKind.ACCOUNT)) == ["account:XS:a1"]
    assert entities_of(failed(FlowKind.USER)) == []


@pytest.mark.parametrize(
    "event",
    [
        GroupAssociationDefined(group="G", from_asset="User:pk-1", to_asset="Group:G"),
        GroupAssociationUndefined(group="G", from_asset="Group:G", to_asset="Group:H"),
    ],
)
def test_a_groups_association_locks_the_group_graph_alone(event: Event) -> None:
    """It changes what every login reaching the group reaches: none can be named before reading."""
    assert entities_of(event) == [GROUP_GRAPH]


def test_defining_a_group_or_a_market_locks_nothing() -> None:
    """Neither changes what any login reaches (their assets are named by associations before or after)."""
    assert entities_of(GroupDefined(group="G", name="Gee")) == []
    assert entities_of(added("XSX")) == []


def test_the_group_graph_is_taken_after_every_entity_of_its_batch() -> None:
    """Batch locks are taken in sorted order: a batch holding the graph holds its entities already,
    and one waiting for an entity holds no graph (locks.py)."""
    names = ["account:~~", "login:~~", "login:zzzz", "account:ZZ:ZZ", GROUP_GRAPH]
    assert sorted(names)[-1] == GROUP_GRAPH


def test_the_service_takes_these_locks_for_a_batch_all_at_once() -> None:
    batch = [opened("pk-2"), UserCreated(login_id="pk-2", username="u", email="u@example.com", display_name="U")]
    assert SERVICE.lock_names((event, _envelope(event)) for event in batch) == {"account:XS:a1", "login:pk-2"}


def _envelope(event: Event) -> Envelope:
    return Envelope.new(type=event.event_type, subject=event.aggregate_id, source="test")
