"""The registry's state, kept out of the handlers so that they read as the rules of the domain.

Handlers reach it through ``unit.store`` (a :class:`Ledger`): :class:`PostgresLedger` in the
service, over the batch's transaction (``search_path`` set to the registry's schema, so nothing
here names a schema or commits), and an in-memory one in unit tests (tests/support/memory_registry.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import asyncpg

from consumers.registry import queries
from consumers.runtime import UnitOfWork
from consumers.runtime.unit_of_work import DbConnection
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


@dataclass(frozen=True)
class Credit:
    """A deposit booked: what it credited, by which flow, when."""

    flow_id: str
    amount: Decimal
    currency: str
    at: dt.datetime


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


@dataclass(frozen=True)
class Token:
    """A symbol's token: ``SYMBOL.MARKET``, in its market's registry, owned by its issuer."""

    code: str
    registry: str
    issuer: str
    name: str
    currency: str


@dataclass(frozen=True)
class HoldingMovement:
    """Shares issued (``delta`` > 0) into or reclaimed from an account, under a reference."""

    account_id: str
    token: str
    delta: int
    holding_after: int
    reference: str
    flow_id: str
    at: dt.datetime


async def lock_account(unit: UnitOfWork, account_id: str) -> None:
    """Serialise everything done to one account until the transaction ends.

    Events of ``xosp.accounts`` for one account arrive in order on one partition, but a
    ``ProvisioningFailed`` about it comes on another topic and may be applied at the same time by
    another partition's worker: without this lock a compensation could check for cash while a
    deposit lands, or miss an opening committed a moment later.
    """
    await unit.lock(f"account:{account_id}")


class Ledger(Protocol):
    async def register_operator(
        self, operator_id: str, login_id: str, features: list[str], flow_id: str, at: dt.datetime
    ) -> None:
        """Insert or replace: a registration again (after a deregistration too) is the one in force."""

    async def deregister_operator(self, operator_id: str, reason: str | None, at: dt.datetime) -> bool:
        """Mark the operator deregistered; False when the registry does not know it."""

    async def find_investor(self, investor_id: str) -> Investor | None:
        """The investor recorded under that id, or None."""

    async def insert_investor(self, investor: Investor, at: dt.datetime) -> None:
        """Insert when new; an existing investor is left as it is (the caller compares it first)."""

    async def fill_pii_hash(self, investor_id: str, pii_hash: str) -> None:
        """An investor first recorded without a PII hash takes the one a later opening gives."""

    async def find_account(self, account_id: str) -> StoredAccount | None:
        """The account, or None when the registry never opened it."""

    async def account_opened_by(self, flow_id: str) -> StoredAccount | None:
        """The account the flow opened, or None."""

    async def insert_account(
        self, *, account_id: str, investor_id: str, owner: str, name: str, currency: str, flow_id: str, at: dt.datetime
    ) -> None:
        """The account, active, with zero settled cash in its default currency and no holdings."""

    async def set_state(self, account_id: str, state: AccountState, reason: str | None, at: dt.datetime) -> None:
        """The account's new state and why."""

    async def settled_cash(self, account_id: str, currency: str) -> Decimal:
        """Settled cash in ``currency``; zero for a currency the account has never held."""

    async def book_cash_movement(
        self,
        *,
        account_id: str,
        currency: str,
        delta: Decimal,
        balance: Decimal,
        reference: str,
        flow_id: str,
        at: dt.datetime,
    ) -> None:
        """Set the new balance and write the movement to the ledger, together. A deposit (``delta``
        > 0) takes its bank reference for the account: the ledger's unique key refuses a second."""

    async def credit_under(self, account_id: str, reference: str) -> Credit | None:
        """The deposit credited to the account under this bank reference, or None."""

    async def nonzero_cash(self, account_id: str) -> dict[str, Decimal]:
        """Settled cash per currency, where it is not zero."""

    async def nonzero_holdings(self, account_id: str) -> dict[str, int]:
        """Holdings per instrument, where they are not zero."""

    async def remember_failed_opening(
        self, flow_id: str, account_id: str, service: str, step: str, reason: str, at: dt.datetime
    ) -> None:
        """Keep the failure of an opening that has not arrived here yet (once per flow)."""

    async def take_failed_opening(self, flow_id: str) -> FailedOpening | None:
        """The failure already reported for this opening flow, if any, removed as it is acted on."""

    async def put_exchange(self, code: str, flow_id: str, at: dt.datetime) -> None:
        """The exchange whose fills the registry settles, and the flow of its latest ExchangeAdded."""

    async def holding(self, account_id: str, instrument: str) -> int:
        """Quantity held; zero for an instrument the account has never held."""

    async def settled_already(self, exchange: str, venue_trade_id: str, order_id: str) -> bool:
        """Whether this fill (exchange, venue trade id, order) was settled here already."""

    async def book_settlement(self, row: SettlementRow, event_id: str, at: dt.datetime) -> None:
        """Set the new cash balance and holding and write the fill to the settlement ledger, together."""

    async def define_registry(self, market: str, exchange: str, flow_id: str, at: dt.datetime) -> None:
        """The market's ``Registry``, defined again (under its latest exchange) if it is there already."""

    async def define_token(self, token: Token, flow_id: str, at: dt.datetime) -> None:
        """The token, and its issuer when new; a token defined again takes the latest name and currency."""

    async def token_defined(self, code: str) -> bool:
        """Whether a symbol's token of that code is in the registry."""

    async def movement_under(self, account_id: str, reference: str) -> HoldingMovement | None:
        """The issue or reclaim booked on the account under this reference, or None."""

    async def book_holding_movement(self, movement: HoldingMovement) -> None:
        """Set the new holding and write the movement, together (a reference once per account)."""


