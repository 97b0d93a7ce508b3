"""The deposits and withdrawals the OMS books itself, and an account's positions as a closing
checks them, in a deployment without the registry (``consumers.oms.funds``): one concern of its
store (``consumers.oms.store``), the protocol the handlers see and its SQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from consumers.oms.positions import CashPosition, HoldingPosition
from consumers.runtime.unit_of_work import DbConnection


@dataclass(frozen=True)
class CashMovement:
    account_id: str
    currency: str
    #: Positive for a deposit, negative for a withdrawal.
    delta: Decimal
    reference: str
    flow_id: str
    at: dt.datetime


@dataclass(frozen=True)
class Positions:
    """What an account holds: its cash per currency and its holdings per instrument, as on record."""

    cash: tuple[CashPosition, ...]
    holdings: tuple[HoldingPosition, ...]


class FundsRecords(Protocol):
    async def credit_under(self, account_id: str, reference: str) -> CashMovement | None:
        """The deposit booked to the account under bank reference ``reference``, if there is one."""

    async def record_cash_movement(self, movement: CashMovement) -> None:
        """Keep the movement (its cash is moved with ``move_cash``); a deposit's reference is then taken."""

    async def positions(self, account_id: str) -> Positions:
        """The account's cash and holdings positions, in currency and instrument order."""


class PostgresFundsRecords(FundsRecords):
    """Over the batch's connection (``consumers.oms.store.PostgresBooks`` gives it)."""

    _db: DbConnection

    async def credit_under(self, account_id: str, reference: str) -> CashMovement | None:
        row = await self._db.fetchrow(
            """
            select account_id, currency, delta, reference, flow_id, booked_at as at from cash_movements
            where account_id = $1 and bank_reference = $2
            """,
            account_id,
            reference,
        )
        return None if row is None else CashMovement(**dict(row))

    async def record_cash_movement(self, movement: CashMovement) -> None:
        await self._db.execute(
            """
            insert into cash_movements (account_id, currency, delta, reference, bank_reference, flow_id, booked_at)
            values ($1, $2, $3, $4, $5, $6, $7)
            """,
            movement.account_id,
            movement.currency,
            movement.delta,
            movement.reference,
            movement.reference if movement.delta > 0 else None,  # a deposit's bank reference is taken
            movement.flow_id,
            movement.at,
        )

    async def positions(self, account_id: str) -> Positions:
        cash = await self._db.fetch(
            "select currency, booked, reserved from cash where account_id = $1 order by currency", account_id
        )
        holdings = await self._db.fetch(
            "select instrument, quantity, held_back from holdings where account_id = $1 order by instrument",
            account_id,
        )
        return Positions(
            tuple(CashPosition(row["currency"], row["booked"], row["reserved"]) for row in cash),
            tuple(HoldingPosition(row["instrument"], row["quantity"], row["held_back"]) for row in holdings),
        )
