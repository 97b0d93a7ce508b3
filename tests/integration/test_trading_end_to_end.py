"""Trading end to end on the real stack, every service running: Prodigy is added with two
markets, accounts are opened and funded, thousands of orders come from several logins, a second
exchange is added while they flow. Every order must end in a final state, the registry's cash and
holdings must be what the executions on the gateway's topic imply (and the OMS's the same),
nothing may be dead-lettered; and a hypothesis property holds conservation over random order
streams: no cash created or lost, no holding below zero.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.market_data import queries as market_data
from consumers.oms import queries as oms
from consumers.registry import queries as registry
from consumers.runtime.dead_letters import schema_connection
from consumers.runtime.runner import ServiceRunner
from exchanges import load_oms_adapter
from infrastructure.kafka_clients import topic_reader
from infrastructure.reader import read_topic, topic_partitions
from infrastructure.settings import Settings
from producers import Outgoing, Published, Publisher, open_publisher
from schemas import Event, event_types
from schemas.accounts import AccountLogin, Investor, TradingAccountOpened, TradingAccountUpdated, VettingLimits
from schemas.gateway import ExecutionKind, ExecutionReported
from schemas.orders import OrderCancelRequested, OrderPlaced
from schemas.types import AccountRight, InvestorType, OrderLifetime, OrderSide, OrderType, Role
from schemas.users import UserCreated, UserDisabled, UserEnabled
from tests.conftest import Stack
from tests.support.all_services import SERVICES, eventually, running
from tests.support.service_under_test import module_settings
from xbus.scenario import build_scenario
from xbus.trading import CENT, TradingAccount, build_trading, instruments, prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

TRADING = (*SERVICES, "gateway", "market_data")
DEPOSIT = Decimal("20000")
#: What every account gets before trading on the second exchange: more than trading on the first
#: can have left it, so that the OMS having booked it is visible (and its buys cannot all fail).
TOP_UP = Decimal("1000000")
FIRST = prodigy_exchange("XSX", markets=2, symbols=4)
SECOND = prodigy_exchange("XSY", markets=1, symbols=3)


@dataclass
class Bus:
    settings: Settings
    publisher: Publisher
    db: asyncpg.Connection
    runners: dict[str, ServiceRunner]

    def schema(self, service: str) -> str:
        return self.settings.db_schema(service)

    async def publish(self, events: Iterable[Event | Outgoing]) -> None:
        results = await self.publisher.publish_many(list(events))
        failed = [result for result in results if not isinstance(result, Published)]
        assert not failed, failed[:3]

    def connected(self, service: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A connection on ``service``'s schema: what its queries.py takes."""
        return schema_connection(self.settings.database_url or "", self.schema(service))

    async def flow_completed(self, entity_id: str) -> bool:
        if not await self.db.fetchval("select to_regclass($1)", f"{self.schema('provisioning')}.flows"):
            return False  # the tracker has not migrated yet
        state = await self.db.fetchval(
            f"select state from {self.schema('provisioning')}.flows where entity_id = $1 order by started_at limit 1",
            entity_id,
        )
        return state == "completed"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bus(stack: Stack) -> AsyncIterator[Bus]:
    """Every service on topics and schemas of this module, with Prodigy's XSX added."""
    settings = await module_settings(stack)
    db = await asyncpg.connect(settings.database_url or "")
    async with (
        open_publisher(settings) as publisher,
        running(settings, TRADING) as runners,
    ):
        bus = Bus(settings, publisher, db, runners)
        await eventually(lambda: _migrated(bus), 60, "every service migrated")
        await bus.publish([FIRST])
        await eventually(lambda: bus.flow_completed(FIRST.code), 60, "XSX onboarded")
        yield bus
    await db.close()


