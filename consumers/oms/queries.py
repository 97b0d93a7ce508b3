"""Reading the OMS service's tables, for the CLI and the HTTP API.

Every function takes a connection whose ``search_path`` is the service's schema
(``settings.db_schema("oms")``), as the service's own SQL does: no query names a schema.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from consumers.oms.account_store import limits_from_row
from consumers.oms.orders import Order, OrderState
from consumers.oms.positions import CashPosition, HoldingPosition
from consumers.runtime.unit_of_work import DbConnection
from schemas.accounts import VettingLimits
from schemas.oms import AccountState, OrderOutcome, RejectionCode, RejectionCodeV1
from schemas.types import OmsFeature, OrderLifetime, OrderSide, OrderType

__all__ = ["Account", "CashPosition", "HoldingPosition", "Operator", "Order", "Positions"]


@dataclass(frozen=True)
class Operator:
    operator_id: str
    login_id: str
    features: tuple[OmsFeature, ...]
    owners: tuple[str, ...]
    exchanges: tuple[str, ...]
    registered: bool
    deregistered_reason: str | None
    registered_at: dt.datetime
    changed_at: dt.datetime


@dataclass(frozen=True)
class Account:
    account_id: str
    owner: str
    name: str
    classification: str
    currency: str
    categories: tuple[str, ...]
    attributes: dict[str, str]
    allowed_exchanges: tuple[str, ...]
    vetting: VettingLimits
    state: AccountState
    state_reason: str | None
    #: The flow that set the state, and the one that opened the account.
    state_flow_id: str
    opened_by_flow: str
    opened_at: dt.datetime
    changed_at: dt.datetime


async def operator(connection: DbConnection, operator_id: str) -> Operator | None:
    """The operator as the OMS's Identity function knows it; None if never registered with the OMS."""
    row = await connection.fetchrow("select * from operators where operator_id = $1", operator_id)
    if row is None:
        return None
    return Operator(
        operator_id=row["operator_id"],
        login_id=row["login_id"],
        features=tuple(OmsFeature(feature) for feature in row["features"]),
        owners=tuple(row["owners"]),
        exchanges=tuple(row["exchanges"]),
        registered=row["status"] == "registered",
        deregistered_reason=row["deregistered_reason"],
        registered_at=row["registered_at"],
        changed_at=row["changed_at"],
    )


async def account(connection: DbConnection, account_id: str) -> Account | None:
    """The trading account's metadata, vetting settings and state; None if the OMS does not have it."""
    row = await connection.fetchrow("select * from accounts where account_id = $1", account_id)
    if row is None:
        return None
    return Account(
        account_id=row["account_id"],
        owner=row["owner"],
        name=row["name"],
        classification=row["classification"],
        currency=row["currency"],
        categories=tuple(row["categories"]),
        attributes=json.loads(row["attributes"]),
        allowed_exchanges=tuple(row["allowed_exchanges"]),
        vetting=limits_from_row(row),
        state=AccountState(row["state"]),
        state_reason=row["state_reason"],
        state_flow_id=row["state_flow_id"],
        opened_by_flow=row["opened_by_flow"],
        opened_at=row["opened_at"],
        changed_at=row["changed_at"],
    )


@dataclass(frozen=True)
class Positions:
    """An account's cash per currency and holdings per instrument, with what open orders reserve."""

    account_id: str
    cash: tuple[CashPosition, ...]
    holdings: tuple[HoldingPosition, ...]

    def cash_in(self, currency: str) -> CashPosition:
        """The cash position in ``currency``: zero if the account never had any."""
        return next((cash for cash in self.cash if cash.currency == currency), CashPosition(currency))

    def holding_of(self, instrument: str) -> HoldingPosition:
        """The holding of ``instrument``: none if the account never held it."""
        return next(
            (holding for holding in self.holdings if holding.instrument == instrument), HoldingPosition(instrument)
        )


async def order(connection: DbConnection, order_id: str) -> Order | None:
    """The order: its state, what it still reserves, its fills so far and how it ended; None if
    never placed. An order vetting rejected is kept too, with its code and reason (but not the
    rejection of a repeated id, which belongs to the first order placed under it)."""
    row = await connection.fetchrow("select * from orders where order_id = $1", order_id)
    return None if row is None else order_from_row(row)


