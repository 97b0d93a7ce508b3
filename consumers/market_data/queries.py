"""The market-data service's read API, for the CLI and the HTTP API: instruments' state and feeds.

Each function takes a connection or a pool whose ``search_path`` is the service's schema, or any
connection or pool and ``schema=``, or a database URL and ``schema=`` (a connection is opened and
closed for the call). The schema name carries the deployment's prefix
(``settings.db_schema("market_data")``), which only the caller knows. Prices are
:class:`~decimal.Decimal`, never a float.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg

from consumers.market_data import store
from consumers.market_data.instruments import InstrumentState
from consumers.market_data.store import Feed, FeedState
from consumers.runtime.unit_of_work import DbConnection

Queryable: TypeAlias = DbConnection | asyncpg.Pool

_SCHEMA_NAME = re.compile(r"^[a-z0-9_]+$")

__all__ = ["Feed", "InstrumentState", "feeds", "instrument_state", "instruments"]


async def instrument_state(
    db: Queryable | str, instrument: str, *, schema: str | None = None
) -> InstrumentState | None:
    """The latest state of ``instrument`` (``CODE.MARKET``); None before its first market data."""
    async with _connected(db, schema) as (connection, prefix):
        row = await connection.fetchrow(f"select * from {prefix}instruments where instrument = $1", instrument)
    return None if row is None else store.instrument_state(row)


async def instruments(db: Queryable | str, exchange: str, *, schema: str | None = None) -> list[InstrumentState]:
    """Every instrument of ``exchange`` that has had market data, by code."""
    async with _connected(db, schema) as (connection, prefix):
        rows = await connection.fetch(
            f"select * from {prefix}instruments where exchange = $1 order by instrument", exchange
        )
    return [store.instrument_state(row) for row in rows]


async def feeds(db: Queryable | str, state: FeedState | None = None, *, schema: str | None = None) -> list[Feed]:
    """Every exchange's feed (or only those running, or stopped), by exchange code."""
    async with _connected(db, schema) as (connection, prefix):
        rows = await connection.fetch(
            f"select {store.FEED_COLUMNS} from {prefix}feeds where $1::text is null or state = $1 order by exchange",
            state,
        )
    return [store.feed_from_row(row) for row in rows]


@asynccontextmanager
async def _connected(db: Queryable | str, schema: str | None) -> AsyncIterator[tuple[Queryable, str]]:
    """The connection to use and the prefix its table names need (``"schema".``, or nothing)."""
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r} must be lower-case letters, digits and underscores")
    if not isinstance(db, str):
        yield db, f'"{schema}".' if schema else ""
        return
    if schema is None:
        raise ValueError("a database URL needs schema= (the service's schema, settings.db_schema('market_data'))")
    connection = await asyncpg.connect(db, server_settings={"search_path": schema})
    try:
        yield connection, ""
    finally:
        await connection.close()
