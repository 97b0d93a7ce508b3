"""The SQL of the gateway, run in the handler's unit of work (its schema is the search path)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from consumers.runtime import UnitOfWork
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


def market_currencies(markets: Sequence[Market]) -> str:
    return json.dumps({market.code: market.currency for market in markets}, sort_keys=True)


async def put_exchange(unit: UnitOfWork, event: ExchangeAdded) -> None:
    """Register the exchange as active with its adapter; adding it again re-activates it."""
    await unit.execute(
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
        unit.cause.time,
    )


async def update_exchange(unit: UnitOfWork, event: ExchangeUpdated) -> bool:
    """Change what the update carries; False for an exchange the gateway does not run."""
    changed = await unit.execute(
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
        unit.cause.time,
    )
    return changed != "UPDATE 0"


async def stop_exchange(unit: UnitOfWork, code: str, state: ExchangeState, reason: str, at: dt.datetime) -> None:
    """Stop taking instructions for the exchange (a removed one stays removed when suspended)."""
    await unit.execute(
        "update exchanges set state = $2, state_reason = $3, changed_at = $4 where code = $1 and state <> 'removed'",
        code,
        str(state),
        reason,
        at,
    )


async def exchange(unit: UnitOfWork, code: str) -> Exchange | None:
    row = await unit.fetchrow("select * from exchanges where code = $1", code)
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


async def adapter_state(unit: UnitOfWork, instrument: str) -> dict[str, Any] | None:
    raw = await unit.fetchval("select state from adapter_states where instrument = $1", instrument)
    return None if raw is None else dict(json.loads(raw))


async def save_adapter_state(unit: UnitOfWork, instrument: str, exchange: str, state: Any, at: dt.datetime) -> None:
    await unit.execute(
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
