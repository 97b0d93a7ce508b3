"""Market data: the market_data service's projection against raw aiokafka consumption of the same topic.

One run on the embedded stack. A market-data topic (12 partitions, from the template) is filled
once with N Prodigy events (``ProdigyMarketData(rate=None)``, an exchange of 50 instruments:
about 70 % quotes five levels deep, 30 % trades, a few statuses). Then, in rounds that alternate
which side goes first, each from the start of the topic in a consumer group of its own:

- **projection**: the ``instruments`` projection of the market_data service
  (consumers/runtime/projection.py), as ``xbus run market_data`` runs it, into a fresh PostgreSQL
  schema: per partition batch, envelope and model validation of every record, the fold, one load
  and one upsert of the instruments touched, and the offsets, in one transaction;
- **raw**: a plain aiokafka consumer with the same fetch settings reading every record, no
  parsing, no database.

Each side is clocked from its first record to its last (the group join stays outside the clock),
and the medians and their ratio are printed. Nothing is asserted.

Usage: python bench/marketdata.py [--events 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer
from broker_option import add_broker_option, broker_name, choose_broker
from runtime import clocked  # bench/ is on sys.path when this file runs
from services import drop_schemas, fresh_world

from consumers.market_data.feeds import create_feed_topic, feed_catalogue
from consumers.market_data.service import INSTRUMENTS, SERVICE
from consumers.runtime.projection import ProjectionRunner
from consumers.runtime.runner import ServiceRunner
from consumers.runtime.service import BackgroundContext
from exchanges.plugins import MarketData
from exchanges.prodigy import ProdigyMarketData
from infrastructure.brokers import group_member_options
from infrastructure.catalogue import Catalogue
from infrastructure.endpoints import Endpoints, connect, load_catalogue
from infrastructure.logs import configure_logging
from infrastructure.settings import Settings, load_settings
from producers import Outgoing, Published, Publisher
from schemas.exchanges import ExchangeAdded, Market, Symbol, TradingHours

EXCHANGE = "BENCH"
INSTRUMENTS_LISTED = 50
PUBLISH_CHUNK = 10_000


def bench_exchange() -> ExchangeAdded:
    symbols = tuple(
        Symbol(code=f"S{i:02d}", name=f"Stock {i}", currency="AUD", cfi_code="ESVUFR")
        for i in range(INSTRUMENTS_LISTED)
    )
    market = Market(
        code=EXCHANGE,
        currency="AUD",
        time_zone="UTC",
        trading_hours=TradingHours(open=dt.time(0), close=dt.time(23, 59)),
        symbols=symbols,
    )
    return ExchangeAdded(
        code=EXCHANGE, name="Bench exchange", markets=(market,), market_data_plugin="prodigy", oms_adapter="prodigy"
    )


async def fill_topic(settings: Settings, endpoints: Endpoints, catalogue: Catalogue, count: int) -> str:
    """The exchange's market-data topic with ``count`` Prodigy events on it; its name."""
    events: list[MarketData] = [
        event async for event in ProdigyMarketData(rate=None, limit=count).feed(bench_exchange())
    ]
    topic = await create_feed_topic(settings, endpoints.kafka_bootstrap, catalogue, EXCHANGE)
    async with Publisher(settings, endpoints.kafka_bootstrap, feed_catalogue(catalogue, EXCHANGE)) as publisher:
        for start in range(0, count, PUBLISH_CHUNK):
            chunk = [Outgoing(event, time=event.at) for event in events[start : start + PUBLISH_CHUNK]]
            failed = [r for r in await publisher.publish_many(chunk) if not isinstance(r, Published)]
            if failed:
                raise SystemExit(f"{len(failed)} events failed to publish: {failed[0]}")
    return topic


def round_settings(settings: Settings, name: str) -> Settings:
    """The topic's settings with a consumer group and a schema no one has used."""
    tag = uuid.uuid4().hex[:8]
    return settings.model_copy(update={"group_prefix": f"bench-{tag}-{name}.", "db_schema_prefix": f"bench_{tag}_"})


