"""The market-data service's SQL: the feeds table (handlers write it, the feed supervisor reads it)
and the instruments table (the projection loads and saves it, one statement per batch each).

Handlers reach the feeds through ``unit.store`` (a :class:`Feeds`): :class:`PostgresFeeds` in
the service, an in-memory one in unit tests (tests/support/memory_market_data.py).

Every function runs on the service's schema (``search_path``), so none names it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Literal, Protocol

import asyncpg

from consumers.market_data.instruments import InstrumentState
from consumers.runtime import UnitOfWork
from consumers.runtime.unit_of_work import DbConnection
from schemas.exchanges import ExchangeAdded
from schemas.market_data import TradingStatus

FeedState = Literal["running", "stopped"]


@dataclass(frozen=True)
class Feed:
    exchange: str
    plugin: str
    #: What the plugin's ``feed`` is given: the ExchangeAdded with every ExchangeUpdated applied.
    definition: ExchangeAdded
    instruments: int
    state: FeedState
    reason: str | None
    flow_id: str
    revision: int
    changed_at: dt.datetime


def instrument_count(exchange: ExchangeAdded) -> int:
    """Instruments (``SYMBOL.MARKET``) the exchange lists."""
    return sum(len(market.symbols) for market in exchange.markets)


FEED_COLUMNS = (
    "exchange, plugin, definition::text as definition, instruments, state, reason, flow_id, revision, changed_at"
)


class Feeds(Protocol):
    async def feed(self, exchange: str) -> Feed | None:
        """The exchange's feed, or None when it was never added here."""

    async def put_feed(self, definition: ExchangeAdded, *, reason: str | None, flow_id: str, at: dt.datetime) -> None:
        """Insert or replace the exchange's feed: running with ``definition`` (a new revision), or
        stopped with ``reason``."""

    async def stop_feed(self, exchange: str, *, reason: str, flow_id: str, at: dt.datetime) -> None:
        """The feed stops, with the reason."""

    async def keep_definition(self, definition: ExchangeAdded, *, flow_id: str, at: dt.datetime) -> None:
        """Store a new definition for the feed's next start, without restarting it (same revision)."""


#: What the handlers are given.
FeedsUnit = UnitOfWork[Feeds]


class PostgresFeeds(Feeds):
    def __init__(self, connection: DbConnection) -> None:
        self._db = connection

    async def feed(self, exchange: str) -> Feed | None:
        row = await self._db.fetchrow(f"select {FEED_COLUMNS} from feeds where exchange = $1", exchange)
        return None if row is None else feed_from_row(row)

    async def put_feed(self, definition: ExchangeAdded, *, reason: str | None, flow_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into feeds (exchange, plugin, definition, instruments, state, reason, flow_id, revision, changed_at)
            values ($1, $2, $3::jsonb, $4, $5, $6, $7, 1, $8)
            on conflict (exchange) do update set
                plugin = excluded.plugin, definition = excluded.definition, instruments = excluded.instruments,
                state = excluded.state, reason = excluded.reason, flow_id = excluded.flow_id,
                revision = feeds.revision + 1, changed_at = excluded.changed_at
            """,
            definition.code,
            definition.market_data_plugin,
            definition.model_dump_json(),
            instrument_count(definition),
            "running" if reason is None else "stopped",
            reason,
            flow_id,
            at,
        )

    async def stop_feed(self, exchange: str, *, reason: str, flow_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            "update feeds set state = 'stopped', reason = $2, flow_id = $3, changed_at = $4 where exchange = $1",
            exchange,
            reason,
            flow_id,
            at,
        )

    async def keep_definition(self, definition: ExchangeAdded, *, flow_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            """
            update feeds set plugin = $2, definition = $3::jsonb, instruments = $4, flow_id = $5, changed_at = $6
            where exchange = $1
            """,
            definition.code,
            definition.market_data_plugin,
            definition.model_dump_json(),
            instrument_count(definition),
            flow_id,
            at,
        )


def feed_from_row(row: asyncpg.Record) -> Feed:
    return Feed(
        exchange=row["exchange"],
        plugin=row["plugin"],
        definition=ExchangeAdded.model_validate_json(row["definition"]),
        instruments=row["instruments"],
        state=row["state"],
        reason=row["reason"],
        flow_id=row["flow_id"],
        revision=row["revision"],
        changed_at=row["changed_at"],
    )


# Instruments: what the projection loads and saves

_INSTRUMENT_COLUMNS = tuple(field.name for field in fields(InstrumentState))
_INSTRUMENT_TYPES = {
    "instrument": "text",
    "exchange": "text",
    "last_seq": "bigint",
    "updated_at": "timestamptz",
    "gaps": "bigint",
    "status": "text",
    "last_price": "numeric",
    "last_quantity": "bigint",
    "last_trade_at": "timestamptz",
    "bid_price": "numeric",
    "bid_quantity": "bigint",
    "ask_price": "numeric",
    "ask_quantity": "bigint",
    "quoted_at": "timestamptz",
    "trading_date": "date",
    "open": "numeric",
    "high": "numeric",
    "low": "numeric",
    "close": "numeric",
    "volume": "bigint",
}
assert set(_INSTRUMENT_TYPES) == set(_INSTRUMENT_COLUMNS), "every field of InstrumentState is a column"

# One statement for a whole batch: each column travels as one array.
_SAVE_INSTRUMENTS = f"""
insert into instruments ({", ".join(_INSTRUMENT_COLUMNS)})
select * from unnest({", ".join(f"${i}::{_INSTRUMENT_TYPES[c]}[]" for i, c in enumerate(_INSTRUMENT_COLUMNS, 1))})
on conflict (instrument) do update set
    {", ".join(f"{c} = excluded.{c}" for c in _INSTRUMENT_COLUMNS if c != "instrument")}
"""
_LOAD_INSTRUMENTS = f"select {', '.join(_INSTRUMENT_COLUMNS)} from instruments where instrument = any($1::text[])"


async def load_instruments(connection: DbConnection, instruments: Sequence[str]) -> dict[str, InstrumentState]:
    rows = await connection.fetch(_LOAD_INSTRUMENTS, list(instruments))
    return {row["instrument"]: instrument_state(row) for row in rows}


async def save_instruments(connection: DbConnection, states: Mapping[str, InstrumentState]) -> None:
    columns: list[list[object]] = [[] for _ in _INSTRUMENT_COLUMNS]
    for state in states.values():
        for column, name in zip(columns, _INSTRUMENT_COLUMNS, strict=True):
            column.append(getattr(state, name))
    await connection.execute(_SAVE_INSTRUMENTS, *columns)


def instrument_state(row: asyncpg.Record) -> InstrumentState:
    values = {name: row[name] for name in _INSTRUMENT_COLUMNS}
    if values["status"] is not None:
        values["status"] = TradingStatus(values["status"])
    return InstrumentState(**values)
