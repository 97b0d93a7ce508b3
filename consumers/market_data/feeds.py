"""The feed supervisor: runs the market-data plugin of every feed the feeds table marks running.

It is a background task of the service (``Service.background``), so it runs in every instance.
Each second it reads the feeds table and starts, restarts (a new revision) or stops feeds to
match. A feed first takes a PostgreSQL session-level advisory lock on its exchange, on a
connection of its own held for the feed's whole life: among several instances exactly one feeds
an exchange, and when that one dies its session ends, the lock is freed and the instance that
was standing by takes over. Holding the lock, the feed creates the exchange's market-data topic
from the ``xosp.marketdata.{exchange}`` template if it is missing (never left to the broker's
auto-creation, which would make 4 partitions), and publishes what the plugin's
``feed(exchange)`` yields, stamped with the session's ``seq`` and each trade's trading date
(stamping.py), keyed by instrument, through the Publisher, in batches of what
accumulated while the previous batch was being acknowledged. A feed stops when its row says
stopped (the plugin's iterator is closed with ``aclose()``), when the service stops, or when
its lock's connection is lost (someone else may feed the exchange by then).

A feed whose plugin fails is logged and started again at the next poll; one whose iterator ends
keeps its lock (the exchange has nothing more to say, and another instance must not start it
over) until its row changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import asyncpg
import structlog

from consumers.market_data import queries, store
from consumers.market_data.stamping import Stamp
from consumers.runtime.service import BackgroundContext
from consumers.runtime.tasks import sleep_unless
from consumers.runtime.transient import TRANSIENT_ERRORS
from exchanges.plugins import MarketData, load_market_data_plugin
from infrastructure.catalogue import Catalogue
from infrastructure.kafka_clients import admin_client
from infrastructure.settings import Settings
from infrastructure.topic_admin import apply_topics
from producers import Outgoing, Publisher, PublishFailed

log = structlog.get_logger("xbus.market_data.feeds")

POLL_SECONDS = 1.0
#: Events published per request at most; a feed's backlog waits in a queue this many times deep.
BATCH_SIZE = 2_000
_QUEUE_BATCHES = 5
_MAX_BACKOFF_SECONDS = 5.0


def feed_catalogue(catalogue: Catalogue, exchange: str) -> Catalogue:
    """A catalogue of the exchange's market-data topic alone.

    The Publisher routes an event to the one topic its catalogue gives its type, and
    ``apply_topics`` creates what a catalogue lists: through this one, both serve an exchange's
    topic, which the full catalogue only has as a template.
    """
    return Catalogue(catalogue.path, [catalogue.market_data_topic(exchange)])


async def create_feed_topic(settings: Settings, bootstrap: str, catalogue: Catalogue, exchange: str) -> str:
    """Create the exchange's market-data topic if it is missing; its physical name."""
    topics = feed_catalogue(catalogue, exchange)
    async with admin_client(settings, bootstrap) as admin:
        report = await apply_topics(admin, topics, settings.topic_prefix)
    for drift in report.drift:
        log.warning("market-data topic differs from its template", exchange=exchange, drift=str(drift))
    return settings.topic(topics.topics[0].name)


def feed_lock(schema: str, exchange: str) -> str:
    """The name of the advisory lock (``hashtextextended(name, 0)``) its feeder holds."""
    return f"xbus-feed:{schema}:{exchange}"


async def supervise_feeds(context: BackgroundContext) -> None:
    """The background task: run the running feeds until the service stops."""
    await FeedSupervisor(context).run()


@dataclass
class _Running:
    revision: int
    task: asyncio.Task[None]
    #: time.monotonic() when it started
    started: float


@dataclass
class RestartBackoff:
    """When a failed feed may start again: after 1 s, then twice as long after each failure in a
    row, up to ``ceiling``; a feed that ran ``ceiling`` seconds before failing starts afresh. A
    plugin that fails at once (a dead upstream) is then retried every minute, not every second."""

    ceiling: float = 60.0
    _failures: int = 0
    _not_before: float = 0.0

    def failed(self, now: float, ran_for: float) -> None:
        self._failures = 1 if ran_for >= self.ceiling else self._failures + 1
        self._not_before = now + min(self.ceiling, 2.0 ** (self._failures - 1))

    def may_start(self, now: float) -> bool:
        return now >= self._not_before

    def seconds_left(self, now: float) -> float:
        return max(0.0, self._not_before - now)


