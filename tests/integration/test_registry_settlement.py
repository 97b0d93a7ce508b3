"""Settlement in the registry on the real broker and database: every exchange settles here (a
deployment that runs the registry, XBUS_REGISTRY), and its fills are booked on cash and holdings
exactly once (docs/exchanges.md, "Settlement (the registry)").

One registry runs for the whole module; each test uses accounts and exchanges of its own. A test
that dead-letters a fill never sends another event of that account: its key is blocked.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from consumers.registry import queries
from consumers.registry.service import SERVICE
from schemas.accounts import FundsDeposited, FundsWithdrawn, Investor, TradingAccountOpened
from schemas.exchanges import ExchangeAdded, ExchangeUpdated
from schemas.gateway import ExecutionKind, ExecutionReported
from schemas.provisioning import StepFailed
from schemas.registry import CashMovementApplied, RegistrySettlementEnabled, SettlementApplied
from schemas.types import InvestorType, Money, OrderSide, PositiveMoney
from tests.conftest import Stack
from tests.support.exchanges import new_exchange_code
from tests.support.service_under_test import ServiceUnderTest, module_settings
from xbus.trading import prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def registry(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await module_settings(stack)) as service:
        yield service


def exchange_added(code: str, old_flag: bool = True) -> ExchangeAdded:
    """``old_flag``: the per-exchange ``settles_through_registry`` older events carry (read, ignored)."""
    return prodigy_exchange(code, markets=1, symbols=1).model_copy(update={"settles_through_registry": old_flag})


def report(
    account_id: str,
    exchange: str,
    order_id: str,
    side: OrderSide,
    kind: ExecutionKind = ExecutionKind.FILLED,
    *,
    quantity: int = 0,
    price: str | None = None,
    trade: str | None = None,
    cumulative: int = 0,
    leaves: int = 0,
    settles: bool = True,
) -> ExecutionReported:
    return ExecutionReported(
        exchange=exchange,
        order_id=order_id,
        account_id=account_id,
        instrument=f"XS01.{exchange}",
        side=side,
        kind=kind,
        currency="AUD",
        settles_through_registry=settles,
        fill_quantity=quantity,
        fill_price=Decimal(price) if price is not None else None,
        venue_trade_id=trade,
        cumulative_quantity=cumulative,
        leaves_quantity=leaves,
    )


def buy(
    account_id: str, exchange: str, quantity: int, price: str, trade: str, order_id: str = "O-buy"
) -> ExecutionReported:
    return report(
        account_id, exchange, order_id, OrderSide.BUY, quantity=quantity, price=price, trade=trade, cumulative=quantity
    )


def sell(
    account_id: str, exchange: str, quantity: int, price: str, trade: str, order_id: str = "O-sell"
) -> ExecutionReported:
    return report(
        account_id, exchange, order_id, OrderSide.SELL, quantity=quantity, price=price, trade=trade, cumulative=quantity
    )


async def funded_account(registry: ServiceUnderTest, cash: str) -> str:
    """A new account, opened in the registry, with ``cash`` AUD deposited."""
    account_id = f"XS:{uuid.uuid4().hex[:12]}"
    opened = TradingAccountOpened(
        account_id=account_id,
        owner="XS",
        name="Trading",
        classification="Retail",
        default_currency="AUD",
        investor=Investor(
            investor_id=f"INV-{account_id[3:]}", full_name="Jo Citizen", country="AU", type=InvestorType.INDIVIDUAL
        ),
    )
    deposit = FundsDeposited(
        account_id=account_id, amount=PositiveMoney(amount=Decimal(cash), currency="AUD"), reference="bank-1"
    )
    await registry.handle(opened, deposit)
    return account_id


async def positions(registry: ServiceUnderTest, account_id: str) -> tuple[dict[str, Decimal], dict[str, int]]:
    return await queries.cash(registry.db, account_id), await queries.holdings(registry.db, account_id)


def aud(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="AUD")


# Exchanges


async def test_exchange_that_settles_here_enables_settlement(registry: ServiceUnderTest) -> None:
    code = new_exchange_code()
    added = await registry.handle(exchange_added(code))

    assert added.follow_ups == [RegistrySettlementEnabled(flow_id=added.flow_id, exchange=code)]
    stored = await queries.exchange(registry.db, code)
    assert stored is not None and stored.flow_id == added.flow_id


async def test_an_exchange_whose_old_event_says_it_does_not_settle_here_settles_here_all_the_same(
    registry: ServiceUnderTest,
) -> None:
    """Issue 20, defect 1: an exchange that did not settle here left the OMS's books and the
    registry's apart. The flag of older events still parses and no longer decides anything."""
    code = new_exchange_code()
    added = await registry.handle(exchange_added(code, old_flag=False))
    assert added.follow_ups == [RegistrySettlementEnabled(flow_id=added.flow_id, exchange=code)]
    for update in (ExchangeUpdated(code=code, settles_through_registry=False), ExchangeUpdated(code=code, name="R")):
        assert (await registry.handle(update)).follow_ups == []
    stored = await queries.exchange(registry.db, code)
    assert stored is not None and stored.flow_id == added.flow_id


