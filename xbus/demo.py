"""The demo: the platform guide's operations as events, through every service at once.

It starts every installed service in this process, publishes the seeded scenario (operators,
users, trading accounts, the Prodigy exchange XSX with two markets, a deposit into every
account) in shuffled order, answers the Prodigy operators' manual step as a person would, and
waits until the tracker has seen every flow end. Then it trades: orders from the accounts'
logins, and a cancel of every order that may rest, until each order is over; and it holds the
OMS's books against the registry's. Event ids come from the seed, so running the demo again
publishes the same events, which the services' inboxes skip: it is safe to repeat, and the
second run ends at once with the same summary.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from consumers.oms import queries as oms
from consumers.registry import queries as registry
from consumers.runtime.dead_letters import schema_connection
from consumers.runtime.discovery import find_services
from consumers.runtime.runner import ServiceRunner
from exchanges import load_oms_adapter
from infrastructure.endpoints import Endpoints, apply_catalogue, load_catalogue
from infrastructure.errors import XbusError
from infrastructure.settings import Settings
from producers import Outgoing, Published, Publisher
from schemas.accounts import TradingAccountOpened
from xbus.scenario import EXCHANGE, Scenario, build_scenario, seeded
from xbus.trading import TradingAccount, TradingScenario, build_trading, prodigy_exchange

TRACKER = "provisioning"
SEED = 2026
_DEPOSIT = Decimal("20000")
#: (what ended, how many, of how many) → shown as progress.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoScenario:
    provisioning: Scenario
    exchange: Outgoing
    trading: TradingScenario

    def flow_ids(self) -> dict[str, str]:
        """Every flow the demo starts: provisioning, the exchange, the deposits."""
        flows = self.provisioning.flow_ids()
        for outgoing in (self.exchange, *self.trading.deposits):
            flows[outgoing.event_id or ""] = outgoing.event.aggregate_id
        return flows


@dataclass(frozen=True)
class DemoOutcome:
    scenario: DemoScenario
    #: (kind, state) → number of flows.
    flows: Counter[tuple[str, str]]
    #: outcome, or rejection code (or the state of one still open) → number of orders.
    orders: Counter[str]
    #: How many orders are over (completed or rejected).
    orders_over: int
    #: The OMS's and the registry's cash per currency and holdings per instrument, over all accounts.
    oms_books: tuple[dict[str, Decimal], dict[str, int]]
    registry_books: tuple[dict[str, Decimal], dict[str, int]]
    dead_letters: dict[str, int]
    seconds: float


async def run_demo(
    settings: Settings,
    endpoints: Endpoints,
    scenario: DemoScenario,
    progress: Progress,
    timeout: float = 600.0,
) -> DemoOutcome:
    """Publish ``scenario`` with every service running; report each flow's end as the tracker saw
    it, and each order's as the OMS did."""
    await apply_catalogue(settings, endpoints.kafka_bootstrap)
    catalogue = load_catalogue(settings)
    runners = [
        ServiceRunner(service, settings, catalogue, endpoints.kafka_bootstrap, endpoints.database_url)
        for service in find_services().values()
    ]
    if TRACKER not in {runner.service.name for runner in runners}:
        raise XbusError("the demo needs the provisioning tracker (consumers/provisioning) installed")
    started = time.monotonic()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stop)) for runner in runners]
    connection = await asyncpg.connect(endpoints.database_url)
    deadline = time.monotonic() + timeout

    async def until(what: str, count: Callable[[], Awaitable[int]], total: int) -> None:
        while (done := await count()) < total:
            progress(what, done, total)
            if time.monotonic() > deadline or any(task.done() for task in tasks):
                return
            await asyncio.sleep(0.5)
        progress(what, done, total)

    try:
        async with Publisher(settings, endpoints.kafka_bootstrap, catalogue) as publisher:
            await _publish(
                publisher,
                [*scenario.provisioning.shuffled(seed=1), scenario.exchange, *scenario.trading.deposits],
            )
            flow_ids = list(scenario.flow_ids())
            tracker = settings.db_schema(TRACKER)
            await until("flows ended", lambda: flows_ended(connection, tracker, flow_ids), len(flow_ids))
            database = endpoints.database_url
            async with schema_connection(database, settings.db_schema("oms")) as orders_db:
                accounts = [outgoing.event.aggregate_id for outgoing in scenario.trading.deposits]
                await until(
                    "accounts ready to trade",
                    lambda: oms.tradable_accounts(orders_db, accounts),
                    len(accounts),
                )
                await _publish(publisher, [*scenario.trading.orders, *scenario.trading.cancels])
                order_ids = scenario.trading.order_ids()
                await until("orders over", lambda: oms.orders_over(orders_db, order_ids), len(order_ids))
                orders = await oms.order_outcomes(orders_db, order_ids)
                over = await oms.orders_over(orders_db, order_ids)
                oms_books = await oms.books(orders_db)
                fills = await oms.fills_booked(orders_db, order_ids)
            async with schema_connection(database, settings.db_schema("registry")) as registry_db:
                await until("fills settled", lambda: registry.fills_settled(registry_db, order_ids), fills)
                registry_books = await registry.books(registry_db)
        flows = await flow_states(connection, tracker, flow_ids)
        dead = {
            runner.service.name: int(
                await connection.fetchval(f"select count(*) from {runner.schema}.xbus_dead_letters")
            )
            for runner in runners
        }
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await connection.close()
    return DemoOutcome(scenario, flows, orders, over, oms_books, registry_books, dead, time.monotonic() - started)