class FeedSupervisor:
    def __init__(self, context: BackgroundContext, poll_seconds: float = POLL_SECONDS) -> None:
        self.context = context
        self.schema = context.settings.db_schema(context.service.name)
        self._poll_seconds = poll_seconds
        self._running: dict[str, _Running] = {}
        self._backoff: dict[str, RestartBackoff] = {}
        self._last_session = 0

    def _new_session(self) -> int:
        """The second a feed starts, and never one this process has used (instruments.py)."""
        self._last_session = max(int(time.time()), self._last_session + 1)
        return self._last_session

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._reconcile(await queries.feeds(self.context.pool, "running"))
                except TRANSIENT_ERRORS as error:  # feeds under way keep going; their locks say who feeds
                    log.warning("cannot read the feeds table; retrying", error=repr(error))
                if await sleep_unless(self.context.stop, self._poll_seconds):
                    return
        finally:
            await asyncio.gather(*(self._stop(exchange) for exchange in list(self._running)))

    async def _reconcile(self, wanted: list[store.Feed]) -> None:
        by_exchange = {feed.exchange: feed for feed in wanted}
        for exchange, running in list(self._running.items()):
            feed = by_exchange.get(exchange)
            failed = running.task.done()
            if feed is None or feed.revision != running.revision or failed:
                await self._stop(exchange)
        for exchange, feed in by_exchange.items():
            backoff = self._backoff.setdefault(exchange, RestartBackoff())
            if exchange not in self._running and backoff.may_start(time.monotonic()):
                task = asyncio.create_task(self._feed(feed), name=f"feed-{exchange}")
                self._running[exchange] = _Running(feed.revision, task, time.monotonic())

    async def _stop(self, exchange: str) -> None:
        running = self._running.pop(exchange)
        running.task.cancel()
        try:
            await running.task
        except asyncio.CancelledError:
            pass
        except Exception as error:  # a plugin's or the broker's failure: logged, and started again
            now = time.monotonic()
            backoff = self._backoff.setdefault(exchange, RestartBackoff())
            backoff.failed(now, ran_for=now - running.started)
            log.error(
                "market-data feed failed; it starts again",
                exchange=exchange,
                error=repr(error),
                retry_in=round(backoff.seconds_left(now), 1),
            )

    async def _feed(self, feed: store.Feed) -> None:
        """Wait for the exchange's lock, then publish its plugin's market data until cancelled."""
        connection = await asyncpg.connect(self.context.database_url)
        try:
            lock = feed_lock(self.schema, feed.exchange)
            if not await connection.fetchval("select pg_try_advisory_lock(hashtextextended($1, 0))", lock):
                log.info("market-data feed held by another instance; standing by", exchange=feed.exchange)
                while not await connection.fetchval("select pg_try_advisory_lock(hashtextextended($1, 0))", lock):
                    await asyncio.sleep(self._poll_seconds)
            keeper = asyncio.create_task(_hold(connection, self._poll_seconds), name=f"feed-lock-{feed.exchange}")
            publishing = asyncio.create_task(
                self._publish(feed, self._new_session()), name=f"feed-publish-{feed.exchange}"
            )
            try:
                # The lock lost ends the feed; a feed that ended keeps the lock until cancelled.
                await asyncio.wait({keeper, publishing}, return_when=asyncio.FIRST_EXCEPTION)
                for task in (keeper, publishing):
                    if task.done():
                        task.result()
            finally:
                for task in (keeper, publishing):
                    task.cancel()
                await asyncio.gather(keeper, publishing, return_exceptions=True)
        finally:
            await connection.close()

    async def _publish(self, feed: store.Feed, session: int) -> None:
        context = self.context
        stamp = Stamp(feed.definition, session)
        plugin = load_market_data_plugin(feed.plugin)
        topic = await create_feed_topic(context.settings, context.bootstrap, context.catalogue, feed.exchange)
        publisher = Publisher(context.settings, context.bootstrap, feed_catalogue(context.catalogue, feed.exchange))
        await publisher.start()
        stream = plugin.feed(feed.definition)
        queue: asyncio.Queue[MarketData | None] = asyncio.Queue(maxsize=BATCH_SIZE * _QUEUE_BATCHES)
        reader = asyncio.create_task(_read(stream, queue), name=f"feed-read-{feed.exchange}")
        published = 0
        how = "stopped"
        log.info(
            "market-data feed started",
            exchange=feed.exchange,
            plugin=feed.plugin,
            topic=topic,
            instruments=feed.instruments,
            revision=feed.revision,
            session=session,
        )
        try:
            while batch := await _next_batch(queue):
                await self._send(publisher, batch, feed.exchange, stamp)
                published += len(batch)
            await reader  # raises the plugin's own failure, if that is why the iterator ended
            how = "ended"
        except Exception as error:
            how = f"failed: {error!r}"
            raise
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()
            await publisher.stop()
            log.info(
                "market-data feed stopped", exchange=feed.exchange, plugin=feed.plugin, how=how, published=published
            )

    async def _send(self, publisher: Publisher, batch: list[MarketData], exchange: str, stamp: Stamp) -> None:
        """Publish ``batch`` keyed by instrument, stamped (numbered in the feed's session, trades
        dated); what fails is sent again, before anything newer."""
        pending = [Outgoing(stamp(event), time=event.at) for event in batch]
        backoff = 0.1
        while pending:
            results = await publisher.publish_many(pending)
            failed = [item for item, result in zip(pending, results, strict=True) if isinstance(result, PublishFailed)]
            if failed:
                first = next(result for result in results if isinstance(result, PublishFailed))
                log.warning(
                    "market data not acknowledged; sending again",
                    exchange=exchange,
                    events=len(failed),
                    error=first.error,
                    retry_in=backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
            pending = failed


async def _read(stream: AsyncIterator[MarketData], queue: asyncio.Queue[MarketData | None]) -> None:
    """Queue what the plugin yields, then None: at its end, or its failure (which the reader raises)."""
    try:
        async for event in stream:
            await queue.put(event)
    except Exception:
        await queue.put(None)
        raise
    await queue.put(None)


async def _next_batch(queue: asyncio.Queue[MarketData | None]) -> list[MarketData]:
    """What the queue holds, up to a batch, waiting for the first; empty once the stream has ended.

    The end marker is put back, so that the call after a batch cut short by it returns empty.
    """
    batch: list[MarketData] = []
    while len(batch) < BATCH_SIZE and (batch == [] or not queue.empty()):
        event = await queue.get()
        if event is None:
            queue.put_nowait(None)
            break
        batch.append(event)
    return batch


async def _hold(connection: asyncpg.Connection, every: float) -> None:
    """Use the lock's connection now and then: a lost session (and so a lost lock) raises here."""
    while True:
        await asyncio.sleep(every)
        await connection.fetchval("select 1")
