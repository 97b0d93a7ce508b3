"""An in-memory store with the protocol of the registry service's PostgreSQL store, for unit tests
of its rules on a FakeUnitOfWork. It keeps exactly what the rules read back; the SQL and its
constraints are proven by the real-stack tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from consumers.registry.store import (
    Credit,
    FailedOpening,
    HoldingMovement,
    Ledger,
    SettlementRow,
    StoredAccount,
    Token,
)
from schemas.accounts import Investor
from schemas.oms import AccountState


@dataclass
class Movement:
    account_id: str
    currency: str
    delta: Decimal
    balance_after: Decimal
    reference: str
    flow_id: str
    at: dt.datetime


@dataclass
class MemoryLedger(Ledger):
    #: operator id -> (login id, features, status, deregistration reason)
    operators: dict[str, tuple[str, list[str], str, str | None]] = field(default_factory=dict)
    investors: dict[str, Investor] = field(default_factory=dict)
    accounts: dict[str, StoredAccount] = field(default_factory=dict)
    #: account id -> the reason of its latest state change
    state_reasons: dict[str, str | None] = field(default_factory=dict)
    #: (account id, currency) -> settled cash
    cash: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    movements: list[Movement] = field(default_factory=list)
    #: (account id, instrument) -> quantity
    holdings: dict[tuple[str, str], int] = field(default_factory=dict)
    settlements: dict[tuple[str, str, str], SettlementRow] = field(default_factory=dict)
    failed_openings: dict[str, FailedOpening] = field(default_factory=dict)
    #: exchange code -> the flow of its latest ExchangeAdded (every exchange settles here)
    exchanges: dict[str, str] = field(default_factory=dict)
    #: market code -> exchange code
    registries: dict[str, str] = field(default_factory=dict)
    issuers: set[str] = field(default_factory=set)
    tokens: dict[str, Token] = field(default_factory=dict)
    holding_movements: list[HoldingMovement] = field(default_factory=list)

    async def register_operator(
        self, operator_id: str, login_id: str, features: list[str], flow_id: str, at: dt.datetime
    ) -> None:
        self.operators[operator_id] = (login_id, features, "registered", None)

    async def deregister_operator(self, operator_id: str, reason: str | None, at: dt.datetime) -> bool:
        known = self.operators.get(operator_id)
        if known is None:
            return False
        self.operators[operator_id] = (known[0], known[1], "deregistered", reason)
        return True

    async def find_investor(self, investor_id: str) -> Investor | None:
        return self.investors.get(investor_id)

    async def insert_investor(self, investor: Investor, at: dt.datetime) -> None:
        self.investors.setdefault(investor.investor_id, investor)

    async def fill_pii_hash(self, investor_id: str, pii_hash: str) -> None:
        known = self.investors[investor_id]
        if known.pii_hash is None:
            self.investors[investor_id] = known.model_copy(update={"pii_hash": pii_hash})

    async def find_account(self, account_id: str) -> StoredAccount | None:
        return self.accounts.get(account_id)

    async def account_opened_by(self, flow_id: str) -> StoredAccount | None:
        return next((a for a in self.accounts.values() if a.opening_flow_id == flow_id), None)

    async def insert_account(
        self, *, account_id: str, investor_id: str, owner: str, name: str, currency: str, flow_id: str, at: dt.datetime
    ) -> None:
        assert account_id not in self.accounts, "the table's primary key refuses a second row"
        self.accounts[account_id] = StoredAccount(account_id, investor_id, AccountState.ACTIVE, flow_id)
        self.cash[(account_id, currency)] = Decimal(0)

    async def set_state(self, account_id: str, state: AccountState, reason: str | None, at: dt.datetime) -> None:
        self.accounts[account_id] = dataclasses.replace(self.accounts[account_id], state=state)
        self.state_reasons[account_id] = reason

    async def settled_cash(self, account_id: str, currency: str) -> Decimal:
        return self.cash.get((account_id, currency), Decimal(0))

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
        assert delta < 0 or await self.credit_under(account_id, reference) is None, (
            "the ledger's unique key refuses a second credit of a bank reference"
        )
        self.cash[(account_id, currency)] = balance
        self.movements.append(Movement(account_id, currency, delta, balance, reference, flow_id, at))

    async def credit_under(self, account_id: str, reference: str) -> Credit | None:
        return next(
            (
                Credit(m.flow_id, m.delta, m.currency, m.at)
                for m in self.movements
                if m.account_id == account_id and m.reference == reference and m.delta > 0
            ),
            None,
        )

    async def nonzero_cash(self, account_id: str) -> dict[str, Decimal]:
        return {c: amount for (a, c), amount in sorted(self.cash.items()) if a == account_id and amount != 0}

    async def nonzero_holdings(self, account_id: str) -> dict[str, int]:
        return {i: quantity for (a, i), quantity in sorted(self.holdings.items()) if a == account_id and quantity != 0}

    async def remember_failed_opening(
        self, flow_id: str, account_id: str, service: str, step: str, reason: str, at: dt.datetime
    ) -> None:
        self.failed_openings.setdefault(flow_id, FailedOpening(flow_id, service, step, reason))

    async def take_failed_opening(self, flow_id: str) -> FailedOpening | None:
        return self.failed_openings.pop(flow_id, None)

    async def put_exchange(self, code: str, flow_id: str, at: dt.datetime) -> None:
        self.exchanges[code] = flow_id

    async def holding(self, account_id: str, instrument: str) -> int:
        return self.holdings.get((account_id, instrument), 0)

    async def settled_already(self, exchange: str, venue_trade_id: str, order_id: str) -> bool:
        return (exchange, venue_trade_id, order_id) in self.settlements

    async def book_settlement(self, row: SettlementRow, event_id: str, at: dt.datetime) -> None:
        assert row.holding_after >= 0, "the table's check refuses a negative holding"
        self.cash[(row.account_id, row.currency)] = row.cash_after
        self.holdings[(row.account_id, row.instrument)] = row.holding_after
        self.settlements[(row.exchange, row.venue_trade_id, row.order_id)] = row

    async def define_registry(self, market: str, exchange: str, flow_id: str, at: dt.datetime) -> None:
        self.registries[market] = exchange

    async def define_token(self, token: Token, flow_id: str, at: dt.datetime) -> None:
        assert token.registry in self.registries, "the table's foreign key refuses a token of no registry"
        self.issuers.add(token.issuer)
        self.tokens[token.code] = token

    async def token_defined(self, code: str) -> bool:
        return code in self.tokens

    async def movement_under(self, account_id: str, reference: str) -> HoldingMovement | None:
        return next(
            (m for m in self.holding_movements if m.account_id == account_id and m.reference == reference), None
        )

    async def book_holding_movement(self, movement: HoldingMovement) -> None:
        assert await self.movement_under(movement.account_id, movement.reference) is None, (
            "the table's unique key refuses a second movement under a reference"
        )
        assert movement.holding_after >= 0, "the table's check refuses a negative holding"
        self.holdings[(movement.account_id, movement.token)] = movement.holding_after
        self.holding_movements.append(movement)
