"""The market-data service on the real stack: feeds started and stopped from exchange events, Prodigy's
market data on the exchange's topic, the latest state per instrument kept by the projection, dead
letters, and a restart that neither loses nor double-counts anything.

One service runs for the module; each test uses an exchange code of its own. The restart test runs
its own instances, on topics and a schema of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from consumers.market_data import queries
from consumers.market_data.feeds import create_feed_topic, feed_catalogue, feed_lock
from consumers.market_data.instruments import InstrumentState, fold
from consumers.market_data.service import SERVICE
from consumers.market_data.stamping import Stamp
from consumers.runtime import Service
from consumers.runtime.dead_letters import list_dead_letters
from consumers.runtime.projection import Projection
from consumers.runtime.runner import ServiceRunner
from consumers.runtime.service import BackgroundContext, BackgroundTask
from consumers.runtime.unit_of_work import DbConnection
from exchanges.plugins import MarketData
from exchanges.prodigy import ProdigyMarketData
from infrastructure.catalogue import MARKET_DATA_TOPICS
from infrastructure.endpoints import load_catalogue
from infrastructure.kafka_clients import acks_all_producer, client_options, topic_reader
from infrastructure.offsets import log_end_offsets
from infrastructure.reader import topic_partitions
from infrastructure.settings import Settings
from producers import Outgoing, Published, Publisher, open_publisher
from schemas import Envelope, Event, event_types
from schemas.exchanges import ExchangeAdded, ExchangeSuspended, ExchangeUpdated, Market, TradingHours
from schemas.market_data import (
    MARKET_DATA,
    MarketDataFeedStarted,
    MarketDataFeedStopped,
    MarketTradeReported,
    QuoteUpdated,
    TradingStatus,
    TradingStatusChanged,
)
from schemas.provisioning import StepFailed
from tests.conftest import Stack
from tests.integration.test_publisher import read_all
from tests.support.service_under_test import ServiceUnderTest, module_settings
from xbus.trading import prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

NOON = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def market_data(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await short_session_settings(stack)) as service:
        yield service


@pytest.fixture
def code() -> str:
    """An exchange code of this test's own."""
    return f"M{uuid.uuid4().hex[:8].upper()}"


def exchange(code: str, plugin: str = "prodigy", symbols: Sequence[str] = ("BHP", "RIO", "CBA")) -> ExchangeAdded:
    return prodigy_exchange(code, markets=1, symbols=symbols, plugin=plugin)


def far_east(code: str) -> ExchangeAdded:
    """A Prodigy exchange whose market keeps Kiritimati's time (UTC+14, no daylight saving) and closes
    at 14:00 there, which is 00:00 UTC: every moment's trading date is then its UTC date's next day,
    so a day counted by the UTC date shows, whenever the test runs."""
    added = exchange(code)
    [market] = added.markets
    moved = market.model_copy(
        update={
            "time_zone": "Pacific/Kiritimati",
            "trading_hours": TradingHours(open=dt.time(9, 0), close=dt.time(14, 0)),
        }
    )
    return added.model_copy(update={"markets": (moved,)})


def the_day_after(at: dt.datetime) -> dt.date:
    return at.astimezone(dt.UTC).date() + dt.timedelta(days=1)


def trade(code: str, instrument: str, seq: int, price: str, quantity: int) -> MarketTradeReported:
    return MarketTradeReported.model_validate(
        {
            "exchange": code,
            "instrument": f"{instrument}.{code}",
            "seq": seq,
            "price": price,
            "quantity": quantity,
            "venue_trade_id": f"T{seq}",
            "at": NOON + dt.timedelta(seconds=seq),
        }
    )


def quote(code: str, instrument: str, seq: int, bid: str, ask: str) -> QuoteUpdated:
    return QuoteUpdated.model_validate(
        {
            "exchange": code,
            "instrument": f"{instrument}.{code}",
            "seq": seq,
            "bids": [{"price": bid, "quantity": 100}],
            "asks": [{"price": ask, "quantity": 200}],
            "at": NOON + dt.timedelta(seconds=seq),
        }
    )


