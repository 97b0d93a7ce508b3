"""The Foundry Registry on the real broker and database: accounts, investors, cash, closing, compensation.

One registry runs for the whole module (a new consumer group's first join costs the broker's
initial rebalance delay, about 3 s): each test uses account, investor and operator ids of its
own, and waits for exactly the events it published.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from consumers.registry import queries
from consumers.registry.service import SERVICE
from consumers.runtime.migrations import load_migrations, migrate
from consumers.runtime.runner import ServiceRunner
from infrastructure.endpoints import apply_catalogue, load_catalogue
from infrastructure.settings import Settings, load_settings
from producers import Outgoing, Published, open_publisher
from schemas import Event, event_types
from schemas.accounts import (
    FundsDeposited,
    FundsWithdrawn,
    Investor,
    TradingAccountClosed,
    TradingAccountOpened,
    TradingAccountSuspended,
)
from schemas.oms import AccountState
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.provisioning import FlowKind, ProvisioningFailed, StepFailed
from schemas.registry import (
    CashMovementApplied,
    RegistryAccountOpened,
    RegistryAccountStateChanged,
    RegistryOperatorRegistered,
)
from schemas.types import InvestorType, Money, OperatorSystem, PositiveMoney, RegistryFeature
from tests.conftest import Stack
from tests.integration.test_publisher import read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@dataclass
class Registry:
    """The registry service running in-process on this test's topics and schema."""

    settings: Settings
    runner: ServiceRunner

    async def publish(self, *events: Event | Outgoing) -> list[str]:
        """Publish ``events`` in order and wait until the registry has applied them and published
        its follow-ups; return their event ids (the flow ids of the flows they start)."""
        async with open_publisher(self.settings) as p:
            results = await p.publish_many([e if isinstance(e, Outgoing) else Outgoing(e) for e in events])
        ids = [r.event_id for r in results if isinstance(r, Published)]
        assert len(ids) == len(events), results
        await eventually(lambda: self._settled(ids))
        return ids

    async def _settled(self, ids: list[str]) -> bool:
        async with self.connection() as connection:
            applied = await connection.fetchval("select count(*) from xbus_inbox where event_id = any($1)", ids)
            unsent = await connection.fetchval("select count(*) from xbus_outbox where sent_at is null")
        return bool(applied == len(ids) and unsent == 0)

    def connection(self) -> _Connection:
        """A connection whose search_path is the registry's schema, as queries.py expects."""
        return _Connection(self.settings)

    async def follow_ups(self, caused_by: str) -> list[Event]:
        """The follow-up events the registry published for the event ``caused_by``, in order."""
        read = await read_all(self.settings, "xosp.registry.events")
        mine = [r for r in read if r.envelope is not None and r.envelope.causation_id == caused_by]
        return [event_types.parse(r.envelope.type, r.data) for r in sorted(mine, key=lambda r: (r.partition, r.offset))]

    async def the_follow_up(self, caused_by: str) -> Event:
        [event] = await self.follow_ups(caused_by)
        return event

    async def view(self, query: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        async with self.connection() as connection:
            return await query(connection, *args)


class _Connection:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self) -> asyncpg.Connection:
        self._connection: asyncpg.Connection = await asyncpg.connect(
            self.settings.database_url or "",
            server_settings={"search_path": self.settings.db_schema(SERVICE.name)},
        )
        return self._connection

    async def __aexit__(self, *_: object) -> None:
        await self._connection.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def the_registry(stack: Stack) -> AsyncIterator[Registry]:
    settings = load_settings(
        data_dir=stack.data_dir,
        kafka_bootstrap=stack.endpoints.kafka_bootstrap,
        database_url=stack.endpoints.database_url,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        db_schema_prefix=f"t{uuid.uuid4().hex[:8]}_",
        source="tests",
    )
    await apply_catalogue(settings, settings.kafka_bootstrap or "")
    runner = ServiceRunner(
        SERVICE, settings, load_catalogue(settings), settings.kafka_bootstrap or "", settings.database_url or ""
    )
    await runner.migrate()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield Registry(settings, runner)
    finally:
        stop.set()
        await task
    assert runner.stats.dead_lettered == 0, "a refusal of the domain is a step report, never a dead letter"


@pytest.fixture
def account() -> str:
    """A trading account id of this test's own."""
    return f"XS:{uuid.uuid4().hex[:10]}"


