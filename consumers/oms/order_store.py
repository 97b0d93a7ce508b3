"""The SQL of orders, their fills and the positions they draw on (cash and holdings)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

import asyncpg

from consumers.oms.orders import Order, OrderState
from consumers.oms.positions import CashPosition, FillBooking, HoldingPosition
from consumers.oms.vetting import Acceptance, Exchange, Instrument, Rejection
from consumers.runtime import UnitOfWork
from schemas.gateway import ExecutionReported
from schemas.oms import OrderOutcome, RejectionCode
from schemas.orders import OrderPlaced
from schemas.types import OrderLifetime, OrderSide, OrderType

# --- orders -------------------------------------------------------------------------------------


async def order(unit: UnitOfWork, order_id: str) -> Order | None:
    row = await unit.fetchrow("select * from orders where order_id = $1", order_id)
    return None if row is None else order_from_row(row)


async def order_id_taken(unit: UnitOfWork, order_id: str) -> bool:
    return bool(await unit.fetchval("select 1 from orders where order_id = $1", order_id))


async def insert_rejected(unit: UnitOfWork, placed: OrderPlaced, rejection: Rejection, at: dt.datetime) -> None:
    await _insert(unit, placed, at, state=OrderState.REJECTED, rejection_code=rejection.code, reason=rejection.reason)


async def insert_accepted(
    unit: UnitOfWork,
    placed: OrderPlaced,
    acceptance: Acceptance,
    instrument: Instrument,
    exchange: Exchange,
    at: dt.datetime,
) -> None:
    await _insert(
        unit,
        placed,
        at,
        state=OrderState.ROUTED,
        exchange=exchange.code,
        adapter=exchange.adapter,
        currency=instrument.currency,
        price=acceptance.price,
        protection_price=acceptance.protection_price,
        reserved=acceptance.reserved_cash,
        held_back=acceptance.held_back,
    )


async def _insert(unit: UnitOfWork, placed: OrderPlaced, at: dt.datetime, **columns: object) -> None:
    values: dict[str, object] = {
        "order_id": placed.order_id,
        "account_id": placed.account_id,
        "login_id": placed.login_id,
        "instrument": placed.instrument,
        "side": str(placed.side),
        "order_type": str(placed.order_type),
        "quantity": placed.quantity,
        "limit_price": placed.limit_price,
        "lifetime": str(placed.lifetime),
        "expiry_date": placed.expiry_date,
        "placed_at": at,
        "changed_at": at,
        **{name: str(value) if isinstance(value, StrEnum) else value for name, value in columns.items()},
    }
    placeholders = ", ".join(f"${n}" for n in range(1, len(values) + 1))
    await unit.execute(f"insert into orders ({', '.join(values)}) values ({placeholders})", *values.values())


async def fill_booked(unit: UnitOfWork, report: ExecutionReported) -> bool:
    """Whether the fill was booked before: the same venue trade reported again."""
    return bool(
        await unit.fetchval(
            "select 1 from fills where exchange = $1 and venue_trade_id = $2 and order_id = $3",
            report.exchange,
            report.venue_trade_id,
            report.order_id,
        )
    )


async def record_fill(unit: UnitOfWork, report: ExecutionReported, at: dt.datetime) -> None:
    await unit.execute(
        """
        insert into fills (exchange, venue_trade_id, order_id, quantity, price, booked_at)
        values ($1, $2, $3, $4, $5, $6)
        """,
        report.exchange,
        report.venue_trade_id,
        report.order_id,
        report.fill_quantity,
        report.fill_price,
        at,
    )


async def apply_fill(unit: UnitOfWork, order_id: str, quantity: int, booking: FillBooking, at: dt.datetime) -> None:
    await unit.execute(
        """
        update orders set filled_quantity = filled_quantity + $2, filled_value = filled_value + $3,
                          reserved = reserved - $4, held_back = held_back - $5, changed_at = $6
        where order_id = $1
        """,
        order_id,
        quantity,
        booking.value,
        booking.cash_released,
        booking.held_back_released,
        at,
    )


async def set_state(unit: UnitOfWork, order_id: str, state: OrderState, at: dt.datetime) -> None:
    await unit.execute("update orders set state = $2, changed_at = $3 where order_id = $1", order_id, str(state), at)


async def complete(
    unit: UnitOfWork, order_id: str, outcome: OrderOutcome, reason: str | None, at: dt.datetime
) -> Order:
    """End the order: nothing of it stays reserved. Returns it as it ends."""
    row = await unit.fetchrow(
        """
        update orders set state = 'completed', outcome = $2, reason = $3, reserved = 0, held_back = 0, changed_at = $4
        where order_id = $1 returning *
        """,
        order_id,
        str(outcome),
        reason,
        at,
    )
    assert row is not None, f"order {order_id} vanished while its account was locked"
    return order_from_row(row)


def order_from_row(row: asyncpg.Record) -> Order:
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
        rejection_code=RejectionCode(row["rejection_code"]) if row["rejection_code"] is not None else None,
        reason=row["reason"],
        placed_at=row["placed_at"],
        changed_at=row["changed_at"],
    )


# --- positions ----------------------------------------------------------------------------------


async def cash(unit: UnitOfWork, account_id: str, currency: str) -> CashPosition | None:
    row = await unit.fetchrow(
        "select booked, reserved from cash where account_id = $1 and currency = $2", account_id, currency
    )
    return None if row is None else CashPosition(currency, row["booked"], row["reserved"])


async def holding(unit: UnitOfWork, account_id: str, instrument: str) -> HoldingPosition | None:
    row = await unit.fetchrow(
        "select quantity, held_back from holdings where account_id = $1 and instrument = $2", account_id, instrument
    )
    return None if row is None else HoldingPosition(instrument, row["quantity"], row["held_back"])


async def move_cash(
    unit: UnitOfWork, account_id: str, currency: str, booked: Decimal = Decimal(0), reserved: Decimal = Decimal(0)
) -> None:
    """Add ``booked`` to booked cash and ``reserved`` to what is reserved (negative releases).

    An update first, then an insert for a position not on record yet: an upsert would check its
    proposed row (a release alone: reserved below zero) against the constraints before it finds
    the row to update. The account's lock keeps another transaction from inserting in between.
    """
    changed = await unit.execute(
        "update cash set booked = booked + $3, reserved = reserved + $4 where account_id = $1 and currency = $2",
        account_id,
        currency,
        booked,
        reserved,
    )
    if changed == "UPDATE 0":
        await unit.execute(
            "insert into cash (account_id, currency, booked, reserved) values ($1, $2, $3, $4)",
            account_id,
            currency,
            booked,
            reserved,
        )


async def move_holding(
    unit: UnitOfWork, account_id: str, instrument: str, quantity: int = 0, held_back: int = 0
) -> None:
    """Add ``quantity`` to the holding and ``held_back`` to what is held back (negative releases);
    an update first, as :func:`move_cash` does."""
    changed = await unit.execute(
        """
        update holdings set quantity = quantity + $3, held_back = held_back + $4
        where account_id = $1 and instrument = $2
        """,
        account_id,
        instrument,
        quantity,
        held_back,
    )
    if changed == "UPDATE 0":
        await unit.execute(
            "insert into holdings (account_id, instrument, quantity, held_back) values ($1, $2, $3, $4)",
            account_id,
            instrument,
            quantity,
            held_back,
        )
