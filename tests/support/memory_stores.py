"""In-memory stores with the protocols of the services' PostgreSQL stores, for unit tests of the
services' rules on a FakeUnitOfWork. Each keeps exactly what its rules read back; the SQL and its
constraints are proven by the real-stack tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from consumers.authentication.store import Logins
from consumers.gateway.store import Exchange, ExchangeState, GatewayStore, MarketClose
from consumers.gateway.trading_days import last_closed
from consumers.market_data.store import Feed, Feeds, instrument_count
from consumers.provisioning.flows import FlowPlan, FlowState, Report, StepState, service_of
from consumers.provisioning.store import Flow, Flows, OverdueFlow
from consumers.registry.store import FailedOpening, Ledger, SettlementRow, StoredAccount
from consumers.sessions.pools import Limits
from consumers.sessions.store import SessionsStore
from schemas import Envelope
from schemas.accounts import Investor
from schemas.exchanges import ExchangeAdded, ExchangeUpdated, Market
from schemas.oms import AccountState
from schemas.provisioning import FlowKind
from schemas.users import SessionPolicy, UserCreated, UserUpdated


@dataclass
class StoredLogin:
    username: str
    email: str
    display_name: str
    status: str
    status_reason: str | None
    created_flow_id: str
    updated_at: dt.datetime


@dataclass
class MemoryLogins(Logins):
    rows: dict[str, StoredLogin] = field(default_factory=dict)

    async def login_status(self, login_id: str) -> str | None:
        login = self.rows.get(login_id)
        return None if login is None else login.status

    async def insert_login(self, event: UserCreated, flow_id: str, at: dt.datetime) -> None:
        assert event.login_id not in self.rows, "the table's primary key refuses a second row"
        self.rows[event.login_id] = StoredLogin(
            event.username, str(event.email), event.display_name, "active", None, flow_id, at
        )

    async def update_profile(self, event: UserUpdated, at: dt.datetime) -> None:
        login = self.rows.get(event.login_id)
        if login is None:
            return
        login.username = event.username or login.username
        login.email = str(event.email) if event.email else login.email
        login.display_name = event.display_name or login.display_name
        login.updated_at = at

    async def set_status(self, login_id: str, status: str, reason: str | None, at: dt.datetime) -> None:
        login = self.rows.get(login_id)
        if login is not None:
            login.status, login.status_reason, login.updated_at = status, reason, at


@dataclass
class SessionsRow:
    policy: SessionPolicy | None = None
    #: Assigned from the policy; None when the policy was refused (an unknown pool).
    limits: Limits | None = None
    disabled: bool = False
    ended_reason: str | None = None
    changed_at: dt.datetime | None = None


@dataclass
class MemorySessions(SessionsStore):
    rows: dict[str, SessionsRow] = field(default_factory=dict)

    async def save_policy(self, login_id: str, policy: SessionPolicy, limits: Limits | None, at: dt.datetime) -> bool:
        row = self.rows.setdefault(login_id, SessionsRow())
        row.policy, row.limits, row.changed_at = policy, limits, at
        return row.disabled

    async def end_sessions(self, login_id: str, reason: str, at: dt.datetime) -> None:
        row = self.rows.setdefault(login_id, SessionsRow())
        row.disabled, row.ended_reason, row.changed_at = True, reason, at

    async def enable(self, login_id: str, at: dt.datetime) -> SessionPolicy | None:
        row = self.rows.get(login_id)
        if row is None:
            return None
        row.disabled, row.ended_reason, row.changed_at = False, None, at
        return row.policy

    async def forget(self, login_id: str) -> None:
        self.rows.pop(login_id, None)


_OPEN = (StepState.EXPECTED, StepState.WAITING, StepState.MANUAL)


@dataclass
class FlowRow:
    flow_id: str
    kind: FlowKind
    entity_id: str
    started_by: str
    correlation_id: str
    started_at: dt.datetime
    seq: int
    state: FlowState = FlowState.OPEN
    overdue_at: dt.datetime | None = None


@dataclass
class StepRow:
    step: str
    position: int
    service: str
    state: StepState
    updated_at: dt.datetime | None = None
    reason: str | None = None


@dataclass
class MemoryFlows(Flows):
    flows: dict[str, FlowRow] = field(default_factory=dict)
    steps: dict[str, dict[str, StepRow]] = field(default_factory=dict)
    early: list[Report] = field(default_factory=list)
    logins: dict[str, bool] = field(default_factory=dict)

    async def create_flow(self, flow_id: str, plan: FlowPlan, cause: Envelope) -> bool:
        if flow_id in self.flows:
            return False
        self.flows[flow_id] = FlowRow(
            flow_id, plan.kind, plan.entity_id, cause.type, cause.correlation_id, cause.time, len(self.flows)
        )
        manual = {m.step: m.instructions for m in plan.manual}
        self.steps[flow_id] = {
            step: StepRow(step, position, service_of(step), StepState.EXPECTED)
            if step not in manual
            else StepRow(step, position, service_of(step), StepState.MANUAL, cause.time, manual[step])
            for position, step in enumerate(plan.steps)
        }
        return True

    async def flow(self, flow_id: str) -> Flow | None:
        row = self.flows.get(flow_id)
        if row is None:
            return None
        return Flow(row.flow_id, row.kind, row.entity_id, row.started_by, row.correlation_id, row.state)

    async def latest_user_flow(self, login_id: str, started_by: str) -> str | None:
        mine = [
            row
            for row in self.flows.values()
            if row.kind is FlowKind.USER and row.entity_id == login_id and row.started_by == started_by
        ]
        return max(mine, key=lambda row: (row.started_at, row.seq)).flow_id if mine else None

    async def step_state(self, flow_id: str, step: str) -> StepState | None:
        row = self.steps.get(flow_id, {}).get(step)
        return None if row is None else row.state

    async def mark_done(self, flow_id: str, step: str, at: dt.datetime) -> None:
        row = self.steps.get(flow_id, {}).get(step)
        if row is not None and row.state in _OPEN:
            row.state, row.updated_at, row.reason = StepState.DONE, at, None

    async def mark_waiting(self, flow_id: str, step: str, at: dt.datetime, reason: str) -> None:
        row = self.steps.get(flow_id, {}).get(step)
        if row is not None and row.state in (StepState.EXPECTED, StepState.WAITING):
            row.state, row.updated_at, row.reason = StepState.WAITING, at, reason

    async def mark_failed(self, flow_id: str, step: str, service: str, at: dt.datetime, reason: str) -> None:
        steps = self.steps.setdefault(flow_id, {})
        if step not in steps:
            steps[step] = StepRow(
                step, max((s.position + 1 for s in steps.values()), default=0), service, StepState.FAILED
            )
        steps[step].state, steps[step].updated_at, steps[step].reason = StepState.FAILED, at, reason

    async def fail_flow(self, flow_id: str, at: dt.datetime) -> bool:
        row = self.flows.get(flow_id)
        if row is None or row.state is not FlowState.OPEN:
            return False
        row.state = FlowState.FAILED
        return True

    async def complete_if_done(self, flow_id: str, at: dt.datetime) -> tuple[str, ...] | None:
        row = self.flows.get(flow_id)
        steps = sorted(self.steps.get(flow_id, {}).values(), key=lambda s: s.position)
        if row is None or row.state is not FlowState.OPEN or any(s.state is not StepState.DONE for s in steps):
            return None
        row.state = FlowState.COMPLETED
        return tuple(s.step for s in steps)

    async def keep_early(self, report: Report) -> None:
        if all(kept.event_id != report.event_id for kept in self.early):
            self.early.append(report)

    async def take_early(self, flow_id: str) -> list[Report]:
        taken = [report for report in self.early if report.flow_id == flow_id]
        self.early = [report for report in self.early if report.flow_id != flow_id]
        return taken

    async def remember_login(self, login_id: str, has_session_policy: bool, at: dt.datetime) -> None:
        self.logins[login_id] = has_session_policy

    async def has_session_policy(self, login_id: str) -> bool:
        return self.logins.get(login_id, False)

    async def mark_overdue(self, now: dt.datetime, after: dt.timedelta, limit: int = 1_000) -> list[OverdueFlow]:
        due = sorted(
            (
                row
                for row in self.flows.values()
                if row.state is FlowState.OPEN
                and row.overdue_at is None
                and row.started_at <= now - after
                and any(s.state in _OPEN for s in self.steps[row.flow_id].values())
            ),
            key=lambda row: (row.started_at, row.flow_id),
        )[:limit]
        overdue = []
        for row in due:
            row.overdue_at = now
            silent = sorted((s for s in self.steps[row.flow_id].values() if s.state in _OPEN), key=lambda s: s.position)
            overdue.append(
                OverdueFlow(
                    row.flow_id,
                    row.kind,
                    row.entity_id,
                    row.correlation_id,
                    row.started_at,
                    tuple(s.step for s in silent),
                )
            )
        return overdue


@dataclass
class MemoryGateway(GatewayStore):
    exchanges: dict[str, Exchange] = field(default_factory=dict)
    #: Each instrument's adapter state as stored (JSON, as the table keeps it) and its exchange.
    adapter_states: dict[str, tuple[str, str]] = field(default_factory=dict)
    markets: dict[tuple[str, str], MarketClose] = field(default_factory=dict)

    async def put_exchange(self, event: ExchangeAdded, at: dt.datetime) -> None:
        currencies = {market.code: market.currency for market in event.markets}
        self.exchanges[event.code] = Exchange(
            event.code, event.oms_adapter, event.settles_through_registry, currencies, ExchangeState.ACTIVE, None
        )

    async def update_exchange(self, event: ExchangeUpdated, at: dt.datetime) -> bool:
        known = self.exchanges.get(event.code)
        if known is None:
            return False
        currencies = {m.code: m.currency for m in event.markets} if event.markets is not None else None
        self.exchanges[event.code] = Exchange(
            known.code,
            event.oms_adapter or known.adapter,
            known.settles_through_registry
            if event.settles_through_registry is None
            else event.settles_through_registry,
            known.market_currencies if currencies is None else currencies,
            known.state,
            known.state_reason,
        )
        return True

    async def stop_exchange(self, code: str, state: ExchangeState, reason: str, at: dt.datetime) -> None:
        known = self.exchanges.get(code)
        if known is not None and known.state is not ExchangeState.REMOVED:
            self.exchanges[code] = Exchange(
                code, known.adapter, known.settles_through_registry, known.market_currencies, state, reason
            )

    async def exchange(self, code: str) -> Exchange | None:
        return self.exchanges.get(code)

    async def adapter_state(self, instrument: str) -> dict[str, Any] | None:
        stored = self.adapter_states.get(instrument)
        return None if stored is None else dict(json.loads(stored[1]))

    async def save_adapter_state(self, instrument: str, exchange: str, state: Any, at: dt.datetime) -> None:
        self.adapter_states[instrument] = (exchange, json.dumps(state, sort_keys=True, separators=(",", ":")))

    async def put_markets(self, exchange: str, markets: Sequence[Market], at: dt.datetime) -> None:
        for market in markets:
            close = market.trading_hours.close.replace(tzinfo=None)
            known = self.markets.get((exchange, market.code))
            ended = known.ended_through if known is not None else last_closed(at, market.time_zone, close)
            self.markets[(exchange, market.code)] = MarketClose(exchange, market.code, market.time_zone, close, ended)
        listed = {market.code for market in markets}
        for key in [key for key in self.markets if key[0] == exchange and key[1] not in listed]:
            del self.markets[key]

    async def markets_of_active_exchanges(self) -> list[MarketClose]:
        return [
            market
            for key, market in sorted(self.markets.items())
            if self.exchanges[key[0]].state is ExchangeState.ACTIVE
        ]

    async def instruments_with_state(self, market: MarketClose) -> list[str]:
        return sorted(
            instrument
            for instrument, (exchange, _) in self.adapter_states.items()
            if exchange == market.exchange and instrument.split(".", 1)[1] == market.market
        )

    async def end_day(self, market: MarketClose, trading_date: dt.date) -> None:
        key = (market.exchange, market.market)
        known = self.markets[key]
        self.markets[key] = MarketClose(known.exchange, known.market, known.time_zone, known.close, trading_date)


@dataclass
class MemoryFeeds(Feeds):
    feeds: dict[str, Feed] = field(default_factory=dict)

    async def feed(self, exchange: str) -> Feed | None:
        return self.feeds.get(exchange)

    async def put_feed(self, definition: ExchangeAdded, *, reason: str | None, flow_id: str, at: dt.datetime) -> None:
        known = self.feeds.get(definition.code)
        self.feeds[definition.code] = Feed(
            exchange=definition.code,
            plugin=definition.market_data_plugin,
            definition=definition,
            instruments=instrument_count(definition),
            state="running" if reason is None else "stopped",
            reason=reason,
            flow_id=flow_id,
            revision=1 if known is None else known.revision + 1,
            changed_at=at,
        )

    async def stop_feed(self, exchange: str, *, reason: str, flow_id: str, at: dt.datetime) -> None:
        known = self.feeds.get(exchange)
        if known is not None:
            self.feeds[exchange] = dataclasses.replace(
                known, state="stopped", reason=reason, flow_id=flow_id, changed_at=at
            )

    async def keep_definition(self, definition: ExchangeAdded, *, flow_id: str, at: dt.datetime) -> None:
        known = self.feeds.get(definition.code)
        if known is not None:
            self.feeds[definition.code] = dataclasses.replace(
                known,
                plugin=definition.market_data_plugin,
                definition=definition,
                instruments=instrument_count(definition),
                flow_id=flow_id,
                changed_at=at,
            )


@dataclass
class Movement:
    account_id: str
    currency: str
    delta: Decimal
    balance_after: Decimal
    reference: str
    flow_id: str


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
    exchanges: dict[str, bool] = field(default_factory=dict)

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
        self.cash[(account_id, currency)] = balance
        self.movements.append(Movement(account_id, currency, delta, balance, reference, flow_id))

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

    async def put_exchange(self, code: str, settles: bool, flow_id: str, at: dt.datetime) -> None:
        self.exchanges[code] = settles

    async def exchange_settles(self, code: str) -> bool | None:
        return self.exchanges.get(code)

    async def holding(self, account_id: str, instrument: str) -> int:
        return self.holdings.get((account_id, instrument), 0)

    async def settled_already(self, exchange: str, venue_trade_id: str, order_id: str) -> bool:
        return (exchange, venue_trade_id, order_id) in self.settlements

    async def book_settlement(self, row: SettlementRow, event_id: str, at: dt.datetime) -> None:
        assert row.holding_after >= 0, "the table's check refuses a negative holding"
        self.cash[(row.account_id, row.currency)] = row.cash_after
        self.holdings[(row.account_id, row.instrument)] = row.holding_after
        self.settlements[(row.exchange, row.venue_trade_id, row.order_id)] = row