@pytest.fixture
def investor() -> str:
    return f"INV-{uuid.uuid4().hex[:10]}"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


def opening(
    account_id: str,
    investor_id: str,
    *,
    full_name: str = "Ada Lovelace",
    country: str = "AU",
    investor_type: InvestorType = InvestorType.INDIVIDUAL,
    pii_hash: str | None = "sha256:0123456789abcdef",
    currency: str = "AUD",
) -> TradingAccountOpened:
    return TradingAccountOpened(
        account_id=account_id,
        owner=account_id.split(":")[0],
        name=f"Account {account_id}",
        classification="Retail",
        default_currency=currency,
        investor=Investor(
            investor_id=investor_id, full_name=full_name, country=country, type=investor_type, pii_hash=pii_hash
        ),
    )


def deposit(account_id: str, amount: str, currency: str = "AUD", reference: str | None = None) -> FundsDeposited:
    """A deposit under ``reference``, or a bank reference of its own: a reference is credited once."""
    return FundsDeposited(
        account_id=account_id,
        amount=PositiveMoney(amount=Decimal(amount), currency=currency),
        reference=reference or f"D-{uuid.uuid4().hex[:10]}",
    )


def withdrawal(account_id: str, amount: str, currency: str = "AUD", reference: str = "W1") -> FundsWithdrawn:
    return FundsWithdrawn(
        account_id=account_id, amount=PositiveMoney(amount=Decimal(amount), currency=currency), reference=reference
    )


def failure(flow_id: str, account_id: str, service: str = "oms", step: str = "oms.account") -> ProvisioningFailed:
    return ProvisioningFailed(
        flow_id=flow_id,
        kind=FlowKind.ACCOUNT,
        entity_id=account_id,
        service=service,
        step=step,
        reason="exchange XSX is not active",
    )


# Opening


async def test_opening_records_investor_account_and_zero_cash(
    the_registry: Registry, account: str, investor: str
) -> None:
    [flow] = await the_registry.publish(opening(account, investor))

    assert await the_registry.the_follow_up(flow) == RegistryAccountOpened(
        flow_id=flow, account_id=account, investor_id=investor, currency="AUD"
    )
    opened = await the_registry.view(queries.account, account)
    assert (opened.investor_id, opened.state, opened.opening_flow_id) == (investor, AccountState.ACTIVE, flow)
    owner = await the_registry.view(queries.investor, investor)
    assert (owner.full_name, owner.country, owner.type) == ("Ada Lovelace", "AU", InvestorType.INDIVIDUAL)
    assert owner.pii_hash == "sha256:0123456789abcdef"
    assert owner.accounts == (account,)
    assert await the_registry.view(queries.cash, account) == {"AUD": Decimal(0)}
    assert await the_registry.view(queries.holdings, account) == {}


async def test_a_second_account_of_the_same_investor_shares_the_investor(
    the_registry: Registry, account: str, investor: str
) -> None:
    await the_registry.publish(opening(account, investor))
    [second] = await the_registry.publish(opening(f"{account}.2", investor, currency="USD"))

    assert isinstance(await the_registry.the_follow_up(second), RegistryAccountOpened)
    owner = await the_registry.view(queries.investor, investor)
    assert owner.accounts == (account, f"{account}.2")
    assert await the_registry.view(queries.cash, f"{account}.2") == {"USD": Decimal(0)}


async def test_conflicting_investor_fails_the_opening(the_registry: Registry, account: str, investor: str) -> None:
    await the_registry.publish(opening(account, investor))
    [flow] = await the_registry.publish(opening(f"{account}.2", investor, full_name="Ada Byron", country="GB"))

    refusal = await the_registry.the_follow_up(flow)
    assert isinstance(refusal, StepFailed)
    assert (refusal.flow_id, refusal.service, refusal.step) == (flow, "registry", "registry.account")
    assert f"investor {investor}" in refusal.reason
    assert "'Ada Byron'" in refusal.reason and "country AU (the opening says GB)" in refusal.reason
    assert await the_registry.view(queries.account, f"{account}.2") is None
    assert (await the_registry.view(queries.investor, investor)).full_name == "Ada Lovelace"