#: What the handlers are given.
LedgerUnit = UnitOfWork[Ledger]


class PostgresLedger(Ledger):
    def __init__(self, connection: DbConnection) -> None:
        self._db = connection

    async def register_operator(
        self, operator_id: str, login_id: str, features: list[str], flow_id: str, at: dt.datetime
    ) -> None:
        await self._db.execute(
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

    async def deregister_operator(self, operator_id: str, reason: str | None, at: dt.datetime) -> bool:
        status = await self._db.execute(
            """
            update operators set status = 'deregistered', deregistered_at = $2, deregistration_reason = $3
            where operator_id = $1
            """,
            operator_id,
            at,
            reason,
        )
        return status != "UPDATE 0"

    async def find_investor(self, investor_id: str) -> Investor | None:
        row = await self._db.fetchrow(
            "select investor_id, full_name, country, type, pii_hash from investors where investor_id = $1", investor_id
        )
        return Investor.model_validate(dict(row)) if row is not None else None

    async def insert_investor(self, investor: Investor, at: dt.datetime) -> None:
        await self._db.execute(
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

    async def fill_pii_hash(self, investor_id: str, pii_hash: str) -> None:
        await self._db.execute(
            "update investors set pii_hash = $2 where investor_id = $1 and pii_hash is null", investor_id, pii_hash
        )

    async def find_account(self, account_id: str) -> StoredAccount | None:
        row = await self._db.fetchrow(
            "select account_id, investor_id, state, opening_flow_id from accounts where account_id = $1", account_id
        )
        return _account(row) if row is not None else None

    async def account_opened_by(self, flow_id: str) -> StoredAccount | None:
        row = await self._db.fetchrow(
            "select account_id, investor_id, state, opening_flow_id from accounts where opening_flow_id = $1", flow_id
        )
        return _account(row) if row is not None else None

    async def insert_account(
        self,
        *,
        account_id: str,
        investor_id: str,
        owner: str,
        name: str,
        currency: str,
        flow_id: str,
        at: dt.datetime,
    ) -> None:
        await self._db.execute(
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
        await self._db.execute(
            "insert into cash (account_id, currency, settled) values ($1, $2, 0)", account_id, currency
        )

    async def set_state(self, account_id: str, state: AccountState, reason: str | None, at: dt.datetime) -> None:
        await self._db.execute(
            "update accounts set state = $2, state_reason = $3, state_changed_at = $4 where account_id = $1",
            account_id,
            state.value,
            reason,
            at,
        )

    async def settled_cash(self, account_id: str, currency: str) -> Decimal:
        value = await self._db.fetchval(
            "select settled from cash where account_id = $1 and currency = $2", account_id, currency
        )
        return value if value is not None else Decimal(0)

    async def book_cash_movement(
        self,
        *,
        account_id: str,
        currency: str,
        delta: Decimal,
        balance: Decimal,
        reference: str,
        flow_id: str,
        at: dt.datetime,
    ) -> None:
        await self._set_cash(account_id, currency, balance)
        await self._db.execute(
            """
            insert into cash_movements (flow_id, account_id, currency, delta, balance_after, reference,
                                        bank_reference, applied_at)
            values ($1, $2, $3, $4, $5, $6, case when $4::numeric > 0 then $6 end, $7)
            """,
            flow_id,
            account_id,
            currency,
            delta,
            balance,
            reference,
            at,
        )

    async def credit_under(self, account_id: str, reference: str) -> Credit | None:
        row = await self._db.fetchrow(
            """
            select flow_id, delta, currency, applied_at from cash_movements
            where account_id = $1 and bank_reference = $2
            """,
            account_id,
            reference,
        )
        return Credit(row["flow_id"], row["delta"], row["currency"], row["applied_at"]) if row is not None else None

    async def _set_cash(self, account_id: str, currency: str, balance: Decimal) -> None:
        await self._db.execute(
            """
            insert into cash (account_id, currency, settled) values ($1, $2, $3)
            on conflict (account_id, currency) do update set settled = excluded.settled
            """,
            account_id,
            currency,
            balance,
        )

    async def nonzero_cash(self, account_id: str) -> dict[str, Decimal]:
        rows = await self._db.fetch(
            "select currency, settled from cash where account_id = $1 and settled <> 0 order by currency", account_id
        )
        return {row["currency"]: row["settled"] for row in rows}

    async def nonzero_holdings(self, account_id: str) -> dict[str, int]:
        return await queries.holdings(self._db, account_id)

    async def remember_failed_opening(
        self, flow_id: str, account_id: str, service: str, step: str, reason: str, at: dt.datetime
    ) -> None:
        await self._db.execute(
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

    async def take_failed_opening(self, flow_id: str) -> FailedOpening | None:
        row = await self._db.fetchrow(
            "delete from failed_openings where flow_id = $1 returning flow_id, service, step, reason", flow_id
        )
        return FailedOpening(row["flow_id"], row["service"], row["step"], row["reason"]) if row is not None else None

    async def put_exchange(self, code: str, flow_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into exchanges (code, flow_id, changed_at) values ($1, $2, $3)
            on conflict (code) do update set flow_id = excluded.flow_id, changed_at = excluded.changed_at
            """,
            code,
            flow_id,
            at,
        )

    async def holding(self, account_id: str, instrument: str) -> int:
        value = await self._db.fetchval(
            "select quantity from holdings where account_id = $1 and instrument = $2", account_id, instrument
        )
        return int(value) if value is not None else 0

    async def _set_holding(self, account_id: str, instrument: str, quantity: int) -> None:
        await self._db.execute(
            """
            insert into holdings (account_id, instrument, quantity) values ($1, $2, $3)
            on conflict (account_id, instrument) do update set quantity = excluded.quantity
            """,
            account_id,
            instrument,
            quantity,
        )

    async def settled_already(self, exchange: str, venue_trade_id: str, order_id: str) -> bool:
        return bool(
            await self._db.fetchval(
                "select 1 from settlements where exchange = $1 and venue_trade_id = $2 and order_id = $3",
                exchange,
                venue_trade_id,
                order_id,
            )
        )

    async def book_settlement(self, row: SettlementRow, event_id: str, at: dt.datetime) -> None:
        await self._set_cash(row.account_id, row.currency, row.cash_after)
        await self._set_holding(row.account_id, row.instrument, row.holding_after)
        await self._db.execute(
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

    async def define_registry(self, market: str, exchange: str, flow_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into registries (code, exchange, flow_id, defined_at) values ($1, $2, $3, $4)
            on conflict (code) do update set
                exchange = excluded.exchange, flow_id = excluded.flow_id, defined_at = excluded.defined_at
            """,
            market,
            exchange,
            flow_id,
            at,
        )

    async def define_token(self, token: Token, flow_id: str, at: dt.datetime) -> None:
        await self._db.execute(
            "insert into issuers (code, flow_id, defined_at) values ($1, $2, $3) on conflict (code) do nothing",
            token.issuer,
            flow_id,
            at,
        )
        await self._db.execute(
            """
            insert into tokens (code, registry, issuer, name, currency, flow_id, defined_at)
            values ($1, $2, $3, $4, $5, $6, $7)
            on conflict (code) do update set
                registry = excluded.registry, issuer = excluded.issuer, name = excluded.name,
                currency = excluded.currency, flow_id = excluded.flow_id, defined_at = excluded.defined_at
            """,
            token.code,
            token.registry,
            token.issuer,
            token.name,
            token.currency,
            flow_id,
            at,
        )

    async def token_defined(self, code: str) -> bool:
        return bool(await self._db.fetchval("select 1 from tokens where code = $1", code))

    async def movement_under(self, account_id: str, reference: str) -> HoldingMovement | None:
        row = await self._db.fetchrow(
            """
            select account_id, token, delta, holding_after, reference, flow_id, applied_at from holding_movements
            where account_id = $1 and reference = $2
            """,
            account_id,
            reference,
        )
        if row is None:
            return None
        return HoldingMovement(
            row["account_id"],
            row["token"],
            int(row["delta"]),
            int(row["holding_after"]),
            row["reference"],
            row["flow_id"],
            row["applied_at"],
        )

    async def book_holding_movement(self, movement: HoldingMovement) -> None:
        await self._set_holding(movement.account_id, movement.token, movement.holding_after)
        await self._db.execute(
            """
            insert into holding_movements (flow_id, account_id, token, delta, holding_after, reference, applied_at)
            values ($1, $2, $3, $4, $5, $6, $7)
            """,
            movement.flow_id,
            movement.account_id,
            movement.token,
            movement.delta,
            movement.holding_after,
            movement.reference,
            movement.at,
        )


def _account(row: asyncpg.Record) -> StoredAccount:
    return StoredAccount(
        account_id=row["account_id"],
        investor_id=row["investor_id"],
        state=AccountState(row["state"]),
        opening_flow_id=row["opening_flow_id"],
    )
