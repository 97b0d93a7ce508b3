"""The provisioning tracker follows exchange flows on the real stack (docs/exchanges.md, "Onboarding an
exchange"): ``ExchangeAdded`` and the services' reports are published here by hand, in the orders the
services could produce them.

One tracker runs for the whole module; each test uses an exchange code of its own and looks only at
its own flow's events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from producers import Outgoing
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended
from schemas.gateway import OmsAdapterRegistered, OmsAdapterStopped
from schemas.market_data import MarketDataFeedStarted, MarketDataFeedStopped
from schemas.provisioning import ChangeApplied, ExchangeOnboarded, ProvisioningFailed, StepFailed
from schemas.registry import RegistrySettlementEnabled
from tests.conftest import Stack
from tests.integration.test_runtime import eventually
from tests.support.exchanges import new_exchange_code
from tests.support.service_under_test import module_settings
from tests.support.tracker import Tracker, new_id, running_tracker, state, steps
from xbus.trading import prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ONBOARDING = ["market_data.feed", "gateway.adapter", "registry.settlement"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tracker(stack: Stack) -> AsyncIterator[Tracker]:
    async with running_tracker(await module_settings(stack)) as tracker:
        yield tracker


@pytest.fixture
def code() -> str:
    """An exchange code of this test's own."""
    return new_exchange_code()


def added(code: str) -> ExchangeAdded:
    return prodigy_exchange(code, markets=1, symbols=0)


def feed_started(flow_id: str, code: str) -> MarketDataFeedStarted:
    return MarketDataFeedStarted(
        flow_id=flow_id, exchange=code, plugin="prodigy", topic=f"xosp.marketdata.{code}", instruments=1
    )


def adapter_registered(flow_id: str, code: str) -> OmsAdapterRegistered:
    return OmsAdapterRegistered(flow_id=flow_id, exchange=code, adapter="prodigy")


async def published_for(tracker: Tracker, flow_id: str, *types: type) -> list[dict[str, Any]]:
    """The data of the tracker's events (of ``types``) about ``flow_id``."""
    return [event.data for event in await tracker.published(*types) if event.data["flow_id"] == flow_id]


async def test_exchange_is_onboarded_when_feed_adapter_and_settlement_are_done(tracker: Tracker, code: str) -> None:
    flow_id = new_id()
    await tracker.publish(Outgoing(added(code), event_id=flow_id))
    await tracker.publish(feed_started(flow_id, code), adapter_registered(flow_id, code))
    flow = await tracker.flow_when("exchange", code, lambda f: steps(f)["gateway.adapter"] == "done")
    assert steps(flow) == {"market_data.feed": "done", "gateway.adapter": "done", "registry.settlement": "expected"}
    assert flow.state == "open" and flow.started_by == ExchangeAdded.event_type
    assert await published_for(tracker, flow_id, ExchangeOnboarded) == []

    await tracker.publish(RegistrySettlementEnabled(flow_id=flow_id, exchange=code))

    await tracker.flow_when("exchange", code, state("completed"))
    assert await published_for(tracker, flow_id, ExchangeOnboarded) == [
        {"flow_id": flow_id, "exchange": code, "steps": ONBOARDING}
    ]


@pytest.mark.usefixtures("without_registry")
async def test_an_exchange_of_a_deployment_without_the_registry_is_onboarded_with_two_steps(
    tracker: Tracker, code: str
) -> None:
    """XBUS_REGISTRY=false (plxtra/xosp XOSP-Configure.ps1: ``UsingFoundry = $false``): no registry
    runs, and the onboarding does not wait for it, whatever an older event's flag says."""
    flow_id = new_id()
    await tracker.publish(Outgoing(added(code).model_copy(update={"settles_through_registry": True}), event_id=flow_id))
    await tracker.publish(adapter_registered(flow_id, code), feed_started(flow_id, code))

    flow = await tracker.flow_when("exchange", code, state("completed"))
    assert list(steps(flow)) == ["market_data.feed", "gateway.adapter"]
    [onboarded] = await published_for(tracker, flow_id, ExchangeOnboarded)
    assert onboarded["steps"] == ["market_data.feed", "gateway.adapter"]


async def test_reports_before_the_exchange_added_still_count(tracker: Tracker, code: str) -> None:
    flow_id = new_id()
    await tracker.publish(
        RegistrySettlementEnabled(flow_id=flow_id, exchange=code),
        adapter_registered(flow_id, code),
        feed_started(flow_id, code),
    )
    early = f"select count(*) from {{schema}}.early_reports where flow_id = '{flow_id}'"

    async def all_kept() -> bool:
        return await tracker.scalar(early) == 3

    await eventually(all_kept, timeout=30)
    assert await tracker.flows("exchange", code) == []

    await tracker.publish(Outgoing(added(code), event_id=flow_id))

    flow = await tracker.flow_when("exchange", code, state("completed"))
    assert set(steps(flow).values()) == {"done"}
    [onboarded] = await published_for(tracker, flow_id, ExchangeOnboarded)
    assert onboarded["steps"] == ONBOARDING
    assert await tracker.scalar(early) == 0


async def test_step_failed_fails_the_onboarding(tracker: Tracker, code: str) -> None:
    flow_id = new_id()
    reason = "no market-data plugin named 'zenith-x' is installed"
    await tracker.publish(Outgoing(added(code), event_id=flow_id))
    await tracker.publish(adapter_registered(flow_id, code))
    await tracker.report(
        "xosp.marketdata.events",
        StepFailed(flow_id=flow_id, service="market_data", step="market_data.feed", reason=reason),
    )

    flow = await tracker.flow_when("exchange", code, state("failed"))
    assert steps(flow) == {"market_data.feed": "failed", "gateway.adapter": "done", "registry.settlement": "expected"}
    assert await published_for(tracker, flow_id, ProvisioningFailed) == [
        {
            "flow_id": flow_id,
            "kind": "exchange",
            "entity_id": code,
            "service": "market_data",
            "step": "market_data.feed",
            "reason": reason,
        }
    ]
    await tracker.publish(RegistrySettlementEnabled(flow_id=flow_id, exchange=code))  # a late report: still failed
    await tracker.flow_when("exchange", code, lambda f: steps(f)["registry.settlement"] == "done")
    assert (await tracker.flows("exchange", code))[0].state == "failed"
    assert await published_for(tracker, flow_id, ExchangeOnboarded) == []


@pytest.mark.parametrize(
    "change", [ExchangeSuspended(code="XSX", reason="halted by the regulator"), ExchangeRemoved(code="XSX")]
)
async def test_suspension_and_removal_apply_when_feed_and_adapter_stop(
    tracker: Tracker, code: str, change: ExchangeSuspended | ExchangeRemoved
) -> None:
    flow_id = new_id()
    await tracker.publish(Outgoing(change.model_copy(update={"code": code}), event_id=flow_id))
    await tracker.publish(
        MarketDataFeedStopped(flow_id=flow_id, exchange=code, plugin="prodigy", reason="stopped"),
        OmsAdapterStopped(flow_id=flow_id, exchange=code, adapter="prodigy", reason="stopped"),
    )

    flow = await tracker.flow_when("exchange", code, state("completed"))
    assert steps(flow) == {"market_data.feed_stop": "done", "gateway.adapter_stop": "done"}
    assert await published_for(tracker, flow_id, ChangeApplied) == [
        {
            "flow_id": flow_id,
            "kind": "exchange",
            "entity_id": code,
            "change": change.event_type,
            "steps": ["market_data.feed_stop", "gateway.adapter_stop"],
        }
    ]