async def test_an_account_id_opened_by_another_flow_fails_the_opening(
    the_registry: Registry, account: str, investor: str
) -> None:
    first, again = await the_registry.publish(opening(account, investor), opening(account, investor, currency="USD"))

    refusal = await the_registry.the_follow_up(again)
    assert isinstance(refusal, StepFailed) and refusal.step == "registry.account"
    assert f"opened by flow {first}" in refusal.reason
    opened = await the_registry.view(queries.account, account)
    assert (opened.opening_flow_id, opened.default_currency) == (first, "AUD")


# Cash


async def test_deposits_and_withdrawals_keep_exact_decimal_balances(
    the_registry: Registry, account: str, investor: str
) -> None:
    ids = await the_registry.publish(
        opening(account, investor),
        deposit(account, "0.1", reference="D1"),
        deposit(account, "0.2", reference="D2"),
        withdrawal(account, "0.3", reference="W1"),
        deposit(account, "1234567890.12345678", reference="D3"),
        withdrawal(account, "0.00000001", reference="W2"),
        deposit(account, "15", "USD", reference="D4"),
    )

    follow_ups = [await the_registry.the_follow_up(flow) for flow in ids[1:]]
    applied = [a for a in follow_ups if isinstance(a, CashMovementApplied)]
    assert applied == follow_ups
    assert [(a.flow_id, a.delta, a.balance, a.reference) for a in applied] == [
        (ids[1], aud("0.10"), aud("0.10"), "D1"),
        (ids[2], aud("0.20"), aud("0.30"), "D2"),
        (ids[3], aud("-0.30"), aud("0.00"), "W1"),
        (ids[4], aud("1234567890.12345678"), aud("1234567890.12345678"), "D3"),
        (ids[5], aud("-0.00000001"), aud("1234567890.12345677"), "W2"),
        (ids[6], Money(amount=Decimal(15), currency="USD"), Money(amount=Decimal(15), currency="USD"), "D4"),
    ]
    assert await the_registry.view(queries.cash, account) == {
        "AUD": Decimal("1234567890.12345677"),
        "USD": Decimal("15"),
    }
    movements = await the_registry.view(queries.cash_movements, account)
    assert sum(m.delta for m in movements if m.currency == "AUD") == Decimal("1234567890.12345677")


def aud(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="AUD")


async def test_withdrawal_beyond_settled_cash_is_refused_with_reason(
    the_registry: Registry, account: str, investor: str
) -> None:
    *_, flow = await the_registry.publish(
        opening(account, investor), deposit(account, "100.50"), withdrawal(account, "150")
    )

    refusal = await the_registry.the_follow_up(flow)
    assert isinstance(refusal, StepFailed)
    assert (refusal.flow_id, refusal.step) == (flow, "registry.cash")
    assert refusal.reason == "withdrawal of 150.00 AUD exceeds settled cash 100.50 AUD"
    assert await the_registry.view(queries.cash, account) == {"AUD": Decimal("100.50")}
    assert len(await the_registry.view(queries.cash_movements, account)) == 1


async def test_withdrawal_in_a_currency_never_deposited_is_refused(
    the_registry: Registry, account: str, investor: str
) -> None:
    *_, flow = await the_registry.publish(opening(account, investor), withdrawal(account, "1", "USD"))

    refusal = await the_registry.the_follow_up(flow)
    assert isinstance(refusal, StepFailed)
    assert refusal.reason == "withdrawal of 1.00 USD exceeds settled cash 0.00 USD"


async def test_amount_finer_than_the_ledger_is_refused(the_registry: Registry, account: str, investor: str) -> None:
    *_, flow = await the_registry.publish(opening(account, investor), deposit(account, "0.000000001"))

    refusal = await the_registry.the_follow_up(flow)
    assert isinstance(refusal, StepFailed) and "more than 8 decimal places" in refusal.reason
    assert await the_registry.view(queries.cash, account) == {"AUD": Decimal(0)}


async def test_cash_movement_on_an_unknown_account_fails_the_step(the_registry: Registry, account: str) -> None:
    [flow] = await the_registry.publish(deposit(account, "10"))

    refusal = await the_registry.the_follow_up(flow)
    assert isinstance(refusal, StepFailed) and refusal.step == "registry.cash"
    assert f"account {account} is unknown to the registry" in refusal.reason


