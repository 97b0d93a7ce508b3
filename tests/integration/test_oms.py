"""The OMS service on the real stack: operators, account metadata and state, closing through the
registry, and the compensation of a failed opening."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from consumers.oms import queries
from consumers.oms.service import SERVICE
from producers import Outgoing
from schemas.accounts import (
    AccountLogin,
    Investor,
    TradingAccountClosed,
    TradingAccountOpened,
    TradingAccountSuspended,
    TradingAccountUpdated,
    VettingLimits,
)
from schemas.oms import AccountState, OmsAccountProvisioned, OmsAccountStateChanged, OmsOperatorRegistered
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.provisioning import FlowKind, ProvisioningFailed, StepFailed, StepWaiting
from schemas.registry import RegistryAccountStateChanged
from schemas.types import AccountRight, InvestorType, OmsFeature, OperatorSystem, PositiveMoney
from tests.conftest import Stack
from tests.support.service_under_test import ServiceUnderTest, module_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

VETTING = VettingLimits(max_order_value=PositiveMoney(amount=Decimal("250000.50"), currency="AUD"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def oms(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await module_settings(stack)) as service:
        yield service


def new_account() -> str:
    return f"XS:{uuid.uuid4().hex[:12]}"


def opened(account_id: str) -> TradingAccountOpened:
    return TradingAccountOpened(
        account_id=account_id,
        owner="XS",
        name="Growth fund",
        classification="Retail",
        default_currency="AUD",
        categories=("Equities",),
        attributes={"branch": "Sydney"},
        investor=Investor(investor_id="INV-1", full_name="Jo Citizen", country="AU", type=InvestorType.INDIVIDUAL),
        logins=(AccountLogin(login_id="login-1", rights=(AccountRight.TRADE,)),),
        allowed_exchanges=("XSX", "XSX[Demo]"),
        vetting=VETTING,
    )


def registry_closed(account_id: str, flow_id: str) -> RegistryAccountStateChanged:
    return RegistryAccountStateChanged(
        flow_id=flow_id, account_id=account_id, state=AccountState.CLOSED, reason="client request"
    )


def failed(flow_id: str, account_id: str, service: str = "registry") -> ProvisioningFailed:
    return ProvisioningFailed(
        flow_id=flow_id,
        kind=FlowKind.ACCOUNT,
        entity_id=account_id,
        service=service,
        step=f"{service}.account",
        reason="investor INV-1 is barred",
    )


def closed(flow_id: str, account_id: str, reason: str | None) -> OmsAccountStateChanged:
    return OmsAccountStateChanged(flow_id=flow_id, account_id=account_id, state=AccountState.CLOSED, reason=reason)


async def state_of(oms: ServiceUnderTest, account_id: str) -> AccountState:
    account = await queries.account(oms.db, account_id)
    assert account is not None
    return account.state


async def test_operator_with_oms_system_is_registered(oms: ServiceUnderTest) -> None:
    operator_id = f"op-{uuid.uuid4().hex[:8]}"
    registered = OperatorRegistered(
        operator_id=operator_id,
        login_id="login-7",
        systems=(OperatorSystem.OMS, OperatorSystem.PRODIGY),
        oms_features=(OmsFeature.ADMIN, OmsFeature.AUDIT),
        owners=("XS",),
        exchanges=("XSX",),
    )
    handled = await oms.handle(registered)

    assert handled.follow_ups == [
        OmsOperatorRegistered(
            flow_id=handled.flow_id,
            operator_id=operator_id,
            features=(OmsFeature.ADMIN, OmsFeature.AUDIT),
            owners=("XS",),
        )
    ]
    stored = await queries.operator(oms.db, operator_id)
    assert stored is not None and stored.registered
    assert (stored.login_id, stored.features, stored.owners, stored.exchanges) == (
        "login-7",
        (OmsFeature.ADMIN, OmsFeature.AUDIT),
        ("XS",),
        ("XSX",),
    )


async def test_operator_without_oms_system_is_ignored(oms: ServiceUnderTest) -> None:
    operator_id = f"op-{uuid.uuid4().hex[:8]}"
    registered = OperatorRegistered(operator_id=operator_id, login_id="login-8", systems=(OperatorSystem.REGISTRY,))

    assert (await oms.handle(registered)).follow_ups == []
    assert await queries.operator(oms.db, operator_id) is None


async def test_deregistered_operator_is_marked_without_a_report(oms: ServiceUnderTest) -> None:
    operator_id = f"op-{uuid.uuid4().hex[:8]}"
    await oms.handle(OperatorRegistered(operator_id=operator_id, login_id="login-9", systems=(OperatorSystem.OMS,)))

    handled = await oms.handle(OperatorDeregistered(operator_id=operator_id, reason="retired"))
    assert handled.follow_ups == []
    stored = await queries.operator(oms.db, operator_id)
    assert stored is not None and not stored.registered and stored.deregistered_reason == "retired"


async def test_operator_registered_again_without_the_oms_is_deregistered(oms: ServiceUnderTest) -> None:
    operator_id = f"op-{uuid.uuid4().hex[:8]}"
    with_oms = OperatorRegistered(operator_id=operator_id, login_id="login-10", systems=(OperatorSystem.OMS,))
    await oms.handle(with_oms)

    again = await oms.handle(
        OperatorRegistered(operator_id=operator_id, login_id="login-10", systems=(OperatorSystem.REGISTRY,))
    )
    assert again.follow_ups == []
    stored = await queries.operator(oms.db, operator_id)
    assert stored is not None and not stored.registered
    assert stored.deregistered_reason == f"registered again by flow {again.flow_id} without the OMS"
    restored = await oms.handle(with_oms.model_copy())
    assert [type(e) for e in restored.follow_ups] == [OmsOperatorRegistered]
    stored = await queries.operator(oms.db, operator_id)
    assert stored is not None and stored.registered and stored.deregistered_reason is None


async def test_opened_account_is_provisioned_with_its_metadata(oms: ServiceUnderTest) -> None:
    account_id = new_account()
    handled = await oms.handle(opened(account_id))

    assert handled.follow_ups == [
        OmsAccountProvisioned(
            flow_id=handled.flow_id,
            account_id=account_id,
            currency="AUD",
            allowed_exchanges=("XSX", "XSX[Demo]"),
            vetting=VETTING,
        )
    ]
    account = await queries.account(oms.db, account_id)
    assert account is not None
    assert (account.owner, account.name, account.classification, account.currency) == (
        "XS",
        "Growth fund",
        "Retail",
        "AUD",
    )
    assert (account.categories, account.attributes) == (("Equities",), {"branch": "Sydney"})
    assert (account.allowed_exchanges, account.vetting) == (("XSX", "XSX[Demo]"), VETTING)
    assert (account.state, account.opened_by_flow) == (AccountState.ACTIVE, handled.flow_id)


async def test_opening_an_existing_account_fails_the_step(oms: ServiceUnderTest) -> None:
    account_id = new_account()
    await oms.handle(opened(account_id))

    again = await oms.handle(opened(account_id))
    [refused] = again.follow_ups
    assert isinstance(refused, StepFailed)
    assert (refused.flow_id, refused.step) == (again.flow_id, "oms.account")
    assert "already exists" in refused.reason


async def test_update_changes_only_the_fields_present(oms: ServiceUnderTest) -> None:
    account_id = new_account()
    await oms.handle(opened(account_id))

    updated = TradingAccountUpdated(
        account_id=account_id, name="Income fund", vetting=VettingLimits(max_order_quantity=1000)
    )
    assert (await oms.handle(updated)).follow_ups == []
    account = await queries.account(oms.db, account_id)
    assert account is not None
    assert (account.name, account.currency, account.allowed_exchanges) == ("Income fund", "AUD", ("XSX", "XSX[Demo]"))
    assert account.vetting == VettingLimits(max_order_quantity=1000)  # vetting limits are replaced as a whole


async def test_update_of_an_unknown_account_waits_for_its_opening(oms: ServiceUnderTest) -> None:
    handled = await oms.handle(TradingAccountUpdated(account_id=new_account(), name="Nobody's"))

    assert handled.follow_ups == []
    assert not await oms.dead_lettered(handled.flow_id)  # see test_pending_prerequisites.py
    assert await oms.db.fetchval("select 1 from xbus_pending where event_id = $1", handled.flow_id)


async def test_suspended_account_is_suspended_in_oms(oms: ServiceUnderTest) -> None:
    account_id = new_account()
    await oms.handle(opened(account_id))

    handled = await oms.handle(TradingAccountSuspended(account_id=account_id, reason="margin call"))
    assert handled.follow_ups == [
        OmsAccountStateChanged(
            flow_id=handled.flow_id, account_id=account_id, state=AccountState.SUSPENDED, reason="margin call"
        )
    ]
    assert await state_of(oms, account_id) is AccountState.SUSPENDED


async def test_account_closed_in_registry_is_closed_in_oms(oms: ServiceUnderTest) -> None:
    account_id = new_account()
    await oms.handle(opened(account_id))

    # the upstream request alone closes nothing: the registry may refuse it (the update after it
    # on the same partition tells when the OMS has read it)
    request = await oms.handle(
        TradingAccountClosed(account_id=account_id), TradingAccountUpdated(account_id=account_id)
    )
    assert request.follow_ups == []
    assert await state_of(oms, account_id) is AccountState.ACTIVE

    close_flow = str(uuid.uuid4())
    handled = await oms.handle(registry_closed(account_id, close_flow))
    assert handled.follow_ups == [closed(close_flow, account_id, "client request")]
    assert await state_of(oms, account_id) is AccountState.CLOSED


async def test_registry_close_before_the_opening_waits_and_is_applied_with_it(oms: ServiceUnderTest) -> None:
    account_id = new_account()
    close_flow = str(uuid.uuid4())
    waiting = await oms.handle(registry_closed(account_id, close_flow))
    assert waiting.follow_ups == [
        StepWaiting(
            flow_id=close_flow,
            service="oms",
            step="oms.account_state",
            reason=f"trading account {account_id} is not opened in the OMS yet; it is closed when it is",
            waiting_for=(f"account:{account_id}",),
        )
    ]

    handled = await oms.handle(opened(account_id))
    assert [type(event) for event in handled.follow_ups] == [OmsAccountProvisioned, OmsAccountStateChanged]
    assert handled.follow_ups[1] == closed(close_flow, account_id, "client request")
    assert await state_of(oms, account_id) is AccountState.CLOSED


async def test_failed_opening_is_compensated(oms: ServiceUnderTest) -> None:
    account_id = new_account()
    opening = await oms.handle(opened(account_id))

    handled = await oms.handle(failed(opening.flow_id, account_id))
    reason = "opening failed: registry refused registry.account: investor INV-1 is barred"
    assert handled.follow_ups == [closed(opening.flow_id, account_id, reason)]
    assert await state_of(oms, account_id) is AccountState.CLOSED
    # the registry's own compensation of the same flow closes nothing twice
    assert (await oms.handle(registry_closed(account_id, opening.flow_id))).follow_ups == []


async def test_failure_of_another_flow_is_not_compensated(oms: ServiceUnderTest) -> None:
    account_id = new_account()
    opening = await oms.handle(opened(account_id))

    refused_close = failed(str(uuid.uuid4()), account_id)
    own_refusal = failed(opening.flow_id, account_id, service="oms")
    assert (await oms.handle(refused_close, own_refusal)).follow_ups == []
    assert await state_of(oms, account_id) is AccountState.ACTIVE


async def test_failure_reported_before_the_opening_is_compensated_when_it_arrives(oms: ServiceUnderTest) -> None:
    account_id = new_account()
    flow_id = str(uuid.uuid4())
    assert (await oms.handle(failed(flow_id, account_id))).follow_ups == []

    handled = await oms.handle(Outgoing(opened(account_id), event_id=flow_id))
    assert [type(event) for event in handled.follow_ups] == [OmsAccountProvisioned, OmsAccountStateChanged]
    assert await state_of(oms, account_id) is AccountState.CLOSED
