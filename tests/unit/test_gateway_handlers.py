"""The gateway's rules, on a FakeUnitOfWork over an in-memory store and the real Prodigy adapter
(a pure simulation): which exchanges take instructions, what an instruction for one that does
not becomes, and what an active one's adapter reports (the SQL, the day's end on a timer and the
runtime are proven on the real stack in tests/integration/test_gateway.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from consumers.gateway.service import SERVICE
from consumers.gateway.store import ExchangeState, GatewayStore
from consumers.runtime import DomainError, FakeUnitOfWork, MissingPrerequisite
from schemas import Event
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended, ExchangeUpdated
from schemas.gateway import ExecutionKind, ExecutionReported, OmsAdapterRegistered, OmsAdapterStopped, TradeType
from schemas.oms import OrderCancelRouted
from schemas.provisioning import StepFailed
from schemas.types import OrderSide
from tests.support.exchanges import routed
from tests.support.memory_gateway import MemoryGateway
from xbus.trading import instruments, prodigy_exchange

EXCHANGE = prodigy_exchange("XSUT", currency="USD")
INSTRUMENT = instruments(EXCHANGE)[0]


async def handle(event: Event, gateway: MemoryGateway) -> FakeUnitOfWork[GatewayStore]:
    unit: FakeUnitOfWork[GatewayStore] = FakeUnitOfWork.handling(event, gateway, service="gateway")
    await SERVICE.by_type[event.event_type](event, unit)
    return unit


async def added(exchange: ExchangeAdded = EXCHANGE) -> tuple[MemoryGateway, dict[str, Decimal]]:
    gateway = MemoryGateway()
    [registered] = (await handle(exchange, gateway)).events
    assert isinstance(registered, OmsAdapterRegistered)
    return gateway, {price.instrument: price.price for price in registered.reference_prices}


def reports(unit: FakeUnitOfWork[GatewayStore]) -> list[ExecutionReported]:
    assert all(isinstance(event, ExecutionReported) for event in unit.events), unit.events
    return [event for event in unit.events if isinstance(event, ExecutionReported)]


async def test_an_added_exchange_runs_its_adapter_and_reports_a_price_for_every_instrument() -> None:
    gateway, prices = await added()
    assert sorted(prices) == sorted(instruments(EXCHANGE)) and all(price > 0 for price in prices.values())
    stored = gateway.exchanges[EXCHANGE.code]
    assert (stored.adapter, stored.state, stored.currency(INSTRUMENT)) == ("prodigy", ExchangeState.ACTIVE, "USD")
    assert {market for _, market in gateway.markets} == {market.code for market in EXCHANGE.markets}


async def test_an_adapter_that_is_not_installed_fails_the_step_and_runs_nothing() -> None:
    gateway = MemoryGateway()
    unit = await handle(prodigy_exchange("XSNO", adapter="nosuchexchange"), gateway)
    [failed] = unit.events
    assert isinstance(failed, StepFailed) and failed.step == "gateway.adapter" and "nosuchexchange" in failed.reason
    assert gateway.exchanges == {}


async def test_an_update_of_an_exchange_never_added_waits_for_its_addition() -> None:
    with pytest.raises(MissingPrerequisite) as waiting:
        await handle(ExchangeUpdated(code="XSUT", settles_through_registry=False), MemoryGateway())
    assert waiting.value.waits_for == "XSUT"


async def test_an_update_to_an_adapter_that_is_not_installed_is_refused_and_changes_nothing() -> None:
    gateway, _ = await added()
    with pytest.raises(DomainError, match="cannot switch adapter"):
        await handle(ExchangeUpdated(code="XSUT", oms_adapter="nosuchexchange"), gateway)
    assert gateway.exchanges["XSUT"].adapter == "prodigy"


async def test_a_marketable_order_is_acknowledged_then_filled_and_the_book_is_kept() -> None:
    gateway, prices = await added()
    order = routed(
        EXCHANGE, INSTRUMENT, OrderSide.BUY, 5, (prices[INSTRUMENT] * Decimal("1.1")).quantize(Decimal("0.01"))
    )
    unit = await handle(order, gateway)
    got = reports(unit)
    assert got[0].kind is ExecutionKind.ACKNOWLEDGED and got[0].order_id == order.order_id
    fills = [report for report in got if report.kind is ExecutionKind.FILLED]
    assert sum(fill.fill_quantity for fill in fills) == 5 and {fill.currency for fill in fills} == {"USD"}
    assert got[-1].is_final and all(fill.settles_through_registry for fill in fills)
    # plxtra/oms-api OMS2.md OrderTradeType: "OrderTradeType_Trade | 10 | Trade execution"
    assert {fill.trade_type for fill in fills} == {TradeType.TRADE} and got[0].trade_type is None
    assert unit.locked == [f"instrument:{INSTRUMENT}"]
    assert INSTRUMENT in gateway.adapter_states  # the book, for the instrument's next instruction


async def test_a_resting_order_can_be_cancelled_because_the_book_is_kept_between_instructions() -> None:
    gateway, prices = await added()
    order = routed(
        EXCHANGE, INSTRUMENT, OrderSide.BUY, 3, (prices[INSTRUMENT] * Decimal("0.5")).quantize(Decimal("0.01"))
    )
    assert [r.kind for r in reports(await handle(order, gateway))] == [ExecutionKind.ACKNOWLEDGED]
    cancel = OrderCancelRouted(
        order_id=order.order_id,
        account_id=order.account_id,
        exchange=EXCHANGE.code,
        adapter="prodigy",
        instrument=INSTRUMENT,
    )
    [cancelled] = reports(await handle(cancel, gateway))
    assert (cancelled.kind, cancelled.order_id, cancelled.is_final) == (ExecutionKind.CANCELLED, order.order_id, True)


@pytest.mark.parametrize(
    ("stop", "why"),
    [
        (ExchangeSuspended(code="XSUT", reason="halted"), "takes no orders (suspended: halted)"),
        (ExchangeRemoved(code="XSUT"), "takes no orders (removed: no reason given)"),
    ],
)
async def test_an_order_for_an_exchange_that_takes_none_is_rejected_with_the_reason(stop: Event, why: str) -> None:
    gateway, prices = await added()
    [stopped] = (await handle(stop, gateway)).events
    assert isinstance(stopped, OmsAdapterStopped) and stopped.adapter == "prodigy"
    unit = await handle(routed(EXCHANGE, INSTRUMENT, OrderSide.BUY, 1, prices[INSTRUMENT]), gateway)
    [rejected] = reports(unit)
    assert (rejected.kind, rejected.reason) == (ExecutionKind.REJECTED, f"exchange XSUT {why}")
    assert unit.locked == [] and gateway.adapter_states == {}


async def test_an_order_for_an_exchange_never_added_is_rejected_not_dropped() -> None:
    [rejected] = reports(
        await handle(routed(prodigy_exchange("XSZZ"), "XS01.XSZZ", OrderSide.SELL, 1, Decimal(1)), MemoryGateway())
    )
    assert (rejected.kind, rejected.reason) == (ExecutionKind.REJECTED, "exchange XSZZ is not connected to the gateway")


async def test_a_removed_exchange_stays_removed_when_suspended_and_every_stop_is_reported() -> None:
    gateway, _ = await added()
    await handle(ExchangeRemoved(code="XSUT", reason="delisted"), gateway)
    [again] = (await handle(ExchangeSuspended(code="XSUT", reason="halted"), gateway)).events
    assert isinstance(again, OmsAdapterStopped)
    assert gateway.exchanges["XSUT"].state is ExchangeState.REMOVED


async def test_stopping_an_exchange_never_added_fails_the_step() -> None:
    [failed] = (await handle(ExchangeSuspended(code="XSUT", reason="halted"), MemoryGateway())).events
    assert isinstance(failed, StepFailed) and failed.step == "gateway.adapter_stop"


async def test_a_cancel_for_an_exchange_that_takes_nothing_is_not_passed_on() -> None:
    gateway, _ = await added()
    await handle(ExchangeSuspended(code="XSUT", reason="halted"), gateway)
    cancel = OrderCancelRouted(
        order_id="o-1",
        account_id="XS:acct1",
        exchange="XSUT",
        adapter="prodigy",
        instrument=INSTRUMENT,
    )
    assert (await handle(cancel, gateway)).events == []


async def test_an_update_with_markets_replaces_the_markets_and_one_without_keeps_them() -> None:
    gateway, _ = await added()
    await handle(ExchangeUpdated(code="XSUT", settles_through_registry=False), gateway)
    assert len(gateway.markets) == 2 and gateway.exchanges["XSUT"].settles_through_registry is False
    await handle(ExchangeUpdated(code="XSUT", markets=EXCHANGE.markets[:1]), gateway)
    assert list(gateway.markets) == [("XSUT", EXCHANGE.markets[0].code)]


async def test_a_removal_keeps_its_reason() -> None:
    gateway, _ = await added()
    [stopped] = (await handle(ExchangeRemoved(code="XSUT", reason="delisted"), gateway)).events
    assert isinstance(stopped, OmsAdapterStopped) and stopped.reason == "removed: delisted"
    assert gateway.exchanges["XSUT"].state_reason == "removed: delisted"