async def test_a_deposit_sent_again_under_a_new_event_id_is_refused_naming_the_earlier_credit(
    the_registry: Registry, account: str, investor: str
) -> None:
    _, credited, again, in_usd, other = await the_registry.publish(
        opening(account, investor),
        deposit(account, "100", reference="BANK-1"),
        deposit(account, "100", reference="BANK-1"),
        deposit(account, "100", "USD", reference="BANK-1"),
        deposit(account, "7", reference="BANK-2"),
    )

    assert isinstance(await the_registry.the_follow_up(credited), CashMovementApplied)
    first, _ = await the_registry.view(queries.cash_movements, account)
    when = f"{first.applied_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    for flow in (again, in_usd):
        refusal = await the_registry.the_follow_up(flow)
        assert isinstance(refusal, StepFailed) and (refusal.flow_id, refusal.step) == (flow, "registry.cash")
        assert refusal.reason.startswith(
            f"account {account} was credited under bank reference BANK-1 already (100.00 AUD, flow {credited}, {when})"
        )
    assert isinstance(await the_registry.the_follow_up(other), CashMovementApplied)
    assert await the_registry.view(queries.cash, account) == {"AUD": Decimal("107")}
    assert [m.flow_id for m in await the_registry.view(queries.cash_movements, account)] == [credited, other]


async def test_the_ledger_itself_refuses_a_second_credit_of_a_bank_reference(
    the_registry: Registry, account: str, investor: str
) -> None:
    await the_registry.publish(opening(account, investor), deposit(account, "100", reference="BANK-1"))

    async with the_registry.connection() as connection:
        with pytest.raises(asyncpg.UniqueViolationError, match="cash_movements_bank_reference_once"):
            await connection.execute(
                """
                insert into cash_movements (flow_id, account_id, currency, delta, balance_after, reference,
                                            bank_reference, applied_at)
                values ($1, $2, 'AUD', 100, 200, 'BANK-1', 'BANK-1', now())
                """,
                str(uuid.uuid4()),
                account,
            )
        with pytest.raises(asyncpg.CheckViolationError, match="cash_movements_bank_reference_of_a_deposit"):
            await connection.execute(
                """
                insert into cash_movements (flow_id, account_id, currency, delta, balance_after, reference,
                                            bank_reference, applied_at)
                values ($1, $2, 'AUD', -1, 99, 'W1', 'W1', now())
                """,
                str(uuid.uuid4()),
                account,
            )


async def test_the_migration_keeps_deposits_credited_twice_before_it_and_guards_the_first(stack: Stack) -> None:
    """Deposits booked twice before the guard existed stay in the ledger (a person reconciles them):
    the migration marks the first credit of each reference, so it applies, and guards from then on."""
    schema = f"t{uuid.uuid4().hex[:8]}_registry_migration"
    migrations = load_migrations(SERVICE.migrations)
    before = [m for m in migrations if m.version < "0003"]
    connection = await asyncpg.connect(stack.endpoints.database_url or "")
    try:
        await migrate(connection, schema, before)
        await connection.execute(f'set search_path to "{schema}"')
        await connection.execute(
            """
            insert into investors (investor_id, full_name, country, type, recorded_at)
            values ('INV-1', 'Ada Lovelace', 'AU', 'individual', now());
            insert into accounts (account_id, investor_id, owner, name, default_currency, state, opening_flow_id,
                                  opened_at, state_changed_at)
            values ('XS:1', 'INV-1', 'XS', 'A', 'AUD', 'active', 'open-1', now(), now());
            insert into cash_movements (flow_id, account_id, currency, delta, balance_after, reference, applied_at)
            values ('d-1', 'XS:1', 'AUD', 100, 100, 'BANK-1', now()),
                   ('d-2', 'XS:1', 'AUD', 100, 200, 'BANK-1', now()),
                   ('w-1', 'XS:1', 'AUD', -10, 190, 'BANK-1', now())
            """
        )
        assert await migrate(connection, schema, migrations) == [m.version for m in migrations if m not in before]
        marked = await connection.fetch("select flow_id, bank_reference from cash_movements order by seq")
        assert [(row["flow_id"], row["bank_reference"]) for row in marked] == [
            ("d-1", "BANK-1"),
            ("d-2", None),
            ("w-1", None),
        ]
    finally:
        await connection.execute(f'drop schema if exists "{schema}" cascade')
        await connection.close()