def order_from_row(row: asyncpg.Record) -> Order:
    """The order of an ``orders`` row (this read API's and the store's, ``order_store``)."""
    return Order(
        order_id=row["order_id"],
        account_id=row["account_id"],
        login_id=row["login_id"],
        instrument=row["instrument"],
        side=OrderSide(row["side"]),
        order_type=OrderType(row["order_type"]),
        quantity=row["quantity"],
        limit_price=row["limit_price"],
        lifetime=OrderLifetime(row["lifetime"]),
        expiry_date=row["expiry_date"],
        state=OrderState(row["state"]),
        exchange=row["exchange"],
        adapter=row["adapter"],
        currency=row["currency"],
        price=row["price"],
        protection_price=row["protection_price"],
        reserved=row["reserved"],
        held_back=row["held_back"],
        filled_quantity=row["filled_quantity"],
        filled_value=row["filled_value"],
        outcome=OrderOutcome(row["outcome"]) if row["outcome"] is not None else None,
        rejection_code=_rejection_code(row["rejection_code"]),
        reason=row["reason"],
        placed_at=row["placed_at"],
        changed_at=row["changed_at"],
    )


def _rejection_code(stored: str | None) -> RejectionCode | RejectionCodeV1 | None:
    """A stored rejection code: today's, or the retired one an order rejected before kept."""
    if stored is None:
        return None
    try:
        return RejectionCode(stored)
    except ValueError:
        return RejectionCodeV1(stored)


async def positions(connection: DbConnection, account_id: str) -> Positions:
    """The account's positions as the OMS vets against them (nothing if it never had any)."""
    cash = await connection.fetch(
        "select currency, booked, reserved from cash where account_id = $1 order by currency", account_id
    )
    holdings = await connection.fetch(
        "select instrument, quantity, held_back from holdings where account_id = $1 order by instrument", account_id
    )
    return Positions(
        account_id=account_id,
        cash=tuple(CashPosition(row["currency"], row["booked"], row["reserved"]) for row in cash),
        holdings=tuple(HoldingPosition(row["instrument"], row["quantity"], row["held_back"]) for row in holdings),
    )


async def order_outcomes(connection: DbConnection, order_ids: list[str]) -> Counter[str]:
    """How the orders ended, counted: ``filled``, ``cancelled``, ``expired``, the rejection code of
    a rejected one, or the state of one not over yet (``routed``, ``partially_filled``, ...)."""
    rows = await connection.fetch(
        "select coalesce(rejection_code, outcome, state) as how, count(*) as n from orders "
        "where order_id = any($1::text[]) group by 1",
        order_ids,
    )
    return Counter({row["how"]: row["n"] for row in rows})


async def orders_over(connection: DbConnection, order_ids: list[str]) -> int:
    """How many of the orders are over: completed (filled, cancelled, expired) or rejected."""
    return int(
        await connection.fetchval(
            "select count(*) from orders where order_id = any($1::text[]) and state in ('completed', 'rejected')",
            order_ids,
        )
    )


async def fills_booked(connection: DbConnection, order_ids: list[str]) -> int:
    """How many fills of the orders the OMS booked: once every order is over, what the registry
    must have settled (``consumers.registry.queries.fills_settled``) before the books can agree."""
    return int(await connection.fetchval("select count(*) from fills where order_id = any($1::text[])", order_ids))


async def tradable_accounts(connection: DbConnection, account_ids: list[str], cash: Decimal = Decimal(0)) -> int:
    """How many of the accounts have at least ``cash`` booked (with the default, any: a deposit has
    arrived) and a login with the trade right: what a front end waits for before it lets orders
    through."""
    return int(
        await connection.fetchval(
            """
            select count(*) from unnest($1::text[]) as wanted (account_id)
            where exists (select 1 from cash c where c.account_id = wanted.account_id and c.booked >= $2)
              and exists (select 1 from account_rights r where r.account_id = wanted.account_id
                          and 'trade' = any(r.rights))
            """,
            account_ids,
            cash,
        )
    )


async def books(connection: DbConnection) -> tuple[dict[str, Decimal], dict[str, int]]:
    """Booked cash per currency and holdings per instrument, summed over every account: to hold
    against the registry's (``consumers.registry.queries.books``)."""
    cash = await connection.fetch("select currency, sum(booked) as total from cash group by 1")
    holdings = await connection.fetch(
        "select instrument, sum(quantity) as total from holdings group by 1 having sum(quantity) <> 0"
    )
    return {r["currency"]: r["total"] for r in cash}, {r["instrument"]: int(r["total"]) for r in holdings}
