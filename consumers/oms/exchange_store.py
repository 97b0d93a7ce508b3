"""The OMS's view of exchanges (their instruments, the gateway's adapters, last prices): one
concern of its store (``consumers.oms.store``), the protocol the handlers see and its SQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from consumers.oms.vetting import Exchange, ExchangeState, Instrument
from consumers.runtime.unit_of_work import DbConnection
from schemas.exchanges import ExchangeAdded, ExchangeUpdated, Market
from schemas.gateway import InstrumentPrice, OmsAdapterRegistered, OmsAdapterStopped


class ExchangeRecords(Protocol):
    async def add_exchange(self, event: ExchangeAdded, at: dt.datetime) -> None:
        """List the exchange and its instruments; an exchange added again (after removal) is listed anew."""

    async def update_exchange(self, event: ExchangeUpdated, at: dt.datetime) -> bool:
        """Change the fields the event carries (its markets: the instruments become exactly
        theirs); False for an exchange the OMS does not have."""

    async def set_exchange_state(
        self, code: str, state: ExchangeState, reason: str | None, at: dt.datetime
    ) -> ExchangeState | None:
        """Set the exchange's state and why, and return the state it is left in; None for an
        exchange the OMS does not have. A removed exchange stays removed (only a new ExchangeAdded
        lists it again): a suspension leaves it as it is and returns REMOVED; a removal again
        takes the new reason."""

    async def markets_of_others(self, code: str, markets: Sequence[str]) -> dict[str, str]:
        """Of the market codes ``markets``, those another exchange lists, with that exchange's code."""

    async def add_instrument(self, exchange: str, instrument: str, market: str, currency: str) -> bool:
        """List one instrument of the exchange (a ``SymbolCreated``), again with the latest currency
        if it is listed already; False for an exchange the OMS does not have."""

    async def register_adapter(self, event: OmsAdapterRegistered, at: dt.datetime) -> None:
        """The adapter runs (the exchange takes orders), and its reference prices become last
        prices where none is known yet: a fill's price is newer. Kept apart from the exchange:
        the gateway's topic is not ordered against ``xosp.exchanges``."""

    async def stop_adapter(self, event: OmsAdapterStopped, at: dt.datetime) -> None:
        """The adapter no longer runs, and why (the exchange takes no orders)."""

    async def add_fill_price(self, instrument: str, price: Decimal, venue_trade_id: str, at: dt.datetime) -> None:
        """Keep the fill's price; the instrument's last price is its latest (latest time, then
        greatest venue trade id), whatever the order fills of different accounts were applied in."""

    async def listing(self, instrument: str) -> tuple[Instrument, Exchange] | None:
        """The instrument and its exchange, as vetting needs them; None if no exchange lists it."""