# Fills


async def test_buy_and_sell_fills_move_cash_and_holdings(registry: ServiceUnderTest) -> None:
    code = new_exchange_code()
    account_id = await funded_account(registry, "1000.00")

    bought = await registry.handle(buy(account_id, code, 10, "12.50", "T1"))
    sold = await registry.handle(sell(account_id, code, 4, "13.05", "T2"))

    instrument = f"XS01.{code}"
    assert bought.follow_ups == [
        SettlementApplied(
            account_id=account_id,
            exchange=code,
            order_id="O-buy",
            venue_trade_id="T1",
            instrument=instrument,
            side=OrderSide.BUY,
            quantity=10,
            price=Decimal("12.50"),
            cash_delta=aud("-125.00"),
            holding_delta=10,
            cash_balance=aud("875.00"),
            holding_after=10,
        )
    ]
    [applied] = sold.follow_ups
    assert isinstance(applied, SettlementApplied)
    assert (applied.side, applied.cash_delta, applied.holding_delta) == (OrderSide.SELL, aud("52.20"), -4)
    assert (applied.cash_balance, applied.holding_after) == (aud("927.20"), 6)
    assert await positions(registry, account_id) == ({"AUD": Decimal("927.20")}, {instrument: 6})
    ledger = await queries.settlements(registry.db, account_id)
    assert [(s.venue_trade_id, s.event_id, s.cash_after, s.holding_after) for s in ledger] == [
        ("T1", bought.event_ids[0], Decimal("875"), 10),
        ("T2", sold.event_ids[0], Decimal("927.2"), 6),
    ]
    deposits = sum((m.delta for m in await queries.cash_movements(registry.db, account_id)), Decimal(0))
    assert deposits + sum((s.cash_delta for s in ledger), Decimal(0)) == Decimal("927.20")  # cash is conserved


async def test_partial_fills_of_one_order_each_settle(registry: ServiceUnderTest) -> None:
    code = new_exchange_code()
    account_id = await funded_account(registry, "500")
    first = report(account_id, code, "O-1", OrderSide.BUY, quantity=3, price="10", trade="T1", cumulative=3, leaves=7)
    second = report(account_id, code, "O-1", OrderSide.BUY, quantity=7, price="10.5", trade="T2", cumulative=10)

    handled = await registry.handle(first, second)

    assert [event.holding_after for event in handled.follow_ups if isinstance(event, SettlementApplied)] == [3, 10]
    assert await positions(registry, account_id) == ({"AUD": Decimal("396.50")}, {f"XS01.{code}": 10})


async def test_redelivered_fill_changes_nothing(registry: ServiceUnderTest) -> None:
    code = new_exchange_code()
    account_id = await funded_account(registry, "500")
    fill = buy(account_id, code, 2, "100", "T1")
    await registry.handle(fill)

    again = await registry.handle(fill)  # another event id, the same fill

    assert again.follow_ups == []
    assert await positions(registry, account_id) == ({"AUD": Decimal("300")}, {f"XS01.{code}": 2})
    assert len(await queries.settlements(registry.db, account_id)) == 1


