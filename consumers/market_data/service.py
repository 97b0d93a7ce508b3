"""Wiring of the market-data service: the exchange events it handles, its SQL, its feed supervisor
and the projection of every exchange's market data into the latest state per instrument."""

from __future__ import annotations

from pathlib import Path

from consumers.market_data import handlers, instruments, store
from consumers.market_data.feeds import supervise_feeds
from consumers.market_data.store import PostgresFeeds
from consumers.runtime import Service
from consumers.runtime.projection import Projection
from infrastructure.catalogue import MARKET_DATA_TOPICS
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended, ExchangeUpdated
from schemas.market_data import MARKET_DATA

INSTRUMENTS = Projection(
    name="instruments",
    topics=MARKET_DATA_TOPICS,
    events=MARKET_DATA,
    fold=instruments.fold,
    load=store.load_instruments,
    save=store.save_instruments,
)

SERVICE = Service(
    name="market_data",
    handlers={
        ExchangeAdded: handlers.exchange_added,
        ExchangeUpdated: handlers.exchange_updated,
        ExchangeSuspended: handlers.exchange_suspended,
        ExchangeRemoved: handlers.exchange_removed,
    },
    store=PostgresFeeds,
    migrations=Path(__file__).parent / "sql",
    background=(supervise_feeds, INSTRUMENTS),
    description="Zenith market data: a feed per exchange from its plugin, and the latest state per instrument.",
)
