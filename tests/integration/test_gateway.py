"""The gateway on the real stack: adapters registered per exchange, routed orders turned into
execution reports by Prodigy's adapter, its book kept between instructions, refusals, and DAY
orders expired at their market's close by the gateway's timer."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import pytest
import pytest_asyncio

from consumers.gateway import closing
from consumers.gateway.service import SERVICE
from consumers.runtime.trading_days import last_closed
from exchanges.prodigy.book import Book
from exchanges.prodigy.market_maker import open_book
from infrastructure.kafka_clients import topic_reader
from infrastructure.reader import read_topic, topic_partitions
from schemas import event_types
from schemas.exchanges import ExchangeAdded, ExchangeSuspended, TradingHours
from schemas.gateway import ExecutionKind, ExecutionReported, OmsAdapterRegistered, OmsAdapterStopped
from schemas.oms import OrderCancelRouted
from schemas.provisioning import StepFailed
from schemas.types import OrderLifetime, OrderSide
from tests.conftest import Stack
from tests.support.exchanges import new_exchange_code, routed
from tests.support.service_under_test import ServiceUnderTest, module_settings
from xbus.trading import instruments, prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

#: The gateway with its timers ticking every 0.2 s rather than every few seconds.
TICKING = dataclasses.replace(
    SERVICE, timers=tuple(dataclasses.replace(timer, interval_seconds=0.2) for timer in SERVICE.timers)
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(TICKING, await module_settings(stack)) as service:
        yield service


async def added(gateway: ServiceUnderTest, exchange: ExchangeAdded) -> dict[str, Decimal]:
    """Add ``exchange``; its reference prices by instrument."""
    [registered] = (await gateway.handle(exchange)).follow_ups
    assert isinstance(registered, OmsAdapterRegistered)
    return {price.instrument: price.price for price in registered.reference_prices}


def reports(follow_ups: Sequence[object]) -> list[ExecutionReported]:
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
    assert order.limit_price is not None
    assert all(fill.fill_price is not None and fill.fill_price <= order.limit_price for fill in fills)
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


def around_noon(now: dt.datetime) -> str:
    """A time zone (a fixed offset: no daylight saving) in which ``now`` is between 12:00 and 13:00."""
    offset = 12 - now.astimezone(dt.UTC).hour
    return f"Etc/GMT{-offset:+d}"  # the IANA sign is reversed: Etc/GMT-10 is UTC+10


def closing_at(exchange: ExchangeAdded, time_zone: str, *closes: int) -> ExchangeAdded:
    """``exchange`` with its markets closing at these hours, in order, in ``time_zone``."""
    markets = tuple(
        market.model_copy(
            update={"time_zone": time_zone, "trading_hours": TradingHours(open=dt.time(7), close=dt.time(close))}
        )
        for market, close in zip(exchange.markets, closes, strict=True)
    )
    return exchange.model_copy(update={"markets": markets})


async def expired(gateway: ServiceUnderTest, exchange: ExchangeAdded) -> list[ExecutionReported]:
    """The exchange's EXPIRED reports on the gateway's follow-up topic so far, by order id."""
    settings = gateway.settings
    async with topic_reader(settings, settings.kafka_bootstrap or "") as (admin, consumer):
        partitions = await topic_partitions(admin, settings.topic(gateway.follow_up_topic))
        reads = [read async for read in read_topic(consumer, partitions, idle_ms=50)]
    events = [event_types.parse(read.envelope.type, read.data) for read in reads if read.envelope is not None]
    found = [
        event
        for event in events
        if isinstance(event, ExecutionReported)
        and event.exchange == exchange.code
        and event.kind is ExecutionKind.EXPIRED
    ]
    return sorted(found, key=lambda report: report.order_id)


async def expired_once(gateway: ServiceUnderTest, exchange: ExchangeAdded, count: int) -> list[ExecutionReported]:
    """Wait for ``count`` EXPIRED reports of the exchange, then for two more ticks: still ``count``."""
    deadline = time.monotonic() + gateway.timeout
    while len(reports := await expired(gateway, exchange)) < count:
        assert time.monotonic() < deadline, f"{len(reports)} of {count} orders expired in {gateway.timeout} s"
        await asyncio.sleep(0.1)
    assert len(reports) == count, reports
    timers = gateway.runner.timers
    ticks = timers.ticks
    while timers.ticks < ticks + 2:
        assert time.monotonic() < deadline, "the gateway's timer stopped ticking"
        await asyncio.sleep(0.1)
    assert await gateway.db.fetchval("select count(*) from xbus_outbox where sent_at is null") == 0
    again = await expired(gateway, exchange)
    assert again == reports, "a later tick of the same trading day expired orders again"
    return reports


async def resting_orders(gateway: ServiceUnderTest, instrument: str) -> set[str | None]:
    state = await gateway.db.fetchval("select state from adapter_states where instrument = $1", instrument)
    return {order.order_id for _, order in Book.from_state(json.loads(state)).resting() if not order.is_market_maker}


async def test_day_orders_expire_at_their_markets_close_and_good_till_cancel_ones_stay(
    gateway: ServiceUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = dt.datetime.now(dt.UTC)
    # Around noon in the markets' time zone, the first market closed at 09:00, before the exchange
    # was added; the second closes at 15:00.
    exchange = closing_at(prodigy_exchange(new_exchange_code()), around_noon(now), 9, 15)
    prices = await added(gateway, exchange)
    closed_before, closing_later = instruments(exchange)[0], instruments(exchange)[3]

    def below(instrument: str) -> Decimal:
        return (prices[instrument] * Decimal("0.8")).quantize(Decimal("0.01"))

    day = routed(exchange, closing_later, OrderSide.BUY, 7, below(closing_later), OrderLifetime.DAY)
    good_till_cancel = routed(exchange, closing_later, OrderSide.BUY, 5, below(closing_later))
    # a DAY buy at the best ask for more than the market maker offers there: filled in part, it rests
    best_ask = open_book(exchange.code, closing_later).asks[0]
    partly_filled = routed(
        exchange, closing_later, OrderSide.BUY, best_ask.quantity + 30, best_ask.price, OrderLifetime.DAY
    )
    # placed after its market's close, a DAY order is for the next trading day
    next_day = routed(exchange, closed_before, OrderSide.BUY, 4, below(closed_before), OrderLifetime.DAY)
    placed = reports((await gateway.handle(day, good_till_cancel, partly_filled, next_day)).follow_ups)
    assert sum(report.fill_quantity for report in placed) == best_ask.quantity
    assert await expired_once(gateway, exchange, 0) == []  # neither close has passed since they were placed

    monkeypatch.setattr(closing, "clock", lambda unit: now + dt.timedelta(hours=4))  # 16:xx there
    ended = await expired_once(gateway, exchange, 2)
    assert sorted((report.order_id, report.cumulative_quantity, report.leaves_quantity) for report in ended) == sorted(
        [(day.order_id, 0, 0), (partly_filled.order_id, best_ask.quantity, 0)]
    )
    assert {(report.account_id, report.instrument, report.side, report.currency) for report in ended} == {
        (day.account_id, closing_later, OrderSide.BUY, "AUD"),
        (partly_filled.account_id, closing_later, OrderSide.BUY, "AUD"),
    }
    assert await resting_orders(gateway, closing_later) == {good_till_cancel.order_id}
    assert await resting_orders(gateway, closed_before) == {next_day.order_id}
    # the day over, a DAY order placed now is for the next trading day too
    late = routed(exchange, closing_later, OrderSide.BUY, 3, below(closing_later), OrderLifetime.DAY)
    await gateway.handle(late)
    assert await expired_once(gateway, exchange, 2) == ended

    monkeypatch.setattr(closing, "clock", lambda unit: now + dt.timedelta(hours=25))  # 13:xx the next day
    [ended_next_day] = [report for report in await expired_once(gateway, exchange, 3) if report not in ended]
    assert (ended_next_day.order_id, ended_next_day.cumulative_quantity) == (next_day.order_id, 0)
    assert await resting_orders(gateway, closed_before) == set()
    assert await resting_orders(gateway, closing_later) == {good_till_cancel.order_id, late.order_id}


@pytest.mark.parametrize(
    ("now", "trading_date"),
    [
        ("2026-01-14T04:59:59+00:00", "2026-01-13"),  # 15:59:59 in Sydney's summer (UTC+11)
        ("2026-01-14T05:00:00+00:00", "2026-01-14"),  # 16:00
        ("2026-04-05T05:59:59+00:00", "2026-04-04"),  # 15:59:59 on the day daylight saving ends (UTC+10)
        ("2026-04-05T06:00:00+00:00", "2026-04-05"),
        ("2026-04-05T13:59:59+00:00", "2026-04-05"),  # 23:59:59: the day's close is the last
        ("2026-04-05T14:00:00+00:00", "2026-04-05"),  # midnight: a new day whose close is ahead
    ],
)
async def test_a_markets_day_ends_at_its_close_on_its_own_wall_clock(now: str, trading_date: str) -> None:
    # (a coroutine only because every test of this module runs on its event loop)
    closed = last_closed(dt.datetime.fromisoformat(now), "Australia/Sydney", dt.time(16))
    assert closed == dt.date.fromisoformat(trading_date)