async def test_a_fill_stamped_as_not_settling_here_is_settled_all_the_same(registry: ServiceUnderTest) -> None:
    code = new_exchange_code()
    account_id = await funded_account(registry, "500")
    fill = report(
        account_id, code, "O-1", OrderSide.BUY, quantity=2, price="100", trade="T1", cumulative=2, settles=False
    )

    assert [type(event) for event in (await registry.handle(fill)).follow_ups] == [SettlementApplied]
    assert await positions(registry, account_id) == ({"AUD": Decimal("300")}, {f"XS01.{code}": 2})


async def test_reports_other_than_fills_change_nothing(registry: ServiceUnderTest) -> None:
    code = new_exchange_code()
    account_id = await funded_account(registry, "500")
    acknowledged = report(account_id, code, "O-1", OrderSide.BUY, ExecutionKind.ACKNOWLEDGED, leaves=5)
    cancelled = report(account_id, code, "O-1", OrderSide.BUY, ExecutionKind.CANCELLED)

    assert (await registry.handle(acknowledged, cancelled)).follow_ups == []
    assert await positions(registry, account_id) == ({"AUD": Decimal("500")}, {})
    assert await queries.settlements(registry.db, account_id) == []


async def test_sell_beyond_holdings_is_dead_lettered_and_nothing_is_booked(registry: ServiceUnderTest) -> None:
    code = new_exchange_code()
    account_id = await funded_account(registry, "500")
    await registry.handle(buy(account_id, code, 3, "10", "T1"))

    handled = await registry.handle(sell(account_id, code, 5, "11", "T2"))

    [event_id] = handled.event_ids
    assert handled.follow_ups == []
    assert await registry.dead_lettered(event_id)
    reason = await registry.db.fetchval("select error_message from xbus_dead_letters where event_id = $1", event_id)
    assert f"a sell of 5 XS01.{code} exceeds the holding of 3 XS01.{code}" in reason
    assert f"fill T2 of order O-sell on {code}" in reason and account_id in reason
    assert await positions(registry, account_id) == ({"AUD": Decimal("470")}, {f"XS01.{code}": 3})
    assert len(await queries.settlements(registry.db, account_id)) == 1


async def test_fill_for_an_account_not_opened_yet_waits_for_its_opening(registry: ServiceUnderTest) -> None:
    account_id = f"XS:{uuid.uuid4().hex[:12]}"
    handled = await registry.handle(buy(account_id, new_exchange_code(), 1, "10", "T1"))

    [event_id] = handled.event_ids
    assert not await registry.dead_lettered(event_id)  # see test_pending_prerequisites.py
    reason = await registry.db.fetchval("select reason from xbus_pending where event_id = $1", event_id)
    assert f"account {account_id}, which the registry has never opened" in reason


async def test_buy_beyond_settled_cash_is_booked_below_zero_and_refuses_withdrawals(
    registry: ServiceUnderTest,
) -> None:
    code = new_exchange_code()
    account_id = await funded_account(registry, "100")

    bought = await registry.handle(buy(account_id, code, 3, "50", "T1"))
    assert [event.cash_balance for event in bought.follow_ups if isinstance(event, SettlementApplied)] == [aud("-50")]

    withdrawal = FundsWithdrawn(
        account_id=account_id, amount=PositiveMoney(amount=Decimal("1"), currency="AUD"), reference="W1"
    )
    refused = await registry.handle(withdrawal)
    assert [type(event) for event in refused.follow_ups] == [StepFailed]
    deposit = FundsDeposited(
        account_id=account_id, amount=PositiveMoney(amount=Decimal("20"), currency="AUD"), reference="D2"
    )
    landed = await registry.handle(deposit)
    assert [event.balance for event in landed.follow_ups if isinstance(event, CashMovementApplied)] == [aud("-30")]
    assert await positions(registry, account_id) == ({"AUD": Decimal("-30")}, {f"XS01.{code}": 3})