async def publish_market_data(settings: Settings, code: str, events: Sequence[MarketData]) -> str:
    """Publish ``events`` on the exchange's market-data topic (created first, as the feed does); its name."""
    catalogue = load_catalogue(settings)
    bootstrap = settings.kafka_bootstrap or ""
    topic = await create_feed_topic(settings, bootstrap, catalogue, code)
    async with Publisher(settings, bootstrap, feed_catalogue(catalogue, code)) as publisher:
        results = await publisher.publish_many([Outgoing(event, time=event.at) for event in events])
    assert all(isinstance(result, Published) for result in results), results
    return topic


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not reached in {timeout:.0f} s: {what}"
        await asyncio.sleep(0.1)


async def applied_through(db: DbConnection, topic: str, projection: str = "instruments") -> int:
    """Records of ``topic`` the projection has applied (the sum of its partitions' next offsets)."""
    if await db.fetchval("select to_regclass('xbus_projection_offsets')") is None:
        return 0  # the projection has not started yet
    return int(
        await db.fetchval(
            "select coalesce(sum(next_offset), 0) from xbus_projection_offsets where projection = $1 and topic = $2",
            projection,
            topic,
        )
    )


async def topic_size(settings: Settings, topic: str) -> int:
    async with topic_reader(settings, settings.kafka_bootstrap or "") as (admin, consumer):
        return sum((await log_end_offsets(consumer, await topic_partitions(admin, topic))).values())


async def market_events(settings: Settings, code: str) -> list[MarketData]:
    """The market data of the exchange's topic that parses, per partition in offset order."""
    read = await read_all(settings, feed_catalogue(load_catalogue(settings), code).topics[0].name)
    events = [
        event_types.parse(record.envelope.type, record.data)
        for record in sorted(read, key=lambda record: (record.partition, record.offset))
        if record.envelope is not None and record.problem is None
    ]
    return [event for event in events if isinstance(event, MarketTradeReported | QuoteUpdated | TradingStatusChanged)]


def folded(events: Sequence[MarketData]) -> dict[str, InstrumentState]:
    """The state per instrument, folded here from the topic's records: what the projection must hold."""
    states: dict[str, InstrumentState] = {}
    for event in events:
        states[event.aggregate_id] = fold(states.get(event.aggregate_id), event)
    return states


async def projected(db: DbConnection, code: str) -> dict[str, InstrumentState]:
    return {state.instrument: state for state in await queries.instruments(db, code)}


async def lock_is_free(db: DbConnection, schema: str, code: str) -> bool:
    """Nobody feeds ``code``: its feed lock can be taken (and is given back at once)."""
    lock = feed_lock(schema, code)
    if not await db.fetchval("select pg_try_advisory_lock(hashtextextended($1, 0))", lock):
        return False
    await db.execute("select pg_advisory_unlock(hashtextextended($1, 0))", lock)
    return True


# --- the projection, fed by hand ------------------------------------------------------------------


async def test_market_data_is_folded_into_each_instruments_latest_state(
    market_data: ServiceUnderTest, code: str
) -> None:
    events: list[MarketData] = [
        trade(code, "BHP", 1, "45.10", 100),
        quote(code, "BHP", 2, "45.05", "45.15"),
        trade(code, "BHP", 3, "45.40", 30),
        trade(code, "BHP", 4, "44.90", 20),
        trade(code, "RIO", 1, "120.00", 5),
        quote(code, "RIO", 3, "119.90", "120.10"),
    ]
    topic = await publish_market_data(market_data.settings, code, events)

    await eventually(lambda: _equals(applied_through(market_data.db, topic), len(events)), "all applied")

    bhp = await queries.instrument_state(market_data.db, f"BHP.{code}")
    assert bhp is not None
    assert (bhp.last_price, bhp.last_quantity, bhp.last_seq, bhp.gaps) == (Decimal("44.90"), 20, 4, 0)
    assert (bhp.bid_price, bhp.bid_quantity, bhp.ask_price, bhp.ask_quantity) == (
        Decimal("45.05"),
        100,
        Decimal("45.15"),
        200,
    )
    assert (bhp.open, bhp.high, bhp.low, bhp.close, bhp.volume) == (
        Decimal("45.10"),
        Decimal("45.40"),
        Decimal("44.90"),
        None,
        150,
    )
    assert bhp.trading_date == NOON.date()  # trades published by hand carry no date: their UTC date
    rio = await queries.instrument_state(
        market_data.settings.database_url or "", f"RIO.{code}", schema=_schema(market_data)
    )
    assert rio is not None
    assert (rio.last_price, rio.bid_price, rio.last_seq, rio.gaps) == (Decimal("120.00"), Decimal("119.90"), 3, 1)
    assert await projected(market_data.db, code) == folded(events)
    assert await queries.instrument_state(market_data.db, f"NOPE.{code}") is None


