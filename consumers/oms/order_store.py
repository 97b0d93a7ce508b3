"""The OMS's orders, their fills and the positions they draw on (cash and holdings): one concern
of its store (``consumers.oms.store``), the protocol the handlers see and its SQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from consumers.oms import queries
from consumers.oms.orders import Order, OrderState
from consumers.oms.positions import CashPosition, FillBooking, HoldingPosition
from consumers.oms.vetting import Acceptance, Exchange, Instrument, Rejection
from consumers.runtime.unit_of_work import DbConnection
from schemas.gateway import ExecutionReported
from schemas.oms import OrderOutcome
from schemas.orders import OrderPlaced


class OrderRecords(Protocol):
    async def order(self, order_id: str) -> Order | None:
        """The order as it stands, or None if no order was placed under that id."""

    async def order_id_taken(self, order_id: str) -> bool:
        """Whether an order (accepted or rejected) is already on record under that id."""

    async def insert_rejected(self, placed: OrderPlaced, rejection: Rejection, at: dt.datetime) -> None:
        """Keep the rejected order, so that its id stays taken and its code and reason can be read."""

    async def insert_accepted(
        self, placed: OrderPlaced, acceptance: Acceptance, instrument: Instrument, exchange: Exchange, at: dt.datetime
    ) -> None:
        """The order, routed to the exchange's adapter, with what it reserves (cash of a buy, the
        quantity of a sell) and the price it was valued at."""

    async def fill_booked(self, report: ExecutionReported) -> bool:
        """Whether the fill was booked before: the same venue trade reported again."""

    async def record_fill(self, report: ExecutionReported, at: dt.datetime) -> None:
        """Keep the fill (exchange, venue trade id, order), so that a second report of it is not booked."""

    async def apply_fill(self, order_id: str, quantity: int, booking: FillBooking, at: dt.datetime) -> None:
        """Add the fill to the order's filled quantity and value, and take what it releases off
        what the order still reserves."""

    async def set_order_state(self, order_id: str, state: OrderState, at: dt.datetime) -> None:
        """The order's new state (one still open: completing it is :meth:`complete`)."""

    async def complete(self, order_id: str, outcome: OrderOutcome, reason: str | None, at: dt.datetime) -> Order:
        """End the order: nothing of it stays reserved. Returns it as it ends."""

    async def cash(self, account_id: str, currency: str) -> CashPosition | None:
        """The account's cash in ``currency``; None when it has never had any."""

    async def holding(self, account_id: str, instrument: str) -> HoldingPosition | None:
        """The account's holding of ``instrument``; None when it has never held any."""

    async def move_cash(
        self, account_id: str, currency: str, booked: Decimal = Decimal(0), reserved: Decimal = Decimal(0)
    ) -> None:
        """Add ``booked`` to booked cash and ``reserved`` to what is reserved (negative releases);
        a position not on record yet starts at zero."""

    async def move_holding(self, account_id: str, instrument: str, quantity: int = 0, held_back: int = 0) -> None:
        """Add ``quantity`` to the holding and ``held_back`` to what is held back (negative
        releases); a position not on record yet starts at zero."""


class PostgresOrderRecords(OrderRecords):
    """Over the batch's connection (``consumers.oms.store.PostgresBooks`` gives it)."""

    _db: DbConnection

    async def order(self, order_id: str) -> Order | None:
        return await queries.order(self._db, order_id)

    async def order_id_taken(self, order_id: str) -> bool:
        return bool(await self._db.fetchval("select 1 from orders where order_id = $1", order_id))

    async def insert_rejected(self, placed: OrderPlaced, rejection: Rejection, at: dt.datetime) -> None:
        await self._insert(
            placed, at, state=OrderState.REJECTED, rejection_code=rejection.code, reason=rejection.reason
        )

    async def insert_accepted(
        self, placed: OrderPlaced, acceptance: Acceptance, instrument: Instrument, exchange: Exchange, at: dt.datetime
    ) -> None:
        await self._insert(
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

    async def _insert(self, placed: OrderPlaced, at: dt.datetime, **columns: object) -> None:
        """The order's row: what every order has, and ``columns``, those of its outcome."""
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
        await self._db.execute(f"insert into orders ({', '.join(values)}) values ({placeholders})", *values.values())

    async def fill_booked(self, report: ExecutionReported) -> bool:
        return bool(
            await self._db.fetchval(
                "select 1 from fills where exchange = $1 and venue_trade_id = $2 and order_id = $3",
                report.exchange,
                report.venue_trade_id,
                report.order_id,
            )
        )

    async def record_fill(self, report: ExecutionReported, at: dt.datetime) -> None:
        await self._db.execute(
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

    async def apply_fill(self, order_id: str, quantity: int, booking: FillBooking, at: dt.datetime) -> None:
        await self._db.execute(
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

    async def set_order_state(self, order_id: str, state: OrderState, at: dt.datetime) -> None:
        await self._db.execute(
            "update orders set state = $2, changed_at = $3 where order_id = $1", order_id, str(state), at
        )

    async def complete(self, order_id: str, outcome: OrderOutcome, reason: str | None, at: dt.datetime) -> Order:
        row = await self._db.fetchrow(
            """
            update orders set state = 'completed', outcome = $2, reason = $3, reserved = 0, held_back = 0,
                              changed_at = $4
            where order_id = $1 returning *
            """,
            order_id,
            str(outcome),
            reason,
            at,
        )
        assert row is not None, f"order {order_id} vanished while its account was locked"
        return queries.order_from_row(row)

    async def cash(self, account_id: str, currency: str) -> CashPosition | None:
        row = await self._db.fetchrow(
            "select booked, reserved from cash where account_id = $1 and currency = $2", account_id, currency
        )
        return None if row is None else CashPosition(currency, row["booked"], row["reserved"])

    async def holding(self, account_id: str, instrument: str) -> HoldingPosition | None:
        row = await self._db.fetchrow(
            "select quantity, held_back from holdings where account_id = $1 and instrument = $2",
            account_id,
            instrument,
        )
        return None if row is None else HoldingPosition(instrument, row["quantity"], row["held_back"])

    async def move_cash(
        self, account_id: str, currency: str, booked: Decimal = Decimal(0), reserved: Decimal = Decimal(0)
    ) -> None:
        """An update first, then an insert for a position not on record yet: an upsert would check
        its proposed row (a release alone: reserved below zero) against the constraints before it
        finds the row to update. The account's lock keeps another transaction from inserting in
        between."""
        changed = await self._db.execute(
            "update cash set booked = booked + $3, reserved = reserved + $4 where account_id = $1 and currency = $2",
            account_id,
            currency,
            booked,
            reserved,
        )
        if changed == "UPDATE 0":
            await self._db.execute(
                "insert into cash (account_id, currency, booked, reserved) values ($1, $2, $3, $4)",
                account_id,
                currency,
                booked,
                reserved,
            )

    async def move_holding(self, account_id: str, instrument: str, quantity: int = 0, held_back: int = 0) -> None:
        """An update first, as :meth:`move_cash` does."""
        changed = await self._db.execute(
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
            await self._db.execute(
                "insert into holdings (account_id, instrument, quantity, held_back) values ($1, $2, $3, $4)",
                account_id,
                instrument,
                quantity,
                held_back,
            )
