"""One book of record per deployment, on the real stack (issue 19 item 8, issue 20 defect 1): a
deposit, a buy filled on Prodigy and withdrawals end with consistent books, with the registry
(its books and the OMS's equal) and without it (``XBUS_REGISTRY=false``: no registry runs, the
OMS is the book, and the flows do not wait for the registry).

plxtra/xosp ``XOSP-Configure.ps1`` writes ``UsingFoundry`` once for the deployment
(``task-params.json``); ``Config/Tasks/account-deposit.ps1``: "Deposits into Foundry will flow
through to OMS automatically", and without Foundry "we can submit deposits into OMS directly";
``account-withdraw.ps1`` alike.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import pytest

from consumers.oms import queries as oms
from consumers.oms.orders import OPEN_STATES
from consumers.registry import queries as registry
from consumers.runtime.dead_letters import schema_connection
from exchanges import load_oms_adapter
from infrastructure.settings import Settings
from producers import Outgoing, Published, Publisher, open_publisher
from schemas import Event
from schemas.accounts import (
    AccountLogin,
    FundsDeposited,
    FundsWithdrawn,
    Investor,
    TradingAccountClosed,
    TradingAccountOpened,
)
from schemas.orders import OrderPlaced
from schemas.types import AccountRight, InvestorType, OrderLifetime, OrderSide, OrderType, PositiveMoney
from schemas.users import UserCreated
from tests.conftest import Stack
from tests.support.all_services import eventually, running
from tests.support.exchanges import new_exchange_code
from tests.support.service_under_test import module_settings
from xbus.trading import prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]

WITHOUT_REGISTRY = ("authorisation", "oms", "gateway", "provisioning")
WITH_REGISTRY = (*WITHOUT_REGISTRY, "registry")


@dataclass
class Deployment:
    settings: Settings
    publisher: Publisher
    db: asyncpg.Connection

    async def publish(self, *events: Event | Outgoing) -> None:
        results = await self.publisher.publish_many(list(events))
        assert all(isinstance(result, Published) for result in results), results

    async def scalar(self, query: str, *args: object) -> object:
        return await self.db.fetchval(query.format(schema=self.settings.db_schema("provisioning")), *args)

    def oms_connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return schema_connection(self.settings.database_url or "", self.settings.db_schema("oms"))

    async def oms_books(self, account_id: str) -> tuple[dict[str, Decimal], dict[str, int]]:
        async with self.oms_connection() as db:
            held = await oms.positions(db, account_id)
        return (
            {cash.currency: cash.balance for cash in held.cash},
            {holding.instrument: holding.quantity for holding in held.holdings if holding.quantity},
        )

    async def registry_books(self, account_id: str) -> tuple[dict[str, Decimal], dict[str, int]]:
        async with schema_connection(self.settings.database_url or "", self.settings.db_schema("registry")) as db:
            return await registry.cash(db, account_id), await registry.holdings(db, account_id)

    async def flow_state(self, flow_id: str) -> str | None:
        """The flow's state once it has ended (completed or failed); None while open or unknown."""
        state = await self.scalar("select state from {schema}.flows where flow_id = $1", flow_id)
        return None if state in (None, "open") else str(state)


@asynccontextmanager
async def deployed(stack: Stack, services: tuple[str, ...]) -> AsyncIterator[Deployment]:
    settings = await module_settings(stack)
    db = await asyncpg.connect(settings.database_url or "")
    async with open_publisher(settings) as publisher, running(settings, services):
        deployment = Deployment(settings, publisher, db)

        async def migrated() -> bool:
            for service in services:
                if not await db.fetchval("select to_regclass($1)", f"{settings.db_schema(service)}.xbus_dead_letters"):
                    return False
            return True

        await eventually(migrated, 60, "every service migrated")
        yield deployment
    await db.close()