class PostgresExchangeRecords(ExchangeRecords):
    """Over the batch's connection (``consumers.oms.store.PostgresBooks`` gives it)."""

    _db: DbConnection

    async def add_exchange(self, event: ExchangeAdded, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into exchanges (code, name, adapter, settles_through_registry, state, changed_at)
            values ($1, $2, $3, $4, 'listed', $5)
            on conflict (code) do update set
                name = excluded.name, adapter = excluded.adapter,
                settles_through_registry = excluded.settles_through_registry,
                state = 'listed', state_reason = null, changed_at = excluded.changed_at
            """,
            event.code,
            event.name,
            event.oms_adapter,
            event.settles_through_registry,
            at,
        )
        await self._replace_instruments(event.code, event.markets)

    async def update_exchange(self, event: ExchangeUpdated, at: dt.datetime) -> bool:
        changed = await self._db.execute(
            """
            update exchanges set
                name = coalesce($2, name),
                adapter = coalesce($3, adapter),
                settles_through_registry = coalesce($4, settles_through_registry),
                changed_at = $5
            where code = $1
            """,
            event.code,
            event.name,
            event.oms_adapter,
            event.settles_through_registry,
            at,
        )
        if changed == "UPDATE 0":
            return False
        if event.markets is not None:
            await self._replace_instruments(event.code, event.markets)
        return True

    async def set_exchange_state(
        self, code: str, state: ExchangeState, reason: str | None, at: dt.datetime
    ) -> ExchangeState | None:
        left = await self._db.fetchval(
            """
            with changed as (
                update exchanges set state = $2, state_reason = $3, changed_at = $4
                where code = $1 and (state <> 'removed' or $2 = 'removed')
                returning state
            )
            select state from changed
            union all
            select state from exchanges where code = $1 and not exists (select from changed)
            """,
            code,
            str(state),
            reason,
            at,
        )
        return None if left is None else ExchangeState(left)

    async def markets_of_others(self, code: str, markets: Sequence[str]) -> dict[str, str]:
        rows = await self._db.fetch(
            "select distinct market, exchange from instruments where market = any($1::text[]) and exchange <> $2",
            list(markets),
            code,
        )
        return {row["market"]: row["exchange"] for row in rows}

    async def add_instrument(self, exchange: str, instrument: str, market: str, currency: str) -> bool:
        added = await self._db.execute(
            """
            insert into instruments (instrument, exchange, market, currency)
            select $1, code, $3, $4 from exchanges where code = $2
            on conflict (instrument) do update set currency = excluded.currency
            """,
            instrument,
            exchange,
            market,
            currency,
        )
        return added != "INSERT 0 0"

    async def _replace_instruments(self, code: str, markets: Sequence[Market]) -> None:
        """The exchange's instruments become exactly those of ``markets``."""
        listed = [
            (f"{symbol.code}.{market.code}", market.code, market.currency)
            for market in markets
            for symbol in market.symbols
        ]
        await self._db.execute("delete from instruments where exchange = $1", code)
        await self._db.execute(
            """
            insert into instruments (instrument, exchange, market, currency)
            select instrument, $1, market, currency
            from unnest($2::text[], $3::text[], $4::text[]) as listed (instrument, market, currency)
            """,
            code,
            [instrument for instrument, _, _ in listed],
            [market for _, market, _ in listed],
            [currency for _, _, currency in listed],
        )

    async def register_adapter(self, event: OmsAdapterRegistered, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into adapters (exchange, adapter, running, changed_at) values ($1, $2, true, $3)
            on conflict (exchange) do update set
                adapter = excluded.adapter, running = true, stopped_reason = null, changed_at = excluded.changed_at
            """,
            event.exchange,
            event.adapter,
            at,
        )
        await self._set_reference_prices(event.reference_prices, at)

    async def stop_adapter(self, event: OmsAdapterStopped, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into adapters (exchange, adapter, running, stopped_reason, changed_at)
            values ($1, $2, false, $3, $4)
            on conflict (exchange) do update set
                adapter = excluded.adapter, running = false, stopped_reason = excluded.stopped_reason,
                changed_at = excluded.changed_at
            """,
            event.exchange,
            event.adapter,
            event.reason,
            at,
        )

    async def _set_reference_prices(self, prices: Sequence[InstrumentPrice], at: dt.datetime) -> None:
        """Reference prices become last prices only where none is known yet: a fill's price is newer."""
        await self._db.execute(
            """
            insert into last_prices (instrument, price, source, changed_at)
            select instrument, price, 'reference', $3 from unnest($1::text[], $2::numeric[]) as p(instrument, price)
            on conflict (instrument) do nothing
            """,
            [price.instrument for price in prices],
            [price.price for price in prices],
            at,
        )

    async def add_fill_price(self, instrument: str, price: Decimal, venue_trade_id: str, at: dt.datetime) -> None:
        """An insert, not an update of one row per instrument: fills of every partition add rows
        side by side instead of queueing on the same row."""
        await self._db.execute(
            """
            insert into fill_prices (instrument, changed_at, venue_trade_id, price) values ($1, $2, $3, $4)
            on conflict do nothing
            """,
            instrument,
            at,
            venue_trade_id,
            price,
        )

    async def listing(self, instrument: str) -> tuple[Instrument, Exchange] | None:
        row = await self._db.fetchrow(
            """
            select i.instrument, i.exchange, i.currency,
                   coalesce(
                       (select f.price from fill_prices f where f.instrument = i.instrument
                        order by f.changed_at desc, f.venue_trade_id desc limit 1),
                       p.price
                   ) as last_price,
                   e.state, e.state_reason, e.adapter, e.settles_through_registry,
                   coalesce(a.running, false) as adapter_running, a.stopped_reason
            from instruments i
            join exchanges e on e.code = i.exchange
            left join adapters a on a.exchange = i.exchange
            left join last_prices p on p.instrument = i.instrument
            where i.instrument = $1
            """,
            instrument,
        )
        if row is None:
            return None
        return (
            Instrument(
                code=row["instrument"],
                exchange=row["exchange"],
                currency=row["currency"],
                last_price=row["last_price"],
            ),
            Exchange(
                code=row["exchange"],
                state=ExchangeState(row["state"]),
                state_reason=row["state_reason"],
                adapter=row["adapter"],
                settles_through_registry=row["settles_through_registry"],
                adapter_running=row["adapter_running"],
                adapter_stopped_reason=row["stopped_reason"],
            ),
        )
