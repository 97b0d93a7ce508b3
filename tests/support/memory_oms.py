"""An in-memory store with the protocol of the OMS's PostgreSQL one (``consumers.oms.store.OmsBooks``),
for unit tests of its rules on a FakeUnitOfWork. It keeps exactly what the rules read back (and
what a test checks they wrote), and asserts the tables' checks a rule could break (nothing
reserved below zero, no holding below zero); the SQL itself is proven by the real-stack tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from consumers.oms.account_store import ClosureCause, PendingClosure, Standing
from consumers.oms.funds_store import CashMovement, Positions
from consumers.oms.orders import Order, OrderState
from consumers.oms.positions import CashPosition, FillBooking, HoldingPosition
from consumers.oms.store import OmsBooks
from consumers.oms.vetting import Acceptance, Account, Exchange, ExchangeState, Instrument, Rejection
from schemas.accounts import AccountLogin, TradingAccountOpened, TradingAccountUpdated, VettingLimits
from schemas.authorisation import AccessRevoked, RevokedScope
from schemas.exchanges import ExchangeAdded, ExchangeUpdated, Market
from schemas.gateway import ExecutionReported, OmsAdapterRegistered, OmsAdapterStopped
from schemas.oms import AccountState, OrderOutcome
from schemas.operators import OperatorRegistered
from schemas.orders import OrderPlaced
from schemas.types import AccountRight


@dataclass
class StoredOperator:
    registered: OperatorRegistered
    deregistered: bool = False
    deregistered_reason: str | None = None


@dataclass
class StoredAccount:
    state: AccountState
    state_reason: str | None
    state_flow_id: str
    opened_by_flow: str
    allowed_exchanges: tuple[str, ...]
    limits: VettingLimits


@dataclass
class ListedExchange:
    adapter: str
    settles_through_registry: bool
    state: ExchangeState = ExchangeState.LISTED
    state_reason: str | None = None


@dataclass
class StoredInstrument:
    exchange: str
    market: str
    currency: str


@dataclass
class MemoryBooks(OmsBooks):
    operators: dict[str, StoredOperator] = field(default_factory=dict)
    accounts: dict[str, StoredAccount] = field(default_factory=dict)
    #: (account id, closure), in arrival order
    pending: list[tuple[str, PendingClosure]] = field(default_factory=list)
    #: (account id, login id) -> the rights granted, in force or not
    granted: dict[tuple[str, str], frozenset[AccountRight]] = field(default_factory=dict)
    disabled_logins: set[str] = field(default_factory=set)
    orders: dict[str, Order] = field(default_factory=dict)
    #: (exchange, venue trade id, order id) of each fill booked
    fills: set[tuple[str, str, str]] = field(default_factory=set)
    cash_positions: dict[tuple[str, str], CashPosition] = field(default_factory=dict)
    holdings: dict[tuple[str, str], HoldingPosition] = field(default_factory=dict)
    exchanges: dict[str, ListedExchange] = field(default_factory=dict)
    instruments: dict[str, StoredInstrument] = field(default_factory=dict)
    #: exchange -> (its adapter runs, why it was stopped)
    adapters: dict[str, tuple[bool, str | None]] = field(default_factory=dict)
    reference_prices: dict[str, Decimal] = field(default_factory=dict)
    #: instrument -> (time, venue trade id) -> price
    fill_prices: dict[str, dict[tuple[dt.datetime, str], Decimal]] = field(default_factory=dict)
    #: the deposits and withdrawals booked by the OMS itself (a deployment without the registry)
    cash_movements: list[CashMovement] = field(default_factory=list)

    # --- operators, accounts, rights --------------------------------------------------------------

    async def register_operator(self, event: OperatorRegistered, at: dt.datetime) -> None:
        self.operators[event.operator_id] = StoredOperator(event)

    async def deregister_operator(self, operator_id: str, reason: str | None, at: dt.datetime) -> None:
        known = self.operators.get(operator_id)
        if known is not None:
            known.deregistered, known.deregistered_reason = True, reason

    async def standing(self, account_id: str) -> Standing | None:
        known = self.accounts.get(account_id)
        return None if known is None else Standing(known.state, known.state_flow_id, known.opened_by_flow)

    async def open_account(self, event: TradingAccountOpened, flow_id: str, at: dt.datetime) -> None:
        assert event.account_id not in self.accounts, "the table's primary key refuses a second row"
        self.accounts[event.account_id] = StoredAccount(
            AccountState.ACTIVE, None, flow_id, flow_id, event.allowed_exchanges, event.vetting
        )

    async def update_account(self, event: TradingAccountUpdated, at: dt.datetime) -> bool:
        known = self.accounts.get(event.account_id)
        if known is None:
            return False
        if event.allowed_exchanges is not None:
            known.allowed_exchanges = event.allowed_exchanges
        if event.vetting is not None:
            known.limits = event.vetting
        return True

    async def set_account_state(
        self, account_id: str, state: AccountState, flow_id: str, reason: str | None, at: dt.datetime
    ) -> bool:
        known = self.accounts.get(account_id)
        if known is None or (known.state is state and known.state_flow_id == flow_id):
            return False
        known.state, known.state_flow_id, known.state_reason = state, flow_id, reason
        return True

    async def keep_pending_closure(
        self, account_id: str, flow_id: str, cause: ClosureCause, reason: str | None, at: dt.datetime
    ) -> None:
        if not any(a == account_id and p.flow_id == flow_id and p.cause is cause for a, p in self.pending):
            self.pending.append((account_id, PendingClosure(flow_id, cause, reason)))

    async def take_pending_closures(self, account_id: str) -> list[PendingClosure]:
        taken = [closure for account, closure in self.pending if account == account_id]
        self.pending = [(account, closure) for account, closure in self.pending if account != account_id]
        return taken

    async def vetting_account(self, account_id: str) -> Account | None:
        known = self.accounts.get(account_id)
        if known is None:
            return None
        return Account(account_id, known.state, known.state_reason, known.allowed_exchanges, known.limits)

    async def grant_rights(self, account_id: str, logins: Sequence[AccountLogin], flow_id: str) -> None:
        for login in logins:
            self.granted[(account_id, login.login_id)] = frozenset(login.rights)

    async def revoke_rights(self, revoked: AccessRevoked) -> None:
        if revoked.scope is RevokedScope.LOGIN:
            self.disabled_logins.add(revoked.subject_id)
            return
        account_id = revoked.account_id or revoked.subject_id
        for account, login in list(self.granted):
            if account == account_id and (revoked.scope is RevokedScope.ACCOUNT or login in revoked.login_ids):
                del self.granted[(account, login)]

    async def enable_login(self, login_id: str) -> None:
        self.disabled_logins.discard(login_id)

    async def rights(self, account_id: str, login_id: str) -> frozenset[AccountRight]:
        if login_id in self.disabled_logins:
            return frozenset()
        return self.granted.get((account_id, login_id), frozenset())

    # --- orders and positions ---------------------------------------------------------------------

    async def order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    async def order_id_taken(self, order_id: str) -> bool:
        return order_id in self.orders

    async def insert_rejected(self, placed: OrderPlaced, rejection: Rejection, at: dt.datetime) -> None:
        self._insert(placed, at, state=OrderState.REJECTED, rejection_code=rejection.code, reason=rejection.reason)

    async def insert_accepted(
        self, placed: OrderPlaced, acceptance: Acceptance, instrument: Instrument, exchange: Exchange, at: dt.datetime
    ) -> None:
        self._insert(
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

    def _insert(self, placed: OrderPlaced, at: dt.datetime, **columns: Any) -> None:
        """The row as the table's defaults and ``columns`` make it."""
        assert placed.order_id not in self.orders, "the table's primary key refuses a second row"
        placed_as = Order(
            order_id=placed.order_id,
            account_id=placed.account_id,
            login_id=placed.login_id,
            instrument=placed.instrument,
            side=placed.side,
            order_type=placed.order_type,
            quantity=placed.quantity,
            limit_price=placed.limit_price,
            lifetime=placed.lifetime,
            expiry_date=placed.expiry_date,
            state=OrderState.REJECTED,
            exchange=None,
            adapter=None,
            currency=None,
            price=None,
            protection_price=None,
            reserved=Decimal(0),
            held_back=0,
            filled_quantity=0,
            filled_value=Decimal(0),
            outcome=None,
            rejection_code=None,
            reason=None,
            placed_at=at,
            changed_at=at,
        )
        self.orders[placed.order_id] = _checked(dataclasses.replace(placed_as, **columns))

    async def fill_booked(self, report: ExecutionReported) -> bool:
        return _fill(report) in self.fills

    async def record_fill(self, report: ExecutionReported, at: dt.datetime) -> None:
        key = _fill(report)
        assert key not in self.fills, "the table's primary key refuses a second row"
        assert report.order_id in self.orders, "the table's foreign key refuses a fill of no order"
        self.fills.add(key)

    async def apply_fill(self, order_id: str, quantity: int, booking: FillBooking, at: dt.datetime) -> None:
        known = self.orders[order_id]
        self.orders[order_id] = _checked(
            dataclasses.replace(
                known,
                filled_quantity=known.filled_quantity + quantity,
                filled_value=known.filled_value + booking.value,
                reserved=known.reserved - booking.cash_released,
                held_back=known.held_back - booking.held_back_released,
                changed_at=at,
            )
        )

    async def set_order_state(self, order_id: str, state: OrderState, at: dt.datetime) -> None:
        self.orders[order_id] = _checked(dataclasses.replace(self.orders[order_id], state=state, changed_at=at))

    async def complete(self, order_id: str, outcome: OrderOutcome, reason: str | None, at: dt.datetime) -> Order:
        ended = dataclasses.replace(
            self.orders[order_id],
            state=OrderState.COMPLETED,
            outcome=outcome,
            reason=reason,
            reserved=Decimal(0),
            held_back=0,
            changed_at=at,
        )
        self.orders[order_id] = _checked(ended)
        return ended

    async def cash(self, account_id: str, currency: str) -> CashPosition | None:
        return self.cash_positions.get((account_id, currency))

    async def holding(self, account_id: str, instrument: str) -> HoldingPosition | None:
        return self.holdings.get((account_id, instrument))

    async def move_cash(
        self, account_id: str, currency: str, booked: Decimal = Decimal(0), reserved: Decimal = Decimal(0)
    ) -> None:
        known = self.cash_positions.get((account_id, currency), CashPosition(currency))
        moved = CashPosition(currency, known.balance + booked, known.unfilled_buys + reserved)
        assert moved.unfilled_buys >= 0, "the table's check refuses reserved cash below zero"
        self.cash_positions[(account_id, currency)] = moved

    async def move_holding(self, account_id: str, instrument: str, quantity: int = 0, held_back: int = 0) -> None:
        known = self.holdings.get((account_id, instrument), HoldingPosition(instrument))
        moved = HoldingPosition(instrument, known.quantity + quantity, known.unfilled_sells + held_back)
        assert 0 <= moved.unfilled_sells <= moved.quantity, (
            "the table's checks refuse a holding below what is held back"
        )
        self.holdings[(account_id, instrument)] = moved

    # --- cash movements of a deployment without the registry ---------------------------------------

    async def credit_under(self, account_id: str, reference: str) -> CashMovement | None:
        credits = (m for m in self.cash_movements if (m.account_id, m.reference) == (account_id, reference))
        return next((m for m in credits if m.delta > 0), None)

    async def record_cash_movement(self, movement: CashMovement) -> None:
        if movement.delta > 0:
            assert await self.credit_under(movement.account_id, movement.reference) is None, (
                "the table's unique key refuses a bank reference credited twice"
            )
        self.cash_movements.append(movement)

    async def positions(self, account_id: str) -> Positions:
        return Positions(
            tuple(position for (a, _), position in sorted(self.cash_positions.items()) if a == account_id),
            tuple(position for (a, _), position in sorted(self.holdings.items()) if a == account_id),
        )

    # --- exchanges --------------------------------------------------------------------------------

    async def add_exchange(self, event: ExchangeAdded, at: dt.datetime) -> None:
        self.exchanges[event.code] = ListedExchange(event.oms_adapter, event.settles_through_registry)
        self._replace_instruments(event.code, event.markets)

    async def update_exchange(self, event: ExchangeUpdated, at: dt.datetime) -> bool:
        known = self.exchanges.get(event.code)
        if known is None:
            return False
        known.adapter = event.oms_adapter or known.adapter
        if event.settles_through_registry is not None:
            known.settles_through_registry = event.settles_through_registry
        if event.markets is not None:
            self._replace_instruments(event.code, event.markets)
        return True

    async def set_exchange_state(
        self, code: str, state: ExchangeState, reason: str | None, at: dt.datetime
    ) -> ExchangeState | None:
        known = self.exchanges.get(code)
        if known is None:
            return None
        if known.state is not ExchangeState.REMOVED or state is ExchangeState.REMOVED:
            known.state, known.state_reason = state, reason
        return known.state

    async def markets_of_others(self, code: str, markets: Sequence[str]) -> dict[str, str]:
        return {i.market: i.exchange for i in self.instruments.values() if i.market in markets and i.exchange != code}

    async def add_instrument(self, exchange: str, instrument: str, market: str, currency: str) -> bool:
        if exchange not in self.exchanges:
            return False
        self.instruments[instrument] = StoredInstrument(exchange, market, currency)
        return True

    def _replace_instruments(self, code: str, markets: Sequence[Market]) -> None:
        self.instruments = {name: i for name, i in self.instruments.items() if i.exchange != code}
        for market in markets:
            for symbol in market.symbols:
                name = f"{symbol.code}.{market.code}"
                assert name not in self.instruments, "the table's primary key refuses a second row"
                self.instruments[name] = StoredInstrument(code, market.code, market.currency)

    async def register_adapter(self, event: OmsAdapterRegistered, at: dt.datetime) -> None:
        self.adapters[event.exchange] = (True, None)
        for price in event.reference_prices:
            self.reference_prices.setdefault(price.instrument, price.price)

    async def stop_adapter(self, event: OmsAdapterStopped, at: dt.datetime) -> None:
        self.adapters[event.exchange] = (False, event.reason)

    async def add_fill_price(self, instrument: str, price: Decimal, venue_trade_id: str, at: dt.datetime) -> None:
        self.fill_prices.setdefault(instrument, {}).setdefault((at, venue_trade_id), price)

    async def listing(self, instrument: str) -> tuple[Instrument, Exchange] | None:
        listed = self.instruments.get(instrument)
        if listed is None:
            return None
        fills = self.fill_prices.get(instrument)
        last_price = fills[max(fills)] if fills else self.reference_prices.get(instrument)
        exchange = self.exchanges[listed.exchange]
        running, stopped_reason = self.adapters.get(listed.exchange, (False, None))
        return (
            Instrument(instrument, listed.exchange, listed.currency, last_price),
            Exchange(
                listed.exchange,
                exchange.state,
                exchange.state_reason,
                exchange.adapter,
                exchange.settles_through_registry,
                running,
                stopped_reason,
            ),
        )


def _fill(report: ExecutionReported) -> tuple[str, str, str]:
    assert report.venue_trade_id is not None, "only a fill is looked up or booked"
    return report.exchange, report.venue_trade_id, report.order_id


def _checked(order: Order) -> Order:
    """The order, once it passes the ``orders`` table's checks."""
    assert order.reserved >= 0 and order.held_back >= 0, "the table's checks refuse a reservation below zero"
    assert 0 <= order.filled_quantity <= order.quantity, "the table's check refuses a fill beyond the quantity"
    assert (order.state is OrderState.COMPLETED) == (order.outcome is not None), "a completed order has an outcome"
    assert order.state is not OrderState.COMPLETED or not (order.reserved or order.held_back), "nor reserves anything"
    return order