async def test_suspended_account_takes_deposits_and_refuses_withdrawals(
    the_registry: Registry, account: str, investor: str
) -> None:
    _, suspend, taken, refused = await the_registry.publish(
        opening(account, investor),
        TradingAccountSuspended(account_id=account, reason="compliance review"),
        deposit(account, "20"),
        withdrawal(account, "5"),
    )

    assert await the_registry.the_follow_up(suspend) == RegistryAccountStateChanged(
        flow_id=suspend, account_id=account, state=AccountState.SUSPENDED, reason="compliance review"
    )
    assert isinstance(await the_registry.the_follow_up(taken), CashMovementApplied)
    refusal = await the_registry.the_follow_up(refused)
    assert isinstance(refusal, StepFailed) and f"account {account} is suspended" in refusal.reason
    assert await the_registry.view(queries.cash, account) == {"AUD": Decimal("20")}
    assert (await the_registry.view(queries.account, account)).state == AccountState.SUSPENDED


# Closing


async def test_closing_an_account_with_cash_fails_with_the_amounts(
    the_registry: Registry, account: str, investor: str
) -> None:
    *_, flow = await the_registry.publish(
        opening(account, investor),
        deposit(account, "10.5"),
        deposit(account, "3", "USD"),
        TradingAccountClosed(account_id=account),
    )

    refusal = await the_registry.the_follow_up(flow)
    assert isinstance(refusal, StepFailed)
    assert (refusal.flow_id, refusal.step) == (flow, "registry.account_state")
    assert "still holds settled cash 10.50 AUD, 3.00 USD" in refusal.reason
    assert (await the_registry.view(queries.account, account)).state == AccountState.ACTIVE


async def test_closing_an_account_with_holdings_fails_with_the_quantities(
    the_registry: Registry, account: str, investor: str
) -> None:
    await the_registry.publish(opening(account, investor))
    async with the_registry.connection() as connection:  # settlement (a later issue) will fill holdings
        await connection.execute("insert into holdings values ($1, 'XS01.XSX', 100)", account)
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute("insert into holdings values ($1, 'XS02.XSX', -1)", account)
    [flow] = await the_registry.publish(TradingAccountClosed(account_id=account))

    refusal = await the_registry.the_follow_up(flow)
    assert isinstance(refusal, StepFailed) and "holdings 100 XS01.XSX" in refusal.reason
    assert await the_registry.view(queries.holdings, account) == {"XS01.XSX": 100}


async def test_closing_an_empty_account_emits_closed(the_registry: Registry, account: str, investor: str) -> None:
    *_, flow, late = await the_registry.publish(
        opening(account, investor),
        deposit(account, "25"),
        withdrawal(account, "25"),
        TradingAccountClosed(account_id=account, reason="customer request"),
        deposit(account, "1"),
    )

    assert await the_registry.the_follow_up(flow) == RegistryAccountStateChanged(
        flow_id=flow, account_id=account, state=AccountState.CLOSED, reason="customer request"
    )
    closed = await the_registry.view(queries.account, account)
    assert (closed.state, closed.state_reason) == (AccountState.CLOSED, "customer request")
    refusal = await the_registry.the_follow_up(late)
    assert isinstance(refusal, StepFailed) and f"account {account} is closed" in refusal.reason


# Compensation


async def test_failed_opening_is_compensated(the_registry: Registry, account: str, investor: str) -> None:
    [flow] = await the_registry.publish(opening(account, investor))
    [reported] = await the_registry.publish(failure(flow, account))

    assert await the_registry.the_follow_up(reported) == RegistryAccountStateChanged(
        flow_id=flow,
        account_id=account,
        state=AccountState.CLOSED,
        reason="opening failed: oms.account: exchange XSX is not active",
    )
    assert (await the_registry.view(queries.account, account)).state == AccountState.CLOSED
    [again] = await the_registry.publish(failure(flow, account))
    assert await the_registry.follow_ups(again) == []


async def test_a_failure_reported_before_the_opening_arrives_still_compensates(
    the_registry: Registry, account: str, investor: str
) -> None:
    flow = f"flow-{uuid.uuid4()}"
    await the_registry.publish(failure(flow, account))
    await the_registry.publish(Outgoing(opening(account, investor), event_id=flow))

    opened, closed = await the_registry.follow_ups(flow)
    assert isinstance(opened, RegistryAccountOpened)
    assert isinstance(closed, RegistryAccountStateChanged)
    assert (closed.flow_id, closed.state) == (flow, AccountState.CLOSED)
    assert (await the_registry.view(queries.account, account)).state == AccountState.CLOSED


