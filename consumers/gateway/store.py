"""The gateway's state: the exchanges it runs, each instrument's adapter state and each market's
close, with how far its trading days are ended.

Handlers and the closing timer reach it through ``unit.store`` (a :class:`GatewayStore`); the
service runs them on :class:`PostgresGateway`, over the batch's transaction (its schema is the
search path), and unit tests on an in-memory one (tests/support/memory_gateway.py)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from consumers.runtime import UnitOfWork
from consumers.runtime.trading_days import last_closed
from consumers.runtime.unit_of_work import DbConnection
from schemas.exchanges import ExchangeAdded, ExchangeUpdated, Market


class ExchangeState(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REMOVED = "removed"


@dataclass(frozen=True)
class Exchange:
    code: str
    adapter: str
    settles_through_registry: bool
    market_currencies: dict[str, str]
    state: ExchangeState
    state_reason: str | None

    def currency(self, instrument: str) -> str:
        """The currency of ``CODE.MARKET``: its market's (the OMS routes only listed instruments)."""
        return self.market_currencies[instrument.split(".", 1)[1]]


@dataclass(frozen=True)
class MarketClose:
    """A market of an active exchange, and how far the gateway has ended its trading days."""

    exchange: str
    market: str
    time_zone: str
    close: dt.time
    #: The latest trading date whose close the gateway has handled: its DAY orders are over.
    ended_through: dt.date


def market_currencies(markets: Sequence[Market]) -> str:
    return json.dumps({market.code: market.currency for market in markets}, sort_keys=True)


class GatewayStore(Protocol):
    async def put_exchange(self, event: ExchangeAdded, at: dt.datetime) -> None:
        """Register the exchange as active with its adapter; adding it again re-activates it."""

    async def update_exchange(self, event: ExchangeUpdated, at: dt.datetime) -> bool:
        """Change what the update carries; False for an exchange the gateway does not run."""

    async def stop_exchange(self, code: str, state: ExchangeState, reason: str, at: dt.datetime) -> None:
        """Stop taking instructions for the exchange (a removed one stays removed when suspended)."""

    async def exchange(self, code: str) -> Exchange | None:
        """The exchange of that code, or None."""

    async def adapter_state(self, instrument: str) -> dict[str, Any] | None:
        """The instrument's adapter state as last stored, or None."""

    async def save_adapter_state(self, instrument: str, exchange: str, state: Any, at: dt.datetime) -> None:
        """Store the instrument's new adapter state (and count the instruction)."""

    async def put_markets(self, exchange: str, markets: Sequence[Market], at: dt.datetime) -> None:
        """Keep the exchange's markets and their closes as the event lists them (a market it no
        longer lists is forgotten).

        What a user expects of a DAY order on a market new to the gateway: placed during the day the
        exchange is added, it expires at that day's close; placed after that close, the day's
        session being over, it is for the next trading day and expires at the next close, as any
        order placed after a close does. So a new market starts with its days ended through the last
        close before ``at`` (the event's time, not the clock: a replay sets the same). A market known
        already keeps how far its days are ended: adding its exchange again or moving its close
        never ends a day twice.
        """

    async def markets_of_active_exchanges(self) -> list[MarketClose]:
        """The markets of the exchanges that take orders, by exchange and market."""

    async def instruments_with_state(self, market: MarketClose) -> list[str]:
        """The market's instruments (``CODE.MARKET``) the adapter holds a state of, in code order."""

    async def end_day(self, market: MarketClose, trading_date: dt.date) -> None:
        """The market's trading days are ended through ``trading_date``."""


#: What the handlers are given.
GatewayUnit = UnitOfWork[GatewayStore]


