"""A symbol created on its own (issue 19, item 7) reaches the OMS on the real broker and database:
its instrument is listed, in the symbol's currency, for vetting to find; a symbol of an exchange
the OMS does not have waits for the exchange. (The registry's side: test_registry_entities.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from consumers.oms.service import SERVICE
from consumers.oms.store import PostgresBooks
from schemas.exchanges import Symbol, SymbolCreated
from tests.conftest import Stack
from tests.support.all_services import eventually
from tests.support.exchanges import new_exchange_code
from tests.support.service_under_test import ServiceUnderTest, module_settings
from xbus.trading import prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def oms(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await module_settings(stack)) as service:
        yield service


def created(exchange: str) -> SymbolCreated:
    return SymbolCreated(
        exchange=exchange,
        market=exchange,
        symbol=Symbol(code="NEW1", name="New One Ltd", currency="USD", cfi_code="EXXXXX"),
    )


async def test_a_symbol_created_after_its_exchange_is_an_instrument_the_oms_vets(oms: ServiceUnderTest) -> None:
    """plxtra/xosp Config/Tasks/symbol-create.ps1: "Creates the Symbol on the Market in Prodigy"
    (``Symbol Add XOSP $MarketCode $SymbolCode -Name $SymbolName -Currency $Currency``)."""
    code = new_exchange_code()
    await oms.handle(prodigy_exchange(code, markets=1, symbols=1))
    books = PostgresBooks(oms.db)
    assert await books.listing(f"NEW1.{code}") is None

    await oms.handle(created(code))

    listed = await books.listing(f"NEW1.{code}")
    assert listed is not None
    instrument, exchange = listed
    assert (instrument.code, instrument.currency, exchange.code) == (f"NEW1.{code}", "USD", code)


async def test_a_symbol_of_an_exchange_not_yet_added_waits_and_is_listed_once_it_is(oms: ServiceUnderTest) -> None:
    code = new_exchange_code()
    waiting = await oms.handle(created(code))
    assert await oms.db.fetchval("select 1 from xbus_pending where event_id = $1", waiting.flow_id)
    await oms.handle(prodigy_exchange(code, markets=1, symbols=1))

    async def listed() -> bool:
        return await PostgresBooks(oms.db).listing(f"NEW1.{code}") is not None

    await eventually(listed, 30, f"NEW1.{code} listed once its exchange is added")