async def test_a_malformed_record_goes_to_the_dead_letter_topic_and_the_rest_are_applied(
    market_data: ServiceUnderTest, code: str
) -> None:
    settings = market_data.settings
    instrument = f"BHP.{code}"
    topic = await publish_market_data(settings, code, [trade(code, "BHP", 1, "10.00", 100)])
    trade_headers = Envelope.new(type=MarketTradeReported.event_type, subject=instrument, source="tests").to_headers()
    quote_headers = Envelope.new(type=QuoteUpdated.event_type, subject=instrument, source="tests").to_headers()
    async with acks_all_producer(settings, settings.kafka_bootstrap or "") as producer:
        key = instrument.encode()
        await producer.send_and_wait(topic, b'{"not": "an envelope"}', key=key)
        await producer.send_and_wait(topic, b"{not json", key=key, headers=trade_headers)
        wrong_model = trade(code, "BHP", 2, "11.00", 1).model_dump_json().encode()
        await producer.send_and_wait(topic, wrong_model, key=key, headers=quote_headers)
    await publish_market_data(settings, code, [trade(code, "BHP", 3, "12.00", 7)])

    await eventually(lambda: _equals(applied_through(market_data.db, topic), 5), "all five records read")
    state = await queries.instrument_state(market_data.db, instrument)
    assert state is not None
    assert (state.last_price, state.last_seq, state.volume) == (Decimal("12.00"), 3, 107)

    async def dead_lettered() -> list[dict[str, str]]:
        read = await read_all(settings, "xosp.marketdata.dlq")
        return [record.headers for record in read if record.key == instrument]

    await eventually(lambda: _length(dead_lettered(), 3), "three records on the dead-letter topic")
    headers = sorted(await dead_lettered(), key=lambda h: int(h["xbus_dlq_offset"]))
    assert [h["xbus_dlq_error_type"] for h in headers] == ["EnvelopeError", "ValidationError", "ValidationError"]
    assert {h["xbus_dlq_topic"] for h in headers} == {topic}
    assert "missing CloudEvents header" in headers[0]["xbus_dlq_error_message"]
    assert "bids" not in headers[2]["xbus_dlq_error_message"] and "price" in headers[2]["xbus_dlq_error_message"]
    listed = [entry for entry in await list_dead_letters(market_data.db) if entry.key == instrument]
    assert [entry.offset for entry in listed] == [int(h["xbus_dlq_offset"]) for h in headers]


# --- feeds ------------------------------------------------------------------------------------------


async def test_an_added_exchange_is_fed_and_a_suspended_one_is_not(market_data: ServiceUnderTest, code: str) -> None:
    settings = market_data.settings
    added = exchange(code)

    handled = await market_data.handle(added)

    assert handled.follow_ups == [
        MarketDataFeedStarted(
            flow_id=handled.flow_id, exchange=code, plugin="prodigy", topic=f"xosp.marketdata.{code}", instruments=3
        )
    ]
    topic = settings.topic(f"xosp.marketdata.{code}")
    await eventually(lambda: _at_least(_size_if_exists(settings, topic), 60), "Prodigy's market data on the topic")
    [feed] = [feed for feed in await queries.feeds(market_data.db, "running") if feed.exchange == code]
    assert (feed.plugin, feed.instruments, feed.definition, feed.reason) == ("prodigy", 3, added, None)

    suspended = await market_data.handle(ExchangeSuspended(code=code, reason="maintenance"))

    reason = "exchange suspended: maintenance"
    assert suspended.follow_ups == [
        MarketDataFeedStopped(flow_id=suspended.flow_id, exchange=code, plugin="prodigy", reason=reason)
    ]
    await eventually(lambda: lock_is_free(market_data.db, _schema(market_data), code), "the feed let go of its lock")
    size = await topic_size(settings, topic)
    await eventually(lambda: _equals(applied_through(market_data.db, topic), size), "the projection caught up")
    await asyncio.sleep(1.5)  # long enough for a feed still running to publish some 75 events
    assert await topic_size(settings, topic) == size
    [stopped] = [feed for feed in await queries.feeds(market_data.db) if feed.exchange == code]
    assert (stopped.state, stopped.reason, stopped.flow_id) == ("stopped", reason, suspended.flow_id)

    events = await market_events(settings, code)
    assert {type(event) for event in events} >= {MarketTradeReported, QuoteUpdated}
    states = await projected(market_data.db, code)
    assert states == folded(events)
    assert set(states) == {f"{symbol}.{code}" for symbol in ("BHP", "RIO", "CBA")}
    assert all(state.status is not None and state.gaps == 0 for state in states.values())


