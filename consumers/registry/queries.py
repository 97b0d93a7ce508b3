"""The registry's read API, for the CLI and (later) the HTTP API.

Every function takes a connection whose ``search_path`` is the registry's schema, as
``consumers.runtime.dead_letters.schema_connection(database_url, settings.db_schema("registry"))``
gives one (the schema name carries the deployment's prefix, which only the caller knows). The
results are plain frozen values; money is :class:`~decimal.Decimal`, never a float.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from consumers.runtime.unit_of_work import DbConnection
from schemas.oms import AccountState
from schemas.types import InvestorType, OrderSide, RegistryFeature


@dataclass(frozen=True)
class OperatorView:
    operator_id: str
    login_id: str
    features: tuple[RegistryFeature, ...]
    #: ``registered`` or ``deregistered``.
    status: str
    registered_flow_id: str
    registered_at: dt.datetime
    deregistered_at: dt.datetime | None
    deregistration_reason: str | None


@dataclass(frozen=True)
class InvestorView:
    investor_id: str
    full_name: str
    country: str
    type: InvestorType
    pii_hash: str | None
    #: The accounts the investor owns, by id.
    accounts: tuple[str, ...]


@dataclass(frozen=True)
class AccountView:
    account_id: str
    investor_id: str
    owner: str
    name: str
    default_currency: str
    state: AccountState
    state_reason: str | None
    opening_flow_id: str
    opened_at: dt.datetime
    state_changed_at: dt.datetime


async def operator(connection: DbConnection, operator_id: str) -> OperatorView | None:
    row = await connection.fetchrow("select * from operators where operator_id = $1", operator_id)
    if row is None:
        return None
    return OperatorView(
        operator_id=row["operator_id"],
        login_id=row["login_id"],
        features=tuple(RegistryFeature(feature) for feature in row["features"]),
        status=row["status"],
        registered_flow_id=row["registered_flow_id"],
        registered_at=row["registered_at"],
        deregistered_at=row["deregistered_at"],
        deregistration_reason=row["deregistration_reason"],
    )


async def investor(connection: DbConnection, investor_id: str) -> InvestorView | None:
    row = await connection.fetchrow(
        """
        select i.investor_id, i.full_name, i.country, i.type, i.pii_hash,
               coalesce(array_agg(a.account_id order by a.account_id) filter (where a.account_id is not null),
                        '{}') as accounts
        from investors i left join accounts a on a.investor_id = i.investor_id
        where i.investor_id = $1
        group by i.investor_id
        """,
        investor_id,
    )
    if row is None:
        return None
    return InvestorView(
        investor_id=row["investor_id"],
        full_name=row["full_name"],
        country=row["country"],
        type=InvestorType(row["type"]),
        pii_hash=row["pii_hash"],
        accounts=tuple(row["accounts"]),
    )


async def account(connection: DbConnection, account_id: str) -> AccountView | None:
    row = await connection.fetchrow("select * from accounts where account_id = $1", account_id)
    if row is None:
        return None
    return AccountView(
        account_id=row["account_id"],
        investor_id=row["investor_id"],
        owner=row["owner"],
        name=row["name"],
        default_currency=row["default_currency"],
        state=AccountState(row["state"]),
        state_reason=row["state_reason"],
        opening_flow_id=row["opening_flow_id"],
        opened_at=row["opened_at"],
        state_changed_at=row["state_changed_at"],
    )


async def cash(connection: DbConnection, account_id: str) -> dict[str, Decimal]:
    """Settled cash per currency (zero balances included: the default currency always shows).

    Below zero only where a buy fill was settled beyond it (a withdrawal raced an open buy).

    Empty for an account the registry does not know.
    """
    rows = await connection.fetch(
        "select currency, settled from cash where account_id = $1 order by currency", account_id
    )
    return {row["currency"]: row["settled"] for row in rows}


async def holdings(connection: DbConnection, account_id: str) -> dict[str, int]:
    """Quantity per instrument (``CODE.MARKET``); empty when the account holds nothing."""
    rows = await connection.fetch(
        "select instrument, quantity from holdings where account_id = $1 and quantity <> 0 order by instrument",
        account_id,
    )
    return {row["instrument"]: row["quantity"] for row in rows}


async def books(connection: DbConnection) -> tuple[dict[str, Decimal], dict[str, int]]:
    """Settled cash per currency and holdings per instrument, summed over every account."""
    cash = await connection.fetch("select currency, sum(settled) as total from cash group by 1")
    holdings = await connection.fetch(
        "select instrument, sum(quantity) as total from holdings group by 1 having sum(quantity) <> 0"
    )
    return {r["currency"]: r["total"] for r in cash}, {r["instrument"]: int(r["total"]) for r in holdings}


async def fills_settled(connection: DbConnection, order_ids: list[str]) -> int:
    """How many fills of the orders the registry settled. The registry reads the fills beside the
    OMS, not after it, so it may still be settling when the OMS has closed every order."""
    return int(
        await connection.fetchval("select count(*) from settlements where order_id = any($1::text[])", order_ids)
    )


@dataclass(frozen=True)
class CashMovementView:
    flow_id: str
    currency: str
    delta: Decimal
    balance_after: Decimal
    reference: str
    applied_at: dt.datetime


async def cash_movements(connection: DbConnection, account_id: str) -> list[CashMovementView]:
    """The deposits and withdrawals booked on the account, in the order they were applied."""
    rows = await connection.fetch(
        """
        select flow_id, currency, delta, balance_after, reference, applied_at from cash_movements
        where account_id = $1 order by seq
        """,
        account_id,
    )
    return [CashMovementView(**dict(row)) for row in rows]


@dataclass(frozen=True)
class SettlementView:
    """One fill booked: what it moved, and the cash and holding it left."""

    exchange: str
    venue_trade_id: str
    order_id: str
    #: The ExecutionReported booked.
    event_id: str
    instrument: str
    side: OrderSide
    quantity: int
    price: Decimal
    currency: str
    cash_delta: Decimal
    cash_after: Decimal
    holding_delta: int
    holding_after: int
    settled_at: dt.datetime


async def settlements(connection: DbConnection, account_id: str) -> list[SettlementView]:
    """The fills settled on the account, in the order they were booked."""
    rows = await connection.fetch(
        """
        select exchange, venue_trade_id, order_id, event_id, instrument, side, quantity, price, currency,
               cash_delta, cash_after, holding_delta, holding_after, settled_at
        from settlements where account_id = $1 order by seq
        """,
        account_id,
    )
    return [SettlementView(**{**dict(row), "side": OrderSide(row["side"])}) for row in rows]


@dataclass(frozen=True)
class ExchangeView:
    """An exchange whose fills the registry settles (every exchange it has been told of)."""

    code: str
    #: The flow of the ExchangeAdded that last listed it.
    flow_id: str
    changed_at: dt.datetime


async def exchange(connection: DbConnection, code: str) -> ExchangeView | None:
    """The exchange as the registry settles it; None for an exchange it has not been told of."""
    row = await connection.fetchrow("select code, flow_id, changed_at from exchanges where code = $1", code)
    return ExchangeView(**dict(row)) if row is not None else None


@dataclass(frozen=True)
class TokenView:
    """A symbol's token ``SYMBOL.MARKET``, in its market's registry, owned by its issuer."""

    code: str
    registry: str
    issuer: str
    name: str
    currency: str
    #: The flow of the event that last defined it.
    flow_id: str


async def tokens(connection: DbConnection, registry: str) -> list[TokenView]:
    """The tokens of a market's registry, by code; empty for a registry with none or none defined."""
    rows = await connection.fetch(
        "select code, registry, issuer, name, currency, flow_id from tokens where registry = $1 order by code",
        registry,
    )
    return [TokenView(**dict(row)) for row in rows]