async def test_thousands_of_orders_end_in_a_final_state_and_settle_to_what_the_executions_imply(bus: Bus) -> None:
    people = build_scenario(operators=0, users=30, accounts=20, seed=21)
    opened = [outgoing.event for outgoing in people.accounts if isinstance(outgoing.event, TradingAccountOpened)]
    accounts = [TradingAccount(a.account_id, tuple(login.login_id for login in a.logins)) for a in opened]
    adapter = load_oms_adapter("prodigy")
    first_prices = dict(adapter.reference_prices(FIRST))
    trading = build_trading(accounts, first_prices, orders=2000, deposit=DEPOSIT, seed=4)
    await bus.publish(people.shuffled(seed=2))
    await bus.publish(trading.deposits)
    await _ready_to_trade(bus, accounts, DEPOSIT)

    half = len(trading.orders) // 2
    await bus.publish(trading.orders[:half])
    # a second exchange arrives while the first one's orders flow; half the accounts may use it
    await bus.publish([SECOND])
    widened = accounts[::2]
    await bus.publish(
        TradingAccountUpdated(account_id=account.account_id, allowed_exchanges=(FIRST.code, SECOND.code))
        for account in widened
    )
    later = build_trading(accounts, dict(adapter.reference_prices(SECOND)), 300, deposit=TOP_UP, seed=5)
    await bus.publish(trading.orders[half:])
    await bus.publish(later.deposits)
    await eventually(lambda: bus.flow_completed(SECOND.code), 90, "XSY onboarded")
    await _topped_up(bus, later.deposits)
    await bus.publish(later.orders)
    await bus.publish([*trading.cancels, *later.cancels])

    placed = [*trading.order_ids(), *later.order_ids()]
    await _all_final(bus, placed)
    executions = await _executions(bus.settings)
    await _all_settled(bus, executions)

    for service in TRADING:
        assert await bus.db.fetchval(f"select count(*) from {bus.schema(service)}.xbus_dead_letters") == 0, service
    outcomes = await _outcomes(bus, placed)
    assert sum(outcomes.values()) == len(placed), outcomes
    assert outcomes["filled"] > 100 and outcomes["cancelled"] > 0, outcomes
    codes = await _rejection_codes(bus, placed)
    assert {"Xbus.Login.NoTradeRight", "Xbus.Exchange.NotAllowed"} <= set(codes), codes

    cash, holdings = _implied(executions, {account.account_id for account in accounts})
    async with bus.connected("registry") as connection:
        for account in accounts:
            assert await registry.cash(connection, account.account_id) == {
                "AUD": DEPOSIT + TOP_UP + cash[account.account_id]
            }
            held = {i: q for (a, i), q in holdings.items() if a == account.account_id and q != 0}
            assert await registry.holdings(connection, account.account_id) == held
    async with bus.connected("oms") as connection:
        for account in accounts:
            positions = await oms.positions(connection, account.account_id)
            aud = positions.cash_in("AUD")
            assert (aud.balance, aud.unfilled_buys) == (DEPOSIT + TOP_UP + cash[account.account_id], 0), (
                account.account_id
            )
            assert all(holding.unfilled_sells == 0 for holding in positions.holdings)
    assert all(quantity >= 0 for quantity in holdings.values())
    # conservation across the platform: what left the accounts is what the buys cost, less what sells brought
    bought = sum(e.fill_quantity * (e.fill_price or 0) for e in executions if e.side is OrderSide.BUY)
    sold = sum(e.fill_quantity * (e.fill_price or 0) for e in executions if e.side is OrderSide.SELL)
    assert sum(cash.values()) == sold - bought
    traded_second = {e.instrument for e in executions if e.exchange == SECOND.code and e.kind is ExecutionKind.FILLED}
    assert traded_second, await _outcomes_on(bus, later.order_ids(), instruments(SECOND))

    async with bus.connected("market_data") as connection:
        await eventually(
            lambda: _has_state(connection, [*instruments(FIRST), *instruments(SECOND)]), 60, "market data of both"
        )