async def projection_round(settings: Settings, endpoints: Endpoints, catalogue: Catalogue, count: int) -> float:
    """The instruments projection as the service runs it, with the service's schema and pool."""
    runner = ServiceRunner(SERVICE, settings, catalogue, endpoints.kafka_bootstrap, endpoints.database_url)
    await runner.migrate()
    pool = await asyncpg.create_pool(
        endpoints.database_url, min_size=1, max_size=8, server_settings={"search_path": runner.schema}
    )
    stop = asyncio.Event()
    context = BackgroundContext(
        SERVICE,
        settings,
        catalogue,
        endpoints.kafka_bootstrap,
        endpoints.database_url,
        pool,
        runner.routing,
        stop,
        runner.watchdog,
    )
    projection = ProjectionRunner(INSTRUMENTS, context)
    worker = asyncio.create_task(projection.run())
    try:
        return await clocked(lambda: projection.applied, count, worker)
    finally:
        stop.set()
        await worker
        await pool.close()
        await drop_schemas(endpoints, [runner.schema])


class RawReader:
    """Every record of the topic, counted: the fetch settings of the projection, nothing else."""

    def __init__(self, settings: Settings, bootstrap: str, topic: str) -> None:
        self.read = 0
        self._settings, self._bootstrap, self._topic = settings, bootstrap, topic

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            self._topic,
            **await group_member_options(self._settings, self._bootstrap, self._settings.group("bench.raw")),
            max_poll_records=INSTRUMENTS.max_records,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=INSTRUMENTS.max_records)
                self.read += sum(len(records) for records in batches.values())
        finally:
            await consumer.stop()


async def raw_round(settings: Settings, endpoints: Endpoints, topic: str, count: int) -> float:
    reader = RawReader(settings, endpoints.kafka_bootstrap, topic)
    stop = asyncio.Event()
    worker = asyncio.create_task(reader.run(stop))
    try:
        return await clocked(lambda: reader.read, count, worker)
    finally:
        stop.set()
        await worker


async def main(count: int, rounds: int) -> None:
    base = load_settings()
    configure_logging(base.log_format, base.log_level if "XBUS_LOG_LEVEL" in os.environ else "warning")
    endpoints = await connect(base)
    settings = await fresh_world(base, endpoints, "marketdata")
    catalogue = load_catalogue(settings)
    topic = await fill_topic(settings, endpoints, catalogue, count)
    print(f"{count:,} events on {topic}", flush=True)
    raw_rates: list[float] = []
    projection_rates: list[float] = []
    for index in range(rounds):
        raw_settings, projection_settings = round_settings(settings, "raw"), round_settings(settings, "projection")
        if index % 2 == 0:  # alternate who goes first, so that drift in the machine hits both alike
            raw_rate = await raw_round(raw_settings, endpoints, topic, count)
            projection_rate = await projection_round(projection_settings, endpoints, catalogue, count)
        else:
            projection_rate = await projection_round(projection_settings, endpoints, catalogue, count)
            raw_rate = await raw_round(raw_settings, endpoints, topic, count)
        raw_rates.append(raw_rate)
        projection_rates.append(projection_rate)
        print(
            f"round {index + 1}/{rounds}: raw {raw_rate:,.0f}/s  projection {projection_rate:,.0f}/s  "
            f"ratio {projection_rate / raw_rate:.3f}",
            flush=True,
        )
    raw, ours = statistics.median(raw_rates), statistics.median(projection_rates)
    summary = {
        "events": count,
        "rounds": rounds,
        "raw_consumer_per_s": round(raw),
        "projection_per_s": round(ours),
        "ratio": round(ours / raw, 3),
        "round_ratios": [round(p / r, 3) for p, r in zip(projection_rates, raw_rates, strict=True)],
    }
    print(json.dumps({"broker": broker_name(endpoints), "marketdata": summary}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    add_broker_option(parser)
    args = parser.parse_args()
    choose_broker(args)
    asyncio.run(main(args.events, args.rounds))
