"""The Foundry Registry's entities on the real broker and database (issue 19, items 6 and 7): a
registry per market and a token per symbol, a symbol created on its own, and holdings of tokens
issued and reclaimed without a trade. One registry runs for the whole module; each test uses
exchanges and accounts of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from consumers.registry import queries
from consumers.registry.service import SERVICE
from schemas.accounts import HoldingsIssued, HoldingsReclaimed, Investor, TradingAccountOpened
from schemas.exchanges import Symbol, SymbolCreated
from schemas.provisioning import StepFailed
from schemas.registry import HoldingAdjusted, TokenDefined
from schemas.types import InvestorType
from tests.conftest import Stack
from tests.support.exchanges import new_exchange_code
from tests.support.service_under_test import ServiceUnderTest, module_settings
from xbus.trading import prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def registry(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await module_settings(stack)) as service:
        yield service


async def opened_account(registry: ServiceUnderTest) -> str:
    account_id = f"XS:{uuid.uuid4().hex[:12]}"
    investor = Investor(
        investor_id=f"INV-{account_id[3:]}", full_name="Jo Citizen", country="AU", type=InvestorType.INDIVIDUAL
    )
    opening = TradingAccountOpened(
        account_id=account_id,
        owner="XS",
        name="Trading",
        classification="Retail",
        default_currency="AUD",
        investor=investor,
    )
    await registry.handle(opening)
    return account_id


async def test_a_symbol_created_on_its_own_is_a_token_of_its_markets_registry_and_can_be_issued_and_reclaimed(
    registry: ServiceUnderTest,
) -> None:
    """plxtra/xosp Config/Tasks/symbol-create.ps1 defines the Token ``"${SymbolCode}.${MarketCode}"``
    owned by ``$IssuerCode`` and links it to the market's Registry; account-issue.ps1 "issues an
    amount of shares in the given symbol into an account" and account-reclaim.ps1 "reclaims an
    amount of shares of the given symbol from an account"."""
    code = new_exchange_code()
    await registry.handle(prodigy_exchange(code, markets=1, symbols=1))
    created = SymbolCreated(
        exchange=code,
        market=code,
        symbol=Symbol(code="NEW1", name="New One Ltd", currency="AUD", cfi_code="EXXXXX", issuer="ACME"),
    )
    defined = await registry.handle(created)
    token = f"NEW1.{code}"
    assert defined.follow_ups == [
        TokenDefined(flow_id=defined.flow_id, exchange=code, registry=code, issuer="ACME", token=token)
    ]
    assert [(t.code, t.issuer, t.name) for t in await queries.tokens(registry.db, code)] == [
        (token, "ACME", "New One Ltd"),
        (f"XS01.{code}", "XS01", "Company XS01"),
    ]

    account_id = await opened_account(registry)
    issued = await registry.handle(
        HoldingsIssued(account_id=account_id, instrument=token, quantity=100, reference="ISS-1")
    )
    assert issued.follow_ups == [
        HoldingAdjusted(
            flow_id=issued.flow_id,
            account_id=account_id,
            token=token,
            delta=100,
            holding_after=100,
            reference="ISS-1",
        )
    ]
    beyond = await registry.handle(
        HoldingsReclaimed(account_id=account_id, instrument=token, quantity=101, reference="REC-1")
    )
    [refused] = beyond.follow_ups
    assert isinstance(refused, StepFailed) and refused.step == "registry.holding"
    assert refused.reason == f"reclaim of 101 {token} exceeds the holding of 100 {token}"
    reclaimed = await registry.handle(
        HoldingsReclaimed(account_id=account_id, instrument=token, quantity=30, reference="REC-2")
    )
    [adjusted] = reclaimed.follow_ups
    assert isinstance(adjusted, HoldingAdjusted) and (adjusted.delta, adjusted.holding_after) == (-30, 70)
    again = await registry.handle(
        HoldingsIssued(account_id=account_id, instrument=token, quantity=100, reference="ISS-1")
    )
    [twice] = again.follow_ups
    assert isinstance(twice, StepFailed) and "under reference ISS-1 already" in twice.reason
    assert await queries.holdings(registry.db, account_id) == {token: 70}


async def test_the_ledger_itself_refuses_a_movement_of_no_token_and_a_reference_twice(
    registry: ServiceUnderTest,
) -> None:
    code = new_exchange_code()
    await registry.handle(prodigy_exchange(code, markets=1, symbols=1))
    account_id = await opened_account(registry)
    insert = (
        "insert into holding_movements (flow_id, account_id, token, delta, holding_after, reference, applied_at)"
        " values ('f', $1, $2, 1, 1, 'R', now())"
    )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await registry.db.execute(insert, account_id, f"ZZ.{code}")
    await registry.db.execute(insert, account_id, f"XS01.{code}")
    with pytest.raises(asyncpg.UniqueViolationError):
        await registry.db.execute(insert, account_id, f"XS01.{code}")
