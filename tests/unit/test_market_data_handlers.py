"""The market-data service's rules, on a FakeUnitOfWork over in-memory feeds: which exchanges
have a running feed, with what definition, and what each lifecycle event reports (running the
feeds, the projection and the SQL are proven on the real stack in test_market_data.py)."""

from __future__ import annotations

import pytest

from consumers.market_data.service import SERVICE
from consumers.market_data.store import Feeds
from consumers.runtime import FakeUnitOfWork
from schemas import Event
from schemas.exchanges import ExchangeRemoved, ExchangeSuspended, ExchangeUpdated
from schemas.market_data import MarketDataFeedStarted, MarketDataFeedStopped
from schemas.provisioning import StepFailed
from tests.support.memory_market_data import MemoryFeeds
from xbus.trading import prodigy_exchange

EXCHANGE = prodigy_exchange("XSMD", markets=2, symbols=3)


async def handle(event: Event, feeds: MemoryFeeds) -> FakeUnitOfWork[Feeds]:
    unit: FakeUnitOfWork[Feeds] = FakeUnitOfWork.handling(event, feeds, service="market_data")
    await SERVICE.by_type[event.event_type](event, unit)
    return unit


async def running() -> MemoryFeeds:
    feeds = MemoryFeeds()
    await handle(EXCHANGE, feeds)
    return feeds


async def test_an_added_exchange_gets_a_running_feed_and_reports_its_topic_and_instruments() -> None:
    feeds = MemoryFeeds()
    unit = await handle(EXCHANGE, feeds)
    assert unit.events == [
        MarketDataFeedStarted(
            flow_id=unit.cause.id, exchange="XSMD", plugin="prodigy", topic="xosp.marketdata.XSMD", instruments=6
        )
    ]
    feed = feeds.feeds["XSMD"]
    assert (feed.state, feed.revision, feed.definition, feed.changed_at) == ("running", 1, EXCHANGE, unit.cause.time)


async def test_a_plugin_that_is_not_installed_fails_the_step_and_keeps_the_feed_stopped_with_why() -> None:
    feeds = MemoryFeeds()
    unit = await handle(prodigy_exchange("XSMD", plugin="nosuchfeed"), feeds)
    [failed] = unit.events
    assert isinstance(failed, StepFailed) and failed.step == "market_data.feed" and "nosuchfeed" in failed.reason
    assert (feeds.feeds["XSMD"].state, feeds.feeds["XSMD"].reason) == ("stopped", failed.reason[:200])


async def test_new_markets_restart_a_running_feed_under_a_new_revision() -> None:
    feeds = await running()
    unit = await handle(ExchangeUpdated(code="XSMD", markets=EXCHANGE.markets[:1]), feeds)
    [started] = unit.events
    assert isinstance(started, MarketDataFeedStarted) and started.instruments == 3
    feed = feeds.feeds["XSMD"]
    assert (feed.state, feed.revision, feed.definition.markets) == ("running", 2, EXCHANGE.markets[:1])


async def test_an_update_that_changes_neither_plugin_nor_markets_keeps_the_feed_running_as_it_is() -> None:
    feeds = await running()
    unit = await handle(ExchangeUpdated(code="XSMD", name="Renamed"), feeds)
    assert unit.events == []
    feed = feeds.feeds["XSMD"]
    assert (feed.revision, feed.state, feed.definition.name) == (1, "running", "Renamed")


async def test_an_update_of_a_stopped_feed_is_kept_for_its_next_start_and_starts_nothing() -> None:
    feeds = await running()
    await handle(ExchangeSuspended(code="XSMD", reason="halted"), feeds)
    unit = await handle(ExchangeUpdated(code="XSMD", markets=EXCHANGE.markets[:1]), feeds)
    assert unit.events == []
    assert (feeds.feeds["XSMD"].state, len(feeds.feeds["XSMD"].definition.markets)) == ("stopped", 1)


async def test_an_update_to_a_plugin_that_is_not_installed_stops_the_feed_and_says_why() -> None:
    feeds = await running()
    unit = await handle(ExchangeUpdated(code="XSMD", market_data_plugin="nosuchfeed"), feeds)
    [stopped] = unit.events
    assert isinstance(stopped, MarketDataFeedStopped) and stopped.plugin == "prodigy" and "nosuchfeed" in stopped.reason
    assert feeds.feeds["XSMD"].state == "stopped"


async def test_an_update_of_an_exchange_never_added_changes_nothing() -> None:
    feeds = MemoryFeeds()
    assert (await handle(ExchangeUpdated(code="XSMD", name="x"), feeds)).events == []
    assert feeds.feeds == {}


@pytest.mark.parametrize(
    ("stop", "reason"),
    [
        (ExchangeSuspended(code="XSMD", reason="halted"), "exchange suspended: halted"),
        (ExchangeRemoved(code="XSMD", reason="delisted"), "exchange removed: delisted"),
        (ExchangeRemoved(code="XSMD"), "exchange removed"),
    ],
)
async def test_a_suspension_or_removal_stops_the_feed_and_reports_the_reason(stop: Event, reason: str) -> None:
    feeds = await running()
    unit = await handle(stop, feeds)
    assert unit.events == [
        MarketDataFeedStopped(flow_id=unit.cause.id, exchange="XSMD", plugin="prodigy", reason=reason)
    ]
    assert (feeds.feeds["XSMD"].state, feeds.feeds["XSMD"].reason) == ("stopped", reason)


async def test_stopping_the_feed_of_an_exchange_never_added_fails_the_step() -> None:
    [failed] = (await handle(ExchangeSuspended(code="XSMD", reason="halted"), MemoryFeeds())).events
    assert isinstance(failed, StepFailed) and failed.step == "market_data.feed_stop"
