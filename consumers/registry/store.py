"""The registry's SQL, kept out of the handlers so that they read as the rules of the domain.

Every function runs in the handler's unit of work (the batch's transaction, ``search_path`` set
to the registry's schema), so none of them names a schema or commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from consumers.runtime import UnitOfWork
from schemas.accounts import Investor
from schemas.oms import AccountState


@dataclass(frozen=True)
class StoredAccount:
    account_id: str
    investor_id: str
    state: AccountState
    opening_flow_id: str


@dataclass(frozen=True)
class FailedOpening:
    flow_id: str
    service: str
    step: str
    reason: str


async def lock_account(unit: UnitOfWork, account_id: str) -> None:
    """Serialise everything done to one account until the transaction ends.

    Events of ``xosp.accounts`` for one account arrive in order on one partition, but a
    ``ProvisioningFailed`` about it comes on another topic and may be applied at the same time by
    another partition's worker: without this lock a compensation could check for cash while a
    deposit lands, or miss an opening committed a moment later.
    """
    await unit.lock(f"account:{account_id}")


# Operators


async def register_operator(
    unit: UnitOfWork, operator_id: str, login_id: str, features: list[str], flow_id: str, at: dt.datetime
) -> None:
    """Insert or replace: a registration again (after a deregistration too) is the one in force."""
    await unit.execute(
        """
        insert into operators (operator_id, login_id, features, status, registered_flow_id, registered_at)
        values ($1, $2, $3, 'registered', $4, $5)
        on conflict (operator_id) do update set
            login_id = excluded.login_id, features = excluded.features, status = 'registered',
            registered_flow_id = excluded.registered_flow_id, registered_at = excluded.registered_at,
            deregistered_at = null, deregistration_reason = null
        """,
        operator_id,
        login_id,
        features,
        flow_id,
        at,
    )


async def deregister_operator(unit: UnitOfWork, operator_id: str, reason: str | None, at: dt.datetime) -> bool:
    """Mark the operator deregistered; False when the registry does not know it."""
    status = await unit.execute(
        """
        update operators set status = 'deregistered', deregistered_at = $2, deregistration_reason = $3
        where operator_id = $1
        """,
        operator_id,
        at,
        reason,
    )
    return status != "UPDATE 0"


# Investors and accounts


async def find_investor(unit: UnitOfWork, investor_id: str) -> Investor | None:
    row = await unit.fetchrow(
        "select investor_id, full_name, country, type, pii_hash from investors where investor_id = $1", investor_id
    )
    return Investor.model_validate(dict(row)) if row is not None else None


async def insert_investor(unit: UnitOfWork, investor: Investor, at: dt.datetime) -> None:
    """Insert when new; an existing investor is left as it is (the caller compares it first)."""
    await unit.execute(
        """
        insert into investors (investor_id, full_name, country, type, pii_hash, recorded_at)
        values ($1, $2, $3, $4, $5, $6)
        on conflict (investor_id) do nothing
        """,
        investor.investor_id,
        investor.full_name,
        investor.country,
        investor.type.value,
        investor.pii_hash,
        at,
    )


async def fill_pii_hash(unit: UnitOfWork, investor_id: str, pii_hash: str) -> None:
    """An investor first recorded without a PII hash takes the one a later opening gives."""
    await unit.execute(
        "update investors set pii_hash = $2 where investor_id = $1 and pii_hash is null", investor_id, pii_hash
    )


async def find_account(unit: UnitOfWork, account_id: str) -> StoredAccount | None:
    row = await unit.fetchrow(
        "select account_id, investor_id, state, opening_flow_id from accounts where account_id = $1", account_id
    )
    return _account(row) if row is not None else None


async def account_opened_by(unit: UnitOfWork, flow_id: str) -> StoredAccount | None:
    row = await unit.fetchrow(
        "select account_id, investor_id, state, opening_flow_id from accounts where opening_flow_id = $1", flow_id
    )
    return _account(row) if row is not None else None


async def insert_account(
    unit: UnitOfWork,
    *,
    account_id: str,
    investor_id: str,
    owner: str,
    name: str,
    currency: str,
    flow_id: str,
    at: dt.datetime,
) -> None:
    """The account, active, with zero settled cash in its default currency and no holdings."""
    await unit.execute(
        """
        insert into accounts (account_id, investor_id, owner, name, default_currency, state, opening_flow_id,
                              opened_at, state_changed_at)
        values ($1, $2, $3, $4, $5, 'active', $6, $7, $7)
        """,
        account_id,
        investor_id,
        owner,
        name,
        currency,
        flow_id,
        at,
    )
    await unit.execute("insert into cash (account_id, currency, settled) values ($1, $2, 0)", account_id, currency)


async def set_state(
    unit: UnitOfWork, account_id: str, state: AccountState, reason: str | None, at: dt.datetime
) -> None:
    await unit.execute(
        "update accounts set state = $2, state_reason = $3, state_changed_at = $4 where account_id = $1",
        account_id,
        state.value,
        reason,
        at,
    )


# Cash and holdings


async def settled_cash(unit: UnitOfWork, account_id: str, currency: str) -> Decimal:
    """Settled cash in ``currency``; zero for a currency the account has never held."""
    value = await unit.fetchval(
        "select settled from cash where account_id = $1 and currency = $2", account_id, currency
    )
    return value if value is not None else Decimal(0)


async def book_cash_movement(
    unit: UnitOfWork,
    *,
    account_id: str,
    currency: str,
    delta: Decimal,
    balance: Decimal,
    reference: str,
    flow_id: str,
    at: dt.datetime,
) -> None:
    """Set the new balance and write the movement to the ledger, together."""
    await _set_cash(unit, account_id, currency, balance)
    await unit.execute(
        """
        insert into cash_movements (flow_id, account_id, currency, delta, balance_after, reference, applied_at)
        values ($1, $2, $3, $4, $5, $6, $7)
        """,
        flow_id,
        account_id,
        currency,
        delta,
        balance,
        reference,
        at,
    )


async def _set_cash(unit: UnitOfWork, account_id: str, currency: str, balance: Decimal) -> None:
    await unit.execute(
        """
        insert into cash (account_id, currency, settled) values ($1, $2, $3)
        on conflict (account_id, currency) do update set settled = excluded.settled
        """,
        account_id,
        currency,
        balance,
    )


async def nonzero_cash(unit: UnitOfWork, account_id: str) -> dict[str, Decimal]:
    rows = await unit.fetch(
        "select currency, settled from cash where account_id = $1 and settled <> 0 order by currency", account_id
    )
    return {row["currency"]: row["settled"] for row in rows}


async def nonzero_holdings(unit: UnitOfWork, account_id: str) -> dict[str, int]:
    rows = await unit.fetch(
        "select instrument, quantity from holdings where account_id = $1 and quantity <> 0 order by instrument",
        account_id,
    )
    return {row["instrument"]: row["quantity"] for row in rows}


# Failed openings that arrived before the opening


async def remember_failed_opening(
    unit: UnitOfWork, flow_id: str, account_id: str, service: str, step: str, reason: str, at: dt.datetime
) -> None:
    await unit.execute(
        """
        insert into failed_openings (flow_id, account_id, service, step, reason, failed_at)
        values ($1, $2, $3, $4, $5, $6) on conflict (flow_id) do nothing
        """,
        flow_id,
        account_id,
        service,
        step,
        reason,
        at,
    )


async def take_failed_opening(unit: UnitOfWork, flow_id: str) -> FailedOpening | None:
    """The failure already reported for this opening flow, if any, removed as it is acted on."""
    row = await unit.fetchrow(
        "delete from failed_openings where flow_id = $1 returning flow_id, service, step, reason", flow_id
    )
    return FailedOpening(row["flow_id"], row["service"], row["step"], row["reason"]) if row is not None else None


def _account(row: asyncpg.Record) -> StoredAccount:
    return StoredAccount(
        account_id=row["account_id"],
        investor_id=row["investor_id"],
        state=AccountState(row["state"]),
        opening_flow_id=row["opening_flow_id"],
    )


# Exchanges and settlement


async def put_exchange(unit: UnitOfWork, code: str, settles: bool, flow_id: str, at: dt.datetime) -> None:
    """Whether the registry settles the exchange's fills, as the latest ExchangeAdded or ExchangeUpdated says."""
    await unit.execute(
        """
        insert into exchanges (code, settles_through_registry, flow_id, changed_at) values ($1, $2, $3, $4)
        on conflict (code) do update set
            settles_through_registry = excluded.settles_through_registry, flow_id = excluded.flow_id,
            changed_at = excluded.changed_at
        """,
        code,
        settles,
        flow_id,
        at,
    )