class PostgresGateway(GatewayStore):
    def __init__(self, connection: DbConnection) -> None:
        self._db = connection

    async def put_exchange(self, event: ExchangeAdded, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into exchanges (code, adapter, settles_through_registry, market_currencies, state, changed_at)
            values ($1, $2, $3, $4::jsonb, 'active', $5)
            on conflict (code) do update set
                adapter = excluded.adapter, settles_through_registry = excluded.settles_through_registry,
                market_currencies = excluded.market_currencies, state = 'active', state_reason = null,
                changed_at = excluded.changed_at
            """,
            event.code,
            event.oms_adapter,
            event.settles_through_registry,
            market_currencies(event.markets),
            at,
        )

    async def update_exchange(self, event: ExchangeUpdated, at: dt.datetime) -> bool:
        changed = await self._db.execute(
            """
            update exchanges set adapter = coalesce($2, adapter),
                settles_through_registry = coalesce($3, settles_through_registry),
                market_currencies = coalesce($4::jsonb, market_currencies), changed_at = $5
            where code = $1
            """,
            event.code,
            event.oms_adapter,
            event.settles_through_registry,
            market_currencies(event.markets) if event.markets is not None else None,
            at,
        )
        return changed != "UPDATE 0"

    async def stop_exchange(self, code: str, state: ExchangeState, reason: str, at: dt.datetime) -> None:
        await self._db.execute(
            "update exchanges set state = $2, state_reason = $3, changed_at = $4"
            " where code = $1 and state <> 'removed'",
            code,
            str(state),
            reason,
            at,
        )

    async def exchange(self, code: str) -> Exchange | None:
        row = await self._db.fetchrow("select * from exchanges where code = $1", code)
        if row is None:
            return None
        return Exchange(
            code=row["code"],
            adapter=row["adapter"],
            settles_through_registry=row["settles_through_registry"],
            market_currencies=json.loads(row["market_currencies"]),
            state=ExchangeState(row["state"]),
            state_reason=row["state_reason"],
        )

    async def adapter_state(self, instrument: str) -> dict[str, Any] | None:
        raw = await self._db.fetchval("select state from adapter_states where instrument = $1", instrument)
        return None if raw is None else dict(json.loads(raw))

    async def save_adapter_state(self, instrument: str, exchange: str, state: Any, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into adapter_states (instrument, exchange, state, instructions, changed_at)
            values ($1, $2, $3::jsonb, 1, $4)
            on conflict (instrument) do update set
                state = excluded.state, instructions = adapter_states.instructions + 1, changed_at = excluded.changed_at
            """,
            instrument,
            exchange,
            json.dumps(state, sort_keys=True, separators=(",", ":")),
            at,
        )

    async def put_markets(self, exchange: str, markets: Sequence[Market], at: dt.datetime) -> None:
        for market in markets:
            # the market's wall-clock time: an offset given with it is its time zone's business
            close = market.trading_hours.close.replace(tzinfo=None)
            await self._db.execute(
                """
                insert into markets (exchange, market, time_zone, close, ended_through) values ($1, $2, $3, $4, $5)
                on conflict (exchange, market) do update set time_zone = excluded.time_zone, close = excluded.close
                """,
                exchange,
                market.code,
                market.time_zone,
                close,
                last_closed(at, market.time_zone, close),
            )
        await self._db.execute(
            "delete from markets where exchange = $1 and market <> all($2::text[])",
            exchange,
            [market.code for market in markets],
        )

    async def markets_of_active_exchanges(self) -> list[MarketClose]:
        rows = await self._db.fetch(
            """
            select m.exchange, m.market, m.time_zone, m.close, m.ended_through
            from markets m join exchanges e on e.code = m.exchange
            where e.state = 'active'
            order by m.exchange, m.market
            """
        )
        return [MarketClose(**dict(row)) for row in rows]

    async def instruments_with_state(self, market: MarketClose) -> list[str]:
        rows = await self._db.fetch(
            "select instrument from adapter_states where exchange = $1 and split_part(instrument, '.', 2) = $2"
            " order by instrument",
            market.exchange,
            market.market,
        )
        return [row["instrument"] for row in rows]

    async def end_day(self, market: MarketClose, trading_date: dt.date) -> None:
        await self._db.execute(
            "update markets set ended_through = $3 where exchange = $1 and market = $2",
            market.exchange,
            market.market,
            trading_date,
        )
