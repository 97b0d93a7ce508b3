"""An in-memory store with the protocol of the market data service's PostgreSQL store, for unit tests
of its rules on a FakeUnitOfWork. It keeps exactly what the rules read back; the SQL and its
constraints are proven by the real-stack tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from consumers.market_data.store import Feed, Feeds, instrument_count
from schemas.exchanges import ExchangeAdded


@dataclass
class MemoryFeeds(Feeds):
    feeds: dict[str, Feed] = field(default_factory=dict)

    async def feed(self, exchange: str) -> Feed | None:
        return self.feeds.get(exchange)

    async def put_feed(self, definition: ExchangeAdded, *, reason: str | None, flow_id: str, at: dt.datetime) -> None:
        known = self.feeds.get(definition.code)
        self.feeds[definition.code] = Feed(
            exchange=definition.code,
            plugin=definition.market_data_plugin,
            definition=definition,
            instruments=instrument_count(definition),
            state="running" if reason is None else "stopped",
            reason=reason,
            flow_id=flow_id,
            revision=1 if known is None else known.revision + 1,
            changed_at=at,
        )

    async def stop_feed(self, exchange: str, *, reason: str, flow_id: str, at: dt.datetime) -> None:
        known = self.feeds.get(exchange)
        if known is not None:
            self.feeds[exchange] = dataclasses.replace(
                known, state="stopped", reason=reason, flow_id=flow_id, changed_at=at
            )

    async def keep_definition(self, definition: ExchangeAdded, *, flow_id: str, at: dt.datetime) -> None:
        known = self.feeds.get(definition.code)
        if known is not None:
            self.feeds[definition.code] = dataclasses.replace(
                known,
                plugin=definition.market_data_plugin,
                definition=definition,
                instruments=instrument_count(definition),
                flow_id=flow_id,
                changed_at=at,
            )