async def exchange_settles(unit: UnitOfWork, code: str) -> bool | None:
    """Whether the registry settles the exchange; None for an exchange it has not been told of."""
    value = await unit.fetchval("select settles_through_registry from exchanges where code = $1", code)
    return None if value is None else bool(value)


async def holding(unit: UnitOfWork, account_id: str, instrument: str) -> int:
    """Quantity held; zero for an instrument the account has never held."""
    value = await unit.fetchval(
        "select quantity from holdings where account_id = $1 and instrument = $2", account_id, instrument
    )
    return int(value) if value is not None else 0


async def settled_already(unit: UnitOfWork, exchange: str, venue_trade_id: str, order_id: str) -> bool:
    return bool(
        await unit.fetchval(
            "select 1 from settlements where exchange = $1 and venue_trade_id = $2 and order_id = $3",
            exchange,
            venue_trade_id,
            order_id,
        )
    )


@dataclass(frozen=True)
class SettlementRow:
    exchange: str
    venue_trade_id: str
    order_id: str
    account_id: str
    instrument: str
    side: str
    quantity: int
    price: Decimal
    currency: str
    cash_delta: Decimal
    cash_after: Decimal
    holding_delta: int
    holding_after: int


async def book_settlement(unit: UnitOfWork, row: SettlementRow, event_id: str, at: dt.datetime) -> None:
    """Set the new cash balance and holding and write the fill to the settlement ledger, together."""
    await _set_cash(unit, row.account_id, row.currency, row.cash_after)
    await unit.execute(
        """
        insert into holdings (account_id, instrument, quantity) values ($1, $2, $3)
        on conflict (account_id, instrument) do update set quantity = excluded.quantity
        """,
        row.account_id,
        row.instrument,
        row.holding_after,
    )
    await unit.execute(
        """
        insert into settlements (exchange, venue_trade_id, order_id, event_id, account_id, instrument, side,
                                 quantity, price, currency, cash_delta, cash_after, holding_delta, holding_after,
                                 settled_at)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        """,
        row.exchange,
        row.venue_trade_id,
        row.order_id,
        event_id,
        row.account_id,
        row.instrument,
        row.side,
        row.quantity,
        row.price,
        row.currency,
        row.cash_delta,
        row.cash_after,
        row.holding_delta,
        row.holding_after,
        at,
    )