async def trade_and_withdraw(deployment: Deployment) -> tuple[str, dict[str, int], list[str | None]]:
    """Add an exchange, open and fund an account, buy on Prodigy, then withdraw the whole deposit
    (refused: some is spent) and what is left (booked). The account, what it holds, and the
    state of the deposit's and the two withdrawals' flows."""
    exchange = prodigy_exchange(new_exchange_code(), markets=1, symbols=1)
    [(instrument, price)] = load_oms_adapter("prodigy").reference_prices(exchange).items()
    login = f"user-{uuid.uuid4().hex[:8]}"
    account_id = f"XS:{uuid.uuid4().hex[:10]}"
    investor = Investor(investor_id=f"inv-{login}", full_name="Pat Kim", country="AU", type=InvestorType.INDIVIDUAL)
    await deployment.publish(
        exchange,
        UserCreated(login_id=login, username=login, email=f"{login}@example.com", display_name="Pat"),
        TradingAccountOpened(
            account_id=account_id,
            owner="XS",
            name="Pat's account",
            classification="Retail",
            default_currency="AUD",
            investor=investor,
            logins=(AccountLogin(login_id=login, rights=(AccountRight.VIEW, AccountRight.TRADE)),),
            allowed_exchanges=(exchange.code,),
        ),
    )
    flows = [str(uuid.uuid4()) for _ in range(3)]
    await deployment.publish(
        Outgoing(FundsDeposited(account_id=account_id, amount=aud("1000"), reference="D1"), event_id=flows[0])
    )

    async def funded() -> bool:
        return (await deployment.oms_books(account_id))[0].get("AUD") == Decimal(1000)

    await eventually(funded, 90, "the deposit booked in the OMS")
    limit = (price * Decimal("1.05")).quantize(Decimal("0.01"))
    quantity = max(1, int(Decimal(500) / limit))  # half the deposit: reference prices vary by exchange code
    placed: list[str] = []

    async def bought() -> bool:
        """Orders are taken once the OMS has the exchange's adapter and the login's trade right,
        which come on other topics: an order rejected meanwhile is placed again under a new id."""
        order = None
        if placed:
            async with deployment.oms_connection() as db:
                order = await oms.order(db, placed[-1])
            if order is None or order.state in OPEN_STATES:
                return False  # not applied or not ended yet
            if order.filled_quantity:
                return True
        placed.append(f"o-{uuid.uuid4().hex[:8]}")
        await deployment.publish(
            OrderPlaced(
                order_id=placed[-1],
                account_id=account_id,
                login_id=login,
                instrument=instrument,
                side=OrderSide.BUY,
                order_type=OrderType.LIMIT,
                quantity=quantity,
                limit_price=limit,
                lifetime=OrderLifetime.IMMEDIATE_OR_CANCEL,
            )
        )
        return False

    await eventually(bought, 120, "a buy filled")
    cash, held = await deployment.oms_books(account_id)
    assert Decimal(0) < cash["AUD"] < Decimal(1000) and list(held) == [instrument], (cash, held)
    await deployment.publish(
        Outgoing(FundsWithdrawn(account_id=account_id, amount=aud("1000"), reference="W1"), event_id=flows[1]),
        Outgoing(
            FundsWithdrawn(account_id=account_id, amount=aud(str(cash["AUD"])), reference="W2"), event_id=flows[2]
        ),
    )

    async def ended() -> bool:
        return None not in [await deployment.flow_state(flow_id) for flow_id in flows]

    async def states() -> str:
        return str([await deployment.flow_state(flow_id) for flow_id in flows])

    await eventually(ended, 90, "the deposit's and withdrawals' flows ended", states)
    return account_id, held, [await deployment.flow_state(flow_id) for flow_id in flows]


def aud(amount: str) -> PositiveMoney:
    return PositiveMoney(amount=Decimal(amount), currency="AUD")


async def test_with_the_registry_the_oms_mirrors_its_book(stack: Stack) -> None:
    async with deployed(stack, WITH_REGISTRY) as deployment:
        account_id, held, flows = await trade_and_withdraw(deployment)

        async def settled() -> bool:
            return await deployment.registry_books(account_id) == ({"AUD": Decimal(0)}, held)

        await eventually(settled, 60, "the registry's books")
        assert await deployment.oms_books(account_id) == ({"AUD": Decimal(0)}, held)
        assert flows == ["completed", "failed", "completed"]


@pytest.mark.usefixtures("without_registry")
async def test_without_the_registry_the_oms_is_the_book(stack: Stack) -> None:
    async with deployed(stack, WITHOUT_REGISTRY) as deployment:
        account_id, held, flows = await trade_and_withdraw(deployment)
        assert await deployment.oms_books(account_id) == ({"AUD": Decimal(0)}, held)
        assert flows == ["completed", "failed", "completed"]
        schema = deployment.settings.db_schema("registry")
        assert await deployment.db.fetchval("select to_regclass($1)", f"{schema}.cash") is None, "no registry ran"


@pytest.mark.usefixtures("without_registry")
async def test_without_the_registry_a_closing_completes_and_takes_the_access_away(stack: Stack) -> None:
    """The OMS closes the empty account, and authorisation revokes its logins' access on the OMS's
    closing (there is no registry's to wait for): the closing's flow completes."""
    async with deployed(stack, WITHOUT_REGISTRY) as deployment:
        login = f"user-{uuid.uuid4().hex[:8]}"
        account_id = f"XS:{uuid.uuid4().hex[:10]}"
        opening, closing = str(uuid.uuid4()), str(uuid.uuid4())
        investor = Investor(investor_id=f"inv-{login}", full_name="Sam Lee", country="AU", type=InvestorType.INDIVIDUAL)
        await deployment.publish(
            UserCreated(login_id=login, username=login, email=f"{login}@example.com", display_name="Sam"),
            Outgoing(
                TradingAccountOpened(
                    account_id=account_id,
                    owner="XS",
                    name="Sam's account",
                    classification="Retail",
                    default_currency="AUD",
                    investor=investor,
                    logins=(AccountLogin(login_id=login, rights=(AccountRight.VIEW, AccountRight.TRADE)),),
                ),
                event_id=opening,
            ),
        )

        async def opened() -> bool:
            return await deployment.flow_state(opening) == "completed"

        await eventually(opened, 90, "the account's opening completed")
        await deployment.publish(Outgoing(TradingAccountClosed(account_id=account_id), event_id=closing))

        async def closed() -> bool:
            return await deployment.flow_state(closing) is not None

        await eventually(closed, 90, "the closing's flow ended")
        assert await deployment.flow_state(closing) == "completed"
        schema = deployment.settings.db_schema("authorisation")
        revoked_by = await deployment.db.fetchval(
            f"select revoked_by from {schema}.associations where from_code = $1 and to_code = $2", login, account_id
        )
        assert revoked_by == "account"