async def test_a_feed_dates_each_trade_by_its_markets_close_and_the_day_figures_follow(
    market_data: ServiceUnderTest, code: str
) -> None:
    """A market has a time zone of its own (plxtra/xosp ``Config/Tasks/market-create.ps1``:
    ``[string] $TimeZone = "Etc/UTC"``, ``Market Create ... -TimeZone $TimeZone``), and Zenith's day
    is the market's (plxtra/zenith-websocket-api ``src/content/docs/controllers/market/markets.md``:
    "TradingDate: The trading date of the Market"; ``security.md``: the full state is sent "upon a
    new trading day"). The feed dates each trade on the topic, and the projection's open, high, low
    and volume are those of the latest trading date's trades."""
    settings = market_data.settings
    await market_data.handle(far_east(code))
    topic = settings.topic(f"xosp.marketdata.{code}")
    await eventually(lambda: _at_least(_size_if_exists(settings, topic), 150), "Prodigy's market data on the topic")
    await market_data.handle(ExchangeSuspended(code=code, reason="end of test"))
    await eventually(lambda: lock_is_free(market_data.db, _schema(market_data), code), "the feed let go of its lock")
    size = await topic_size(settings, topic)
    await eventually(lambda: _equals(applied_through(market_data.db, topic), size), "the projection caught up")

    events = await market_events(settings, code)
    trades = [event for event in events if isinstance(event, MarketTradeReported)]
    assert trades, "Prodigy traded nothing"
    assert [trade.trading_date for trade in trades] == [the_day_after(trade.at) for trade in trades]
    states = await projected(market_data.db, code)
    assert states == folded(events)
    for instrument in {trade.instrument for trade in trades}:
        state = states[instrument]
        assert state.trading_date == max(the_day_after(trade.at) for trade in trades if trade.instrument == instrument)
        days = [
            trade for trade in trades if trade.instrument == instrument and trade.trading_date == state.trading_date
        ]
        assert (state.open, state.high, state.low, state.volume) == (
            days[0].price,
            max(trade.price for trade in days),
            min(trade.price for trade in days),
            sum(trade.quantity for trade in days),
        )


async def test_an_exchange_naming_a_plugin_not_installed_fails_its_feed_step(
    market_data: ServiceUnderTest, code: str
) -> None:
    handled = await market_data.handle(exchange(code, plugin="nowhere"))

    [failed] = handled.follow_ups
    assert isinstance(failed, StepFailed)
    assert (failed.flow_id, failed.service, failed.step) == (handled.flow_id, "market_data", "market_data.feed")
    assert "no plugin 'nowhere'" in failed.reason and "prodigy" in failed.reason
    [feed] = [feed for feed in await queries.feeds(market_data.db) if feed.exchange == code]
    assert feed.state == "stopped" and feed.reason is not None and "nowhere" in feed.reason


async def test_an_update_to_a_plugin_not_installed_stops_the_feed(market_data: ServiceUnderTest, code: str) -> None:
    await market_data.handle(exchange(code))

    updated = await market_data.handle(ExchangeUpdated(code=code, market_data_plugin="nowhere"))

    [stopped] = updated.follow_ups
    assert isinstance(stopped, MarketDataFeedStopped) and stopped.plugin == "prodigy"
    assert "no plugin 'nowhere'" in stopped.reason
    [feed] = [feed for feed in await queries.feeds(market_data.db) if feed.exchange == code]
    assert (feed.state, feed.plugin, feed.definition.market_data_plugin) == ("stopped", "nowhere", "nowhere")


