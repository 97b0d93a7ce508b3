"""An in-memory store with the protocol of the gateway service's PostgreSQL store, for unit tests
of its rules on a FakeUnitOfWork. It keeps exactly what the rules read back; the SQL and its
constraints are proven by the real-stack tests."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.gateway.store import Exchange, ExchangeState, GatewayStore, MarketClose
from consumers.runtime.trading_days import last_closed
from schemas.exchanges import ExchangeAdded, ExchangeUpdated, Market


@dataclass
class MemoryGateway(GatewayStore):
    exchanges: dict[str, Exchange] = field(default_factory=dict)
    #: Each instrument's adapter state as stored (JSON, as the table keeps it) and its exchange.
    adapter_states: dict[str, tuple[str, str]] = field(default_factory=dict)
    markets: dict[tuple[str, str], MarketClose] = field(default_factory=dict)

    async def put_exchange(self, event: ExchangeAdded, at: dt.datetime) -> None:
        currencies = {market.code: market.currency for market in event.markets}
        self.exchanges[event.code] = Exchange(
            event.code, event.oms_adapter, event.settles_through_registry, currencies, ExchangeState.ACTIVE, None
        )

    async def update_exchange(self, event: ExchangeUpdated, at: dt.datetime) -> bool:
        known = self.exchanges.get(event.code)
        if known is None:
            return False
        currencies = {m.code: m.currency for m in event.markets} if event.markets is not None else None
        self.exchanges[event.code] = Exchange(
            known.code,
            event.oms_adapter or known.adapter,
            known.settles_through_registry
            if event.settles_through_registry is None
            else event.settles_through_registry,
            known.market_currencies if currencies is None else currencies,
            known.state,
            known.state_reason,
        )
        return True

    async def stop_exchange(self, code: str, state: ExchangeState, reason: str, at: dt.datetime) -> None:
        known = self.exchanges.get(code)
        if known is not None and known.state is not ExchangeState.REMOVED:
            self.exchanges[code] = Exchange(
                code, known.adapter, known.settles_through_registry, known.market_currencies, state, reason
            )

    async def exchange(self, code: str) -> Exchange | None:
        return self.exchanges.get(code)

    async def adapter_state(self, instrument: str) -> dict[str, Any] | None:
        stored = self.adapter_states.get(instrument)
        return None if stored is None else dict(json.loads(stored[1]))

    async def save_adapter_state(self, instrument: str, exchange: str, state: Any, at: dt.datetime) -> None:
        self.adapter_states[instrument] = (exchange, json.dumps(state, sort_keys=True, separators=(",", ":")))

    async def put_markets(self, exchange: str, markets: Sequence[Market], at: dt.datetime) -> None:
        for market in markets:
            close = market.trading_hours.close.replace(tzinfo=None)
            known = self.markets.get((exchange, market.code))
            ended = known.ended_through if known is not None else last_closed(at, market.time_zone, close)
            self.markets[(exchange, market.code)] = MarketClose(exchange, market.code, market.time_zone, close, ended)
        listed = {market.code for market in markets}
        for key in [key for key in self.markets if key[0] == exchange and key[1] not in listed]:
            del self.markets[key]

    async def markets_of_active_exchanges(self) -> list[MarketClose]:
        return [
            market
            for key, market in sorted(self.markets.items())
            if self.exchanges[key[0]].state is ExchangeState.ACTIVE
        ]

    async def instruments_with_state(self, market: MarketClose) -> list[str]:
        return sorted(
            instrument
            for instrument, (exchange, _) in self.adapter_states.items()
            if exchange == market.exchange and instrument.split(".", 1)[1] == market.market
        )

    async def end_day(self, market: MarketClose, trading_date: dt.date) -> None:
        key = (market.exchange, market.market)
        known = self.markets[key]
        self.markets[key] = MarketClose(known.exchange, known.market, known.time_zone, known.close, trading_date)