order_streams = st.lists(
    st.tuples(
        st.integers(0, 2),  # account
        st.sampled_from(instruments(FIRST)[:3]),
        st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
        st.sampled_from([OrderType.MARKET, OrderType.LIMIT]),
        st.integers(-9, 9),  # limit price, per cent from the reference
        st.integers(1, 60),
        st.sampled_from(
            [OrderLifetime.GOOD_TILL_CANCEL, OrderLifetime.IMMEDIATE_OR_CANCEL, OrderLifetime.FILL_OR_KILL]
        ),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=order_streams)
async def test_random_order_streams_create_or_lose_no_cash_and_leave_no_holding_below_zero(
    bus: Bus, stream: list[tuple[int, str, OrderSide, OrderType, int, int, OrderLifetime]]
) -> None:
    accounts = await _property_accounts(bus)
    prices = load_oms_adapter("prodigy").reference_prices(FIRST)
    before = {account.account_id: await _registry_state(bus, account.account_id) for account in accounts}
    example = uuid.uuid4().hex[:8]
    orders = [
        OrderPlaced(
            order_id=f"p-{example}-{n}",
            account_id=accounts[index].account_id,
            login_id=accounts[index].logins[0],
            instrument=instrument,
            side=side,
            order_type=order_type,
            quantity=quantity,
            limit_price=(prices[instrument] * (100 + percent) / 100).quantize(CENT)
            if order_type is OrderType.LIMIT
            else None,
            lifetime=lifetime,
        )
        for n, (index, instrument, side, order_type, percent, quantity, lifetime) in enumerate(stream)
    ]
    cancels = [OrderCancelRequested(order_id=o.order_id, account_id=o.account_id, login_id=o.login_id) for o in orders]
    await bus.publish([*orders, *cancels])
    await _all_final(bus, [order.order_id for order in orders])
    fills = await bus.db.fetch(
        f"select o.account_id, o.side, o.instrument, f.quantity, f.price from {bus.schema('oms')}.fills f "
        f"join {bus.schema('oms')}.orders o using (order_id) where o.order_id = any($1::text[])",
        [order.order_id for order in orders],
    )
    await eventually(
        lambda: _settled_orders(bus, [order.order_id for order in orders], len(fills)), 60, "fills settled"
    )

    for account in accounts:
        cash_before, holdings_before = before[account.account_id]
        cash_after, holdings_after = await _registry_state(bus, account.account_id)
        own = [fill for fill in fills if fill["account_id"] == account.account_id]
        paid = sum(f["quantity"] * f["price"] for f in own if f["side"] == "BUY")
        received = sum(f["quantity"] * f["price"] for f in own if f["side"] == "SELL")
        assert cash_after == cash_before - paid + received, "cash created or lost"
        moved: Counter[str] = Counter()
        for fill in own:
            moved[fill["instrument"]] += fill["quantity"] if fill["side"] == "BUY" else -fill["quantity"]
        for instrument in set(holdings_before) | set(holdings_after) | set(moved):
            assert holdings_after.get(instrument, 0) == holdings_before.get(instrument, 0) + moved[instrument]
            assert holdings_after.get(instrument, 0) >= 0, "a holding went below zero"


_PROPERTY_ACCOUNTS: list[TradingAccount] = []


async def _property_accounts(bus: Bus) -> list[TradingAccount]:
    """Three funded accounts with one trading login each, opened once for every example."""
    if _PROPERTY_ACCOUNTS:
        return _PROPERTY_ACCOUNTS
    suffix = uuid.uuid4().hex[:6]
    accounts = [TradingAccount(f"XS:P{suffix}{n}", (str(uuid.uuid4()),)) for n in range(3)]
    for account in accounts:
        login = account.logins[0]
        await bus.publish(
            [
                UserCreated(
                    login_id=login,
                    username=f"prop-{login[:8]}",
                    email=f"prop-{login[:8]}@example.com",
                    display_name="Property trader",
                    roles=(Role.MOTIF_USER,),
                ),
                TradingAccountOpened(
                    account_id=account.account_id,
                    owner="XS",
                    name="Property account",
                    classification="Retail",
                    default_currency="AUD",
                    investor=Investor(
                        investor_id=f"INV-{account.account_id}",
                        full_name="Property Investor",
                        country="AU",
                        type=InvestorType.INDIVIDUAL,
                    ),
                    logins=(AccountLogin(login_id=login, rights=(AccountRight.VIEW, AccountRight.TRADE)),),
                    allowed_exchanges=(FIRST.code,),
                    vetting=VettingLimits(),
                ),
            ]
        )
    await bus.publish(build_trading(accounts, {}, 0, deposit=DEPOSIT, seed=99).deposits)
    await _ready_to_trade(bus, accounts, DEPOSIT)
    _PROPERTY_ACCOUNTS.extend(accounts)
    return accounts


async def _ready_to_trade(bus: Bus, accounts: list[TradingAccount], cash: Decimal) -> None:
    """Wait until the OMS knows every account's trading login and has at least ``cash`` booked."""
    ids = [account.account_id for account in accounts]
    async with bus.connected("oms") as connection, bus.connected("registry") as books:

        async def where_it_stands() -> str:
            lines = []
            for account_id in ids:
                if await oms.tradable_accounts(connection, [account_id], cash):
                    continue
                booked = {c.currency: c.balance for c in (await oms.positions(connection, account_id)).cash}
                lines.append(f"{account_id}: oms {booked}, registry {await registry.cash(books, account_id)}")
            applied = {name: vars(runner.stats) for name, runner in bus.runners.items()}
            return "\n".join([*lines, f"services: {applied}"])

        await eventually(
            lambda: _all_of(oms.tradable_accounts(connection, ids, cash), len(ids)),
            180,
            "accounts opened, funded and tradable in the OMS",
            where_it_stands,
        )


async def _topped_up(bus: Bus, deposits: Sequence[Outgoing]) -> None:
    """Wait until every deposit's flow has completed and the OMS's books equal the registry's for
    its account. Not "booked cash at least the top-up": the second half's orders may already
    spend it, so that figure may never be reached (it failed so once, on Apache Kafka)."""
    flows = [deposit.event_id for deposit in deposits]
    account_ids = sorted({deposit.event.aggregate_id for deposit in deposits})
    completed = (
        f"select count(*) from {bus.schema('provisioning')}.flows where flow_id = any($1) and state = 'completed'"
    )

    async def deposited() -> bool:
        return int(await bus.db.fetchval(completed, flows)) == len(flows)

    await eventually(deposited, 180, "the top-ups' flows completed")
    async with bus.connected("oms") as connection, bus.connected("registry") as books:

        async def mirrored() -> bool:
            for account_id in account_ids:
                booked = {c.currency: c.balance for c in (await oms.positions(connection, account_id)).cash}
                if booked != await registry.cash(books, account_id):
                    return False
            return True

        await eventually(mirrored, 180, "the OMS's cash equal to the registry's after the top-ups")


async def _all_final(bus: Bus, order_ids: list[str]) -> None:
    async with bus.connected("oms") as connection:

        async def open_orders() -> str:
            outcomes = await oms.order_outcomes(connection, order_ids)
            return ", ".join(f"{how}={n}" for how, n in sorted(outcomes.items()))

        await eventually(
            lambda: _all_of(oms.orders_over(connection, order_ids), len(order_ids)),
            300,
            f"{len(order_ids)} orders in a final state",
            open_orders,
        )


async def _migrated(bus: Bus) -> bool:
    for service in TRADING:
        if not await bus.db.fetchval("select to_regclass($1)", f"{bus.schema(service)}.xbus_dead_letters"):
            return False
    return True


async def _all_of(count: Awaitable[int], total: int) -> bool:
    return await count == total


async def _settled_orders(bus: Bus, order_ids: list[str], fills: int) -> bool:
    settled = await bus.db.fetchval(
        f"select count(*) from {bus.schema('registry')}.settlements where order_id = any($1::text[])", order_ids
    )
    return settled == fills


async def _all_settled(bus: Bus, executions: list[ExecutionReported]) -> None:
    fills = sum(1 for e in executions if e.kind is ExecutionKind.FILLED)

    async def settled() -> bool:
        return await bus.db.fetchval(f"select count(*) from {bus.schema('registry')}.settlements") == fills

    await eventually(settled, 120, f"{fills} fills settled")


async def _executions(settings: Settings) -> list[ExecutionReported]:
    async with topic_reader(settings, settings.kafka_bootstrap or "") as (admin, consumer):
        partitions = await topic_partitions(admin, settings.topic("xosp.gateway.events"))
        reports = [
            event_types.parse(read.envelope.type, read.data)
            async for read in read_topic(consumer, partitions, idle_ms=200)
            if read.envelope is not None and read.envelope.type == ExecutionReported.event_type
        ]
    return [report for report in reports if isinstance(report, ExecutionReported)]


def _implied(
    executions: list[ExecutionReported], accounts: set[str]
) -> tuple[dict[str, Decimal], dict[tuple[str, str], int]]:
    """Per account the cash the fills moved; per account and instrument the holding they made."""
    cash: dict[str, Decimal] = defaultdict(Decimal)
    holdings: dict[tuple[str, str], int] = defaultdict(int)
    for execution in executions:
        if execution.kind is not ExecutionKind.FILLED or execution.account_id not in accounts:
            continue
        value = execution.fill_quantity * (execution.fill_price or Decimal(0))
        buy = execution.side is OrderSide.BUY
        cash[execution.account_id] += -value if buy else value
        holdings[execution.account_id, execution.instrument] += (
            execution.fill_quantity if buy else -execution.fill_quantity
        )
    return cash, holdings


async def _outcomes(bus: Bus, order_ids: list[str]) -> Counter[str]:
    rows = await bus.db.fetch(
        f"select coalesce(outcome, state) as outcome, count(*) as n from {bus.schema('oms')}.orders "
        "where order_id = any($1::text[]) group by 1",
        order_ids,
    )
    return Counter({row["outcome"]: row["n"] for row in rows})


async def _outcomes_on(bus: Bus, order_ids: list[str], on: list[str]) -> str:
    """How the orders on some instruments ended: what to read when none of them traded."""
    async with bus.connected("oms") as connection:
        outcomes = await oms.order_outcomes(connection, order_ids)
    return "orders on " + ", ".join(on) + ": " + ", ".join(f"{how}={n}" for how, n in sorted(outcomes.items()))


async def _rejection_codes(bus: Bus, order_ids: list[str]) -> Counter[str]:
    rows = await bus.db.fetch(
        f"select rejection_code, count(*) as n from {bus.schema('oms')}.orders "
        "where order_id = any($1::text[]) and rejection_code is not null group by 1",
        order_ids,
    )
    return Counter({row["rejection_code"]: row["n"] for row in rows})


async def _registry_state(bus: Bus, account_id: str) -> tuple[Decimal, dict[str, int]]:
    async with bus.connected("registry") as connection:
        cash = await registry.cash(connection, account_id)
        return cash.get("AUD", Decimal(0)), await registry.holdings(connection, account_id)


async def _has_state(connection: asyncpg.Connection, wanted: list[str]) -> bool:
    for instrument in wanted:
        if await market_data.instrument_state(connection, instrument) is None:
            return False
    return True


async def test_a_disabled_login_cannot_trade_and_trades_again_once_enabled(bus: Bus) -> None:
    account = (await _property_accounts(bus))[0]
    login, instrument = account.logins[0], instruments(FIRST)[0]
    run = uuid.uuid4().hex[:8]

    async def trade(n: int) -> str:
        order = OrderPlaced(
            order_id=f"d-{run}-{n}",
            account_id=account.account_id,
            login_id=login,
            instrument=instrument,
            side=OrderSide.BUY,
            order_type=OrderType.MARKET,
            quantity=1,
            lifetime=OrderLifetime.IMMEDIATE_OR_CANCEL,
        )
        await bus.publish([order])
        await _all_final(bus, [order.order_id])
        async with bus.connected("oms") as connection:
            [how] = await oms.order_outcomes(connection, [order.order_id])
        return str(how)

    async def may_trade() -> bool:
        return bool(
            await bus.db.fetchval(
                f"select count(*) from {bus.schema('oms')}.account_rights "
                "where account_id = $1 and login_id = $2 and 'trade' = any(rights)",
                account.account_id,
                login,
            )
        )

    await bus.publish([UserDisabled(login_id=login, reason="on leave")])
    await eventually(lambda: _not(may_trade), 60, "the OMS took the trade right away")
    assert await trade(1) == "Xbus.Login.NoTradeRight"
    await bus.publish([UserEnabled(login_id=login)])
    await eventually(may_trade, 60, "the OMS gave the trade right back")
    assert await trade(2) in {"filled", "cancelled"}  # accepted: no rejection code


async def _not(check: Callable[[], Awaitable[bool]]) -> bool:
    return not await check()