async def test_suspending_an_exchange_never_added_fails_the_stop_step(market_data: ServiceUnderTest, code: str) -> None:
    handled = await market_data.handle(ExchangeSuspended(code=code, reason="maintenance"))

    [failed] = handled.follow_ups
    assert isinstance(failed, StepFailed) and failed.step == "market_data.feed_stop"
    assert f"exchange {code} has no market-data feed" in failed.reason


# --- a restart between the transaction and the offset commit -------------------------------------


def count(state: tuple[int, int] | None, event: Event) -> tuple[int, int]:
    """Events and traded volume per instrument, with no seq guard: anything applied twice shows."""
    events, volume = state or (0, 0)
    return events + 1, volume + (event.quantity if isinstance(event, MarketTradeReported) else 0)


async def load_counts(connection: DbConnection, keys: Sequence[str]) -> dict[str, tuple[int, int]]:
    rows = await connection.fetch("select instrument, events, volume from test_counts where instrument = any($1)", keys)
    return {row["instrument"]: (row["events"], row["volume"]) for row in rows}


async def save_counts(connection: DbConnection, states: Mapping[str, tuple[int, int]]) -> None:
    await connection.execute(
        """
        insert into test_counts select * from unnest($1::text[], $2::bigint[], $3::bigint[])
        on conflict (instrument) do update set events = excluded.events, volume = excluded.volume
        """,
        list(states),
        [events for events, _ in states.values()],
        [volume for _, volume in states.values()],
    )


COUNTS = Projection(
    name="counts", topics=MARKET_DATA_TOPICS, events=MARKET_DATA, fold=count, load=load_counts, save=save_counts
)
#: The market-data service with a second projection of the same topics that would count twice what it applied twice.
COUNTING = dataclasses.replace(SERVICE, background=(*SERVICE.background, COUNTS))


@dataclasses.dataclass
class Instance:
    """One instance of a service, running in this process until :meth:`close`."""

    runner: ServiceRunner
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def close(self) -> None:
        self.stop.set()
        await self.task


async def start(service: Service, settings: Settings) -> Instance:
    catalogue = load_catalogue(settings)
    runner = ServiceRunner(service, settings, catalogue, settings.kafka_bootstrap or "", settings.database_url or "")
    await runner.migrate()
    if COUNTS in service.background:
        await _execute(
            settings,
            "create table if not exists test_counts "
            "(instrument text primary key, events bigint not null, volume bigint not null)",
        )
    stop = asyncio.Event()
    return Instance(runner, stop, asyncio.create_task(runner.run(stop)))


@asynccontextmanager
async def running(service: Service, settings: Settings) -> AsyncIterator[Instance]:
    instance = await start(service, settings)
    try:
        yield instance
    finally:
        await instance.close()


async def short_session_settings(stack: Stack) -> Settings:
    """Topics and a schema of a test's own, with a short group session: on this broker a group's joins,
    and the stopped members' partitions, wait for it."""
    return (await module_settings(stack)).model_copy(
        update={"consumer_session_timeout_ms": 2_000, "consumer_heartbeat_interval_ms": 500}
    )