async def test_failures_of_the_registry_own_step_or_of_other_flows_change_nothing(
    the_registry: Registry, account: str, investor: str
) -> None:
    [flow] = await the_registry.publish(opening(account, investor))
    ids = await the_registry.publish(
        failure(flow, account, service="registry", step="registry.account"),
        failure(f"flow-{uuid.uuid4()}", account, service="oms", step="oms.account_state"),
    )

    assert [await the_registry.follow_ups(i) for i in ids] == [[], []]
    assert (await the_registry.view(queries.account, account)).state == AccountState.ACTIVE


async def test_an_opening_that_already_holds_cash_is_not_closed_by_compensation(
    the_registry: Registry, account: str, investor: str
) -> None:
    flow, _ = await the_registry.publish(opening(account, investor), deposit(account, "5"))
    [reported] = await the_registry.publish(failure(flow, account))

    refusal = await the_registry.the_follow_up(reported)
    assert isinstance(refusal, StepFailed)
    assert (refusal.flow_id, refusal.step) == (flow, "registry.compensation")
    assert "holds settled cash 5.00 AUD" in refusal.reason
    assert (await the_registry.view(queries.account, account)).state == AccountState.ACTIVE


# Operators


async def test_operator_with_registry_system_is_registered_then_deregistered(the_registry: Registry) -> None:
    operator_id = f"OP-{uuid.uuid4().hex[:10]}"
    registered = OperatorRegistered(
        operator_id=operator_id,
        login_id="User:ops-1",
        systems=(OperatorSystem.OMS, OperatorSystem.REGISTRY),
        registry_features=(RegistryFeature.ADMIN, RegistryFeature.AUDIT),
    )
    [flow] = await the_registry.publish(registered)

    assert await the_registry.the_follow_up(flow) == RegistryOperatorRegistered(
        flow_id=flow, operator_id=operator_id, features=(RegistryFeature.ADMIN, RegistryFeature.AUDIT)
    )
    operator = await the_registry.view(queries.operator, operator_id)
    assert (operator.status, operator.features, operator.registered_flow_id) == (
        "registered",
        (RegistryFeature.ADMIN, RegistryFeature.AUDIT),
        flow,
    )
    [gone] = await the_registry.publish(OperatorDeregistered(operator_id=operator_id, reason="left the firm"))
    operator = await the_registry.view(queries.operator, operator_id)
    assert (operator.status, operator.deregistration_reason) == ("deregistered", "left the firm")
    assert await the_registry.follow_ups(gone) == []


async def test_operator_registered_again_without_the_registry_is_deregistered(the_registry: Registry) -> None:
    operator_id = f"OP-{uuid.uuid4().hex[:10]}"
    given = OperatorRegistered(operator_id=operator_id, login_id="User:ops-3", systems=(OperatorSystem.REGISTRY,))
    await the_registry.publish(given)

    [again] = await the_registry.publish(
        OperatorRegistered(operator_id=operator_id, login_id="User:ops-3", systems=(OperatorSystem.OMS,))
    )
    assert await the_registry.follow_ups(again) == []
    operator = await the_registry.view(queries.operator, operator_id)
    assert (operator.status, operator.deregistration_reason) == (
        "deregistered",
        f"registered again by flow {again} without the registry",
    )
    [restored] = await the_registry.publish(given.model_copy())
    assert isinstance(await the_registry.the_follow_up(restored), RegistryOperatorRegistered)
    operator = await the_registry.view(queries.operator, operator_id)
    assert (operator.status, operator.deregistration_reason, operator.registered_flow_id) == (
        "registered",
        None,
        restored,
    )


async def test_operator_without_registry_system_is_ignored(the_registry: Registry) -> None:
    operator_id = f"OP-{uuid.uuid4().hex[:10]}"
    [flow] = await the_registry.publish(
        OperatorRegistered(operator_id=operator_id, login_id="User:ops-2", systems=(OperatorSystem.OMS,))
    )

    assert await the_registry.follow_ups(flow) == []
    assert await the_registry.view(queries.operator, operator_id) is None
