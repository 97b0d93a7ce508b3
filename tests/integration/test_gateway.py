"""The gateway on the real stack: adapters registered per exchange, routed orders turned into
execution reports by Prodigy's adapter, its book kept between instructions, and refusals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from consumers.gateway.service import SERVICE
from schemas.exchanges import ExchangeAdded, ExchangeSuspended
from schemas.gateway import ExecutionKind, ExecutionReported, OmsAdapterRegistered, OmsAdapterStopped
from schemas.oms import OrderCancelRouted, OrderRouted
from schemas.provisioning import StepFailed
from schemas.types import OrderLifetime, OrderSide, OrderType
from tests.conftest import Stack
from tests.support.exchanges import new_exchange_code
from tests.support.service_under_test import ServiceUnderTest, module_settings
from xbus.trading import instruments, prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await module_settings(stack)) as service:
        yield service


async def added(gateway: ServiceUnderTest, exchange: ExchangeAdded) -> dict[str, Decimal]:
    """Add ``exchange``; its reference prices by instrument."""
    [registered] = (await gateway.handle(exchange)).follow_ups
    assert isinstance(registered, OmsAdapterRegistered)
    return {price.instrument: price.price for price in registered.reference_prices}


def routed(
    exchange: ExchangeAdded,
    instrument: str,
    side: OrderSide,
    quantity: int,
    limit_price: Decimal,
    lifetime: OrderLifetime = OrderLifetime.GOOD_TILL_CANCEL,
) -> OrderRouted:
    return OrderRouted(
        order_id=f"o-{uuid.uuid4().hex[:10]}",
        account_id=f"XS:{uuid.uuid4().hex[:8]}",
        exchange=exchange.code,
        adapter="prodigy",
        instrument=instrument,
        side=side,
        order_type=OrderType.LIMIT,
        quantity=quantity,
        limit_price=limit_price,
        lifetime=lifetime,
        currency="AUD",
        settles_through_registry=True,
    )


def reports(follow_ups: list[object]) -> list[ExecutionReported]:
    assert all(isinstance(event, ExecutionReported) for event in follow_ups), follow_ups
    return [event for event in follow_ups if isinstance(event, ExecutionReported)]


async def test_an_added_exchange_registers_its_adapter_with_a_price_for_every_instrument(
    gateway: ServiceUnderTest,
) -> None:
    exchange = prodigy_exchange(new_exchange_code())
    prices = await added(gateway, exchange)
    assert sorted(prices) == sorted(instruments(exchange))
    assert all(price > 0 for price in prices.values())


async def test_an_exchange_naming_an_adapter_that_is_not_installed_fails_its_step(gateway: ServiceUnderTest) -> None:
    exchange = prodigy_exchange(new_exchange_code(), adapter="nosuchexchange")
    handled = await gateway.handle(exchange)
    [failed] = handled.follow_ups
    assert isinstance(failed, StepFailed)
    assert (failed.flow_id, failed.step) == (handled.flow_id, "gateway.adapter")
    assert "nosuchexchange" in failed.reason and "xosp_bus.oms_adapters" in failed.reason


async def test_a_marketable_order_is_acknowledged_then_filled_in_the_markets_currency(
    gateway: ServiceUnderTest,
) -> None:
    exchange = prodigy_exchange(new_exchange_code(), currency="USD")
    prices = await added(gateway, exchange)
    instrument = instruments(exchange)[0]
    order = routed(
        exchange, instrument, OrderSide.BUY, 5, (prices[instrument] * Decimal("1.1")).quantize(Decimal("0.01"))
    )
    got = reports((await gateway.handle(order)).follow_ups)

    assert got[0].kind is ExecutionKind.ACKNOWLEDGED and got[0].order_id == order.order_id
    fills = [report for report in got if report.kind is ExecutionKind.FILLED]
    assert sum(fill.fill_quantity for fill in fills) == 5
    assert got[-1].is_final and got[-1].cumulative_quantity == 5
    assert {fill.currency for fill in fills} == {"USD"}
    assert all(
        fill.fill_price is not None and fill.fill_price <= order.limit_price for fill in fills if fill.fill_price
    )
    assert len({fill.venue_trade_id for fill in fills}) == len(fills)


async def test_the_book_is_kept_between_instructions_so_a_resting_order_can_be_cancelled(
    gateway: ServiceUnderTest,
) -> None:
    exchange = prodigy_exchange(new_exchange_code())
    prices = await added(gateway, exchange)
    instrument = instruments(exchange)[1]
    order = routed(
        exchange, instrument, OrderSide.BUY, 7, (prices[instrument] * Decimal("0.8")).quantize(Decimal("0.01"))
    )
    [acknowledged] = reports((await gateway.handle(order)).follow_ups)
    assert acknowledged.kind is ExecutionKind.ACKNOWLEDGED and acknowledged.leaves_quantity == 7

    cancel = OrderCancelRouted(
        order_id=order.order_id,
        account_id=order.account_id,
        exchange=exchange.code,
        adapter="prodigy",
        instrument=instrument,
    )
    [cancelled] = reports((await gateway.handle(cancel)).follow_ups)
    assert (cancelled.kind, cancelled.order_id, cancelled.leaves_quantity) == (
        ExecutionKind.CANCELLED,
        order.order_id,
        0,
    )
    assert cancelled.account_id == order.account_id
    instructions = await gateway.db.fetchval(
        "select instructions from adapter_states where instrument = $1", instrument
    )
    assert instructions == 2

    # a second cancel finds nothing open: no report
    again = await gateway.handle(cancel.model_copy())
    assert again.follow_ups == []


async def test_an_order_for_a_suspended_exchange_is_rejected_with_the_reason(gateway: ServiceUnderTest) -> None:
    exchange = prodigy_exchange(new_exchange_code())
    prices = await added(gateway, exchange)
    [stopped] = (await gateway.handle(ExchangeSuspended(code=exchange.code, reason="systems check"))).follow_ups
    assert isinstance(stopped, OmsAdapterStopped) and "systems check" in stopped.reason

    instrument = instruments(exchange)[0]
    order = routed(exchange, instrument, OrderSide.SELL, 3, prices[instrument])
    [rejected] = reports((await gateway.handle(order)).follow_ups)
    assert (rejected.kind, rejected.order_id, rejected.leaves_quantity) == (ExecutionKind.REJECTED, order.order_id, 0)
    assert rejected.reason is not None and "systems check" in rejected.reason