async def rewind_commits(settings: Settings, topic: str, group: str) -> None:
    """Commit offset 0 for ``group`` on every partition: what Kafka holds after a crash before any commit.

    As a member of the group: the embedded broker refuses commits from outside it.
    """
    consumer = AIOKafkaConsumer(
        topic,
        **client_options(settings, settings.kafka_bootstrap or ""),
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=settings.consumer_session_timeout_ms or 2_000,
        heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms or 500,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while len(consumer.assignment()) < 12:
            assert time.monotonic() < deadline, "never given the topic's partitions"
            await consumer.getmany(timeout_ms=100)
        partitions = consumer.assignment()
        await consumer.commit({tp: 0 for tp in partitions})
        assert {await consumer.committed(tp) for tp in partitions} == {0}
    finally:
        await consumer.stop()


async def test_one_instance_feeds_an_exchange_and_another_takes_over_when_it_stops(stack: Stack) -> None:
    settings = await short_session_settings(stack)
    code = f"F{uuid.uuid4().hex[:8].upper()}"
    topic = settings.topic(f"xosp.marketdata.{code}")
    connection = await asyncpg.connect(settings.database_url or "")
    first = await start(SERVICE, settings)
    try:
        async with open_publisher(settings) as publisher:
            await publisher.publish(exchange(code))
        await eventually(lambda: _at_least(_size_if_exists(settings, topic), 1), "the first instance feeds")
        since = await connection.fetchval("select clock_timestamp()")
        async with running(SERVICE, settings):
            await eventually(lambda: standing_by(connection, since), "the second instance waits for the lock")
            size = await topic_size(settings, topic)
            await eventually(lambda: _at_least(topic_size(settings, topic), size + 100), "more market data")
            fed = [(event.aggregate_id, event.seq) for event in await market_events(settings, code)]
            assert len(fed) == len(set(fed)), "two instances fed the exchange at once"

            await first.close()

            size = await topic_size(settings, topic)
            await eventually(lambda: _at_least(topic_size(settings, topic), size + 50), "the second instance feeds")
    finally:
        await first.close()
        await connection.close()


async def standing_by(connection: asyncpg.Connection, since: dt.datetime) -> bool:
    """A feed has tried the feed lock since ``since`` and not got it (the holder took it before)."""
    return bool(
        await connection.fetchval(
            "select exists (select 1 from pg_stat_activity where query like $1 and query_start > $2)",
            "%pg_try_advisory_lock(hashtextextended%",
            since,
        )
    )


async def test_a_restart_after_kafka_lost_the_commits_gives_the_state_of_one_uninterrupted_run(stack: Stack) -> None:
    settings = await short_session_settings(stack)
    code = f"R{uuid.uuid4().hex[:8].upper()}"
    stamp = Stamp(exchange(code), session=1)
    feed = [stamp(event) async for event in ProdigyMarketData(rate=None, limit=3_000).feed(exchange(code))]
    first, second = feed[:1_800], feed[1_800:]
    schema = settings.db_schema(SERVICE.name)
    connection = await asyncpg.connect(settings.database_url or "", server_settings={"search_path": schema})
    try:
        topic = await publish_market_data(settings, code, first)
        async with running(COUNTING, settings):
            await eventually(lambda: _equals(applied_through(connection, topic, "counts"), len(first)), "first part")
            await eventually(lambda: _equals(applied_through(connection, topic), len(first)), "first part projected")

        await asyncio.gather(  # as if the process had died before committing anything to Kafka
            *(
                rewind_commits(settings, topic, settings.group(f"xbus.market_data.{name}"))
                for name in ("instruments", "counts")
            )
        )
        await publish_market_data(settings, code, second)
        async with running(COUNTING, settings):
            await eventually(lambda: _equals(applied_through(connection, topic, "counts"), len(feed)), "all", 60)
            await eventually(lambda: _equals(applied_through(connection, topic), len(feed)), "all projected", 60)

        events = await market_events(settings, code)
        assert len(events) == len(feed)
        trades = [event for event in events if isinstance(event, MarketTradeReported)]
        counted = {
            row["instrument"]: (row["events"], row["volume"])
            for row in await connection.fetch("select * from test_counts")
        }
        assert counted == {
            key: (
                sum(1 for event in events if event.aggregate_id == key),
                sum(trade.quantity for trade in trades if trade.instrument == key),
            )
            for key in {event.aggregate_id for event in events}
        }
        states = await projected(connection, code)
        assert states == folded(events)
        last_day = {
            key: max(t.trading_date for t in trades if t.instrument == key and t.trading_date) for key in states
        }
        assert {key: state.volume for key, state in states.items()} == {
            key: sum(t.quantity for t in trades if t.instrument == key and t.trading_date == last_day[key])
            for key in states
        }
        assert all(state.status is TradingStatus.CLOSED and state.gaps == 0 for state in states.values())
    finally:
        await connection.close()


async def test_refolding_the_topic_rebuilds_the_same_day_figures_after_the_market_moved(stack: Stack) -> None:
    """Zenith's day is the market's (plxtra/zenith-websocket-api ``src/content/docs/controllers/market/
    markets.md``: "TradingDate: The trading date of the Market"). Each trade carries the date its
    market gave it when it traded, so refolding the topic (docs/operations.md: empty the projection's
    offsets and state, restart) gives the same open, high, low, close and volume even after an
    ``ExchangeUpdated`` moved the market to Pago Pago (UTC-11, close 13:00, which is 00:00 UTC: there
    every trade would be a day earlier)."""
    settings = await short_session_settings(stack)
    code = f"D{uuid.uuid4().hex[:8].upper()}"
    added = far_east(code)
    topic = settings.topic(f"xosp.marketdata.{code}")
    schema = settings.db_schema(SERVICE.name)
    connection = await asyncpg.connect(settings.database_url or "", server_settings={"search_path": schema})
    try:
        async with running(SERVICE, settings), open_publisher(settings) as publisher:
            await publisher.publish(added)
            await eventually(lambda: _at_least(_size_if_exists(settings, topic), 150), "Prodigy's market data")
            await publisher.publish(ExchangeSuspended(code=code, reason="end of the trading"))
            await eventually(lambda: lock_is_free(connection, schema, code), "the feed let go of its lock")
            size = await topic_size(settings, topic)
            await eventually(lambda: _equals(applied_through(connection, topic), size), "the projection caught up")
            [market] = added.markets
            moved = market.model_copy(
                update={
                    "time_zone": "Pacific/Pago_Pago",
                    "trading_hours": TradingHours(open=dt.time(8, 0), close=dt.time(13, 0)),
                }
            )
            await publisher.publish(ExchangeUpdated(code=code, markets=(moved,)))
            await eventually(lambda: _definition_is(connection, code, moved), "the new definition kept")
        before = await projected(connection, code)
        assert before

        await connection.execute("delete from instruments where exchange = $1", code)
        await connection.execute("delete from xbus_projection_offsets where topic = $1", topic)
        async with running(SERVICE, settings):
            await eventually(lambda: _equals(applied_through(connection, topic), size), "the topic refolded", 60)

        assert await projected(connection, code) == before
        dated = [
            (state.trading_date, the_day_after(state.last_trade_at))
            for state in before.values()
            if state.last_trade_at is not None
        ]
        assert dated, "Prodigy traded nothing"
        assert [day for day, _ in dated] == [expected for _, expected in dated]
    finally:
        await connection.close()


async def _definition_is(connection: asyncpg.Connection, code: str, market: Market) -> bool:
    feeds = [feed for feed in await queries.feeds(connection) if feed.exchange == code]
    return bool(feeds) and feeds[0].definition.markets == (market,)


# --- the runtime's background tasks -----------------------------------------------------------------


async def explode(context: BackgroundContext) -> None:
    raise RuntimeError("the feed's broker went away")


async def quit_early(context: BackgroundContext) -> None:
    return


@pytest.mark.parametrize(
    ("task", "error"),
    [
        (explode, "the feed's broker went away"),
        (quit_early, "quit_early returned before the service was asked to stop"),
    ],
)
async def test_a_background_task_that_fails_or_ends_stops_its_service(
    stack: Stack, task: BackgroundTask, error: str
) -> None:
    settings = await short_session_settings(stack)
    service = dataclasses.replace(SERVICE, background=(task,))
    runner = ServiceRunner(
        service, settings, load_catalogue(settings), settings.kafka_bootstrap or "", settings.database_url or ""
    )

    with pytest.raises(RuntimeError, match=error):
        await asyncio.wait_for(runner.run(asyncio.Event()), timeout=30)


# --- helpers ---------------------------------------------------------------------------------------


def _schema(service: ServiceUnderTest) -> str:
    return service.settings.db_schema(SERVICE.name)


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _at_least(value: Awaitable[int], expected: int) -> bool:
    return await value >= expected


async def _length(value: Awaitable[Sequence[object]], expected: int) -> bool:
    return len(await value) == expected


async def _size_if_exists(settings: Settings, topic: str) -> int:
    async with topic_reader(settings, settings.kafka_bootstrap or "") as (admin, _):
        if topic not in await admin.list_topics():
            return 0
    return await topic_size(settings, topic)


async def _execute(settings: Settings, sql: str) -> None:
    schema = settings.db_schema(SERVICE.name)
    connection = await asyncpg.connect(settings.database_url or "", server_settings={"search_path": schema})
    try:
        await connection.execute(sql)
    finally:
        await connection.close()
