"""One book of record per deployment: the OMS's and the registry's cash and holdings cannot drift
apart (issue 20, defect 1), whether or not the deployment runs the registry (issue 19, item 8).

Both services run here on fake units of work over their in-memory stores, and each event goes to
each service that reads it, as the bus would deliver it.

plxtra/xosp ``XOSP-Configure.ps1`` writes the deployment's ``UsingFoundry`` (``$false`` in the
reference deployment) into ``task-params.json``; ``Config/Tasks/account-deposit.ps1`` then reads:
"Deposits into Foundry will flow through to OMS automatically" with Foundry, and "If there's no
Foundry for asset tracking, we can submit deposits into OMS directly" without it
(``OMS2.Control Balance Transfer``; ``account-withdraw.ps1`` transfers ``-$Amount`` the same way).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from consumers.oms.service import SERVICE as OMS
from consumers.registry.service import SERVICE as REGISTRY
from consumers.runtime import FakeUnitOfWork
from schemas import Event
from schemas.accounts import FundsDeposited, FundsWithdrawn, TradingAccountClosed
from schemas.exchanges import ExchangeAdded
from schemas.gateway import ExecutionKind, ExecutionReported
from schemas.oms import AccountState
from schemas.provisioning import StepFailed
from schemas.types import AccountRight, OrderSide, PositiveMoney
from tests.support.memory_oms import MemoryBooks
from tests.support.memory_registry import MemoryLedger
from tests.unit.test_oms_handlers import (
    ACCOUNT,
    EXCHANGE,
    INSTRUMENT,
    adapter_registered,
    granted,
    opened,
    placed,
    report,
)
from xbus.trading import prodigy_exchange


def old_flag_off(added: ExchangeAdded) -> ExchangeAdded:
    """``added`` as an older event of an exchange that did not settle through the registry (still read)."""
    return added.model_copy(update={"settles_through_registry": False})


class Deployment:
    """The OMS and, where the deployment runs it, the registry, and what every event made each say."""

    def __init__(self, registry: bool) -> None:
        self.books = MemoryBooks()
        self.ledger = MemoryLedger()
        self.services = ((OMS, self.books), (REGISTRY, self.ledger)) if registry else ((OMS, self.books),)
        self.said: list[Event] = []

    async def publish(self, event: Event) -> None:
        """Deliver ``event`` to each of the two that reads it, then their follow-ups, until quiet."""
        waiting = [event]
        while waiting:
            current = waiting.pop(0)
            for service, store in self.services:
                handler = service.by_type.get(current.event_type)
                if handler is None:
                    continue
                unit: FakeUnitOfWork[object] = FakeUnitOfWork.handling(current, store, service=service.name)
                await handler(current, unit)
                self.said += unit.events
                waiting += unit.events

    def oms_cash(self) -> Decimal:
        position = self.books.cash_positions.get((ACCOUNT, "AUD"))
        return Decimal(0) if position is None else position.balance

    def registry_cash(self) -> Decimal:
        return self.ledger.cash.get((ACCOUNT, "AUD"), Decimal(0))

    def book_cash(self) -> Decimal:
        """The cash of record: the OMS's, equal to the registry's where the deployment runs one."""
        if len(self.services) == 2:
            assert self.oms_cash() == self.registry_cash(), "the OMS mirrors the registry"
        else:
            assert self.ledger.cash == {}, "no registry runs"
        return self.oms_cash()

    def refused_steps(self) -> list[str]:
        return [event.step for event in self.said if isinstance(event, StepFailed)]


@pytest.fixture(params=["with the registry", "without the registry"])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """Each test runs in both kinds of deployment (``XBUS_REGISTRY``)."""
    registry = request.param == "with the registry"
    if not registry:
        request.getfixturevalue("without_registry")
    return Deployment(registry)


def book(deployment: Deployment, step: str) -> str:
    """``registry.<step>`` where the registry keeps the book, ``oms.<step>`` where the OMS does."""
    return f"{'registry' if len(deployment.services) == 2 else 'oms'}.{step}"


def stamped(fill: ExecutionReported) -> ExecutionReported:
    """A fill as the gateway stamped it for such an exchange before the fix (the flag still parses)."""
    return fill.model_copy(update={"settles_through_registry": False})


def trading_there() -> tuple[Event, ...]:
    """The exchange added with the old flag off, its adapter up, and the account opened with a
    login that may trade: where each test of defect 1 starts."""
    return (
        old_flag_off(prodigy_exchange(EXCHANGE, markets=1, symbols=2)),
        adapter_registered(),
        opened(),
        granted(AccountRight.VIEW, AccountRight.TRADE),
    )


def money(amount: str) -> PositiveMoney:
    return PositiveMoney(amount=Decimal(amount), currency="AUD")


async def test_cash_spent_on_an_exchange_that_used_to_settle_elsewhere_cannot_be_withdrawn(
    deployment: Deployment,
) -> None:
    """Defect 1 as the review found it: an exchange added with ``settles_through_registry=False``
    (an old event, still read), 1,000 AUD deposited, 500 AUD spent on a buy there, then 1,000 AUD
    withdrawn. Before the fix the OMS booked the fill, the registry skipped it and checked the
    withdrawal against its own 1,000: it paid out cash already spent, and the OMS went 500 below
    zero. Now the deployment has one book: the registry, which settles every exchange's fills,
    or, without it, the OMS. The withdrawal is refused and the book says 500."""
    for event in (
        *trading_there(),
        FundsDeposited(account_id=ACCOUNT, amount=money("1000"), reference="D1"),
        placed("buy", quantity=50),
        stamped(report(ExecutionKind.FILLED, "buy", fill=(50, "10.00"), trade="T1")),
        FundsWithdrawn(account_id=ACCOUNT, amount=money("1000"), reference="W1"),
    ):
        await deployment.publish(event)
    assert deployment.refused_steps() == [book(deployment, "cash")], deployment.said
    assert deployment.book_cash() == Decimal("500.00")


async def test_sale_proceeds_are_cash_of_record(deployment: Deployment) -> None:
    """The other half of defect 1: shares bought and sold on that exchange. The registry used to
    skip both fills, so the proceeds the OMS booked were not cash of record and a withdrawal of
    them was refused. Now they are booked in the book of record."""
    side = OrderSide.SELL
    for event in (
        *trading_there(),
        FundsDeposited(account_id=ACCOUNT, amount=money("1000"), reference="D1"),
        placed("buy", quantity=50),
        stamped(report(ExecutionKind.FILLED, "buy", fill=(50, "10.00"), trade="T1")),
        placed("sell", side=side, quantity=50, limit="10.50"),
        stamped(report(ExecutionKind.FILLED, "sell", side=side, fill=(50, "10.50"), trade="T2")),
        FundsWithdrawn(account_id=ACCOUNT, amount=money("1025"), reference="W1"),
    ):
        await deployment.publish(event)
    assert deployment.refused_steps() == [], deployment.said
    assert deployment.book_cash() == Decimal("0.00")


async def test_an_account_holding_shares_bought_there_is_not_closed(deployment: Deployment) -> None:
    """The last part of defect 1: 500 AUD deposited and spent on 50 shares there, the 500 (spent)
    withdrawn, then the account closed. Before the fix the registry paid out the 500, found the
    account empty and closed it, and the OMS closed it after the registry with 50 shares in it.
    Now the book of record holds the shares: the withdrawal and the close are refused, and the
    account stays open everywhere."""
    for event in (
        *trading_there(),
        FundsDeposited(account_id=ACCOUNT, amount=money("500"), reference="D1"),
        placed("buy", quantity=50),
        stamped(report(ExecutionKind.FILLED, "buy", fill=(50, "10.00"), trade="T1")),
        FundsWithdrawn(account_id=ACCOUNT, amount=money("500"), reference="W1"),
        TradingAccountClosed(account_id=ACCOUNT, reason="closed by the owner"),
    ):
        await deployment.publish(event)
    assert deployment.refused_steps() == [book(deployment, "cash"), book(deployment, "account_state")]
    assert deployment.books.accounts[ACCOUNT].state is AccountState.ACTIVE
    assert deployment.book_cash() == Decimal("0.00")
    assert deployment.books.holdings[(ACCOUNT, INSTRUMENT)].quantity == 50