async def _publish(publisher: Publisher, events: list[Outgoing]) -> None:
    results = await publisher.publish_many(events)
    failed = [r for r in results if not isinstance(r, Published)]
    if failed:
        raise XbusError(f"{len(failed)} demo events were not published: {failed[0]}")


async def flows_ended(connection: asyncpg.Connection, schema: str, flow_ids: list[str]) -> int:
    """How many of ``flow_ids`` the tracker (schema ``schema``) has seen end, whatever their end."""
    if not await connection.fetchval("select to_regclass($1)", f"{schema}.flows"):
        return 0
    return int(
        await connection.fetchval(
            f"select count(*) from {schema}.flows where flow_id = any($1) and state <> 'open'", flow_ids
        )
    )


async def flow_states(connection: asyncpg.Connection, schema: str, flow_ids: list[str]) -> Counter[tuple[str, str]]:
    """(kind, state) of ``flow_ids`` → how many; the flows the tracker never saw as ``("?", "not started")``."""
    rows = await connection.fetch(
        f"select kind, state, count(*) as n from {schema}.flows where flow_id = any($1) group by 1, 2", flow_ids
    )
    states: Counter[tuple[str, str]] = Counter({(r["kind"], r["state"]): r["n"] for r in rows})
    missing = len(flow_ids) - sum(states.values())
    if missing:
        states[("?", "not started")] = missing
    return states


def demo_scenario(operators: int, users: int, accounts: int, orders: int) -> DemoScenario:
    """The seeded scenario, XSX (two markets of four symbols, on Prodigy) and ``orders`` orders
    spread over the accounts, each funded with 20,000 AUD first."""
    provisioning = build_scenario(operators=operators, users=users, accounts=accounts, seed=SEED)
    exchange = prodigy_exchange(EXCHANGE, markets=2, symbols=4)
    opened = [o.event for o in provisioning.accounts if isinstance(o.event, TradingAccountOpened)]
    trading = build_trading(
        [TradingAccount(a.account_id, tuple(login.login_id for login in a.logins)) for a in opened],
        dict(load_oms_adapter(exchange.oms_adapter).reference_prices(exchange)),
        orders if opened else 0,
        deposit=_DEPOSIT,
        seed=SEED,
    )
    return DemoScenario(provisioning, seeded(exchange, SEED), trading)
