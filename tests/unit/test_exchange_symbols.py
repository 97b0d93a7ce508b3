"""A symbol created as an operation of its own (issue 19, item 7) reaches the OMS: its instrument
is listed, so that orders on it are vetted and accepted like those on the exchange's other
instruments. (The registry's side, its issuer and token, is in test_registry_entities.py.)"""

from __future__ import annotations

import pytest

from consumers.runtime import DomainError, MissingPrerequisite
from schemas.exchanges import Symbol, SymbolCreated
from schemas.oms import OrderAccepted, OrderRejected
from tests.support.memory_oms import MemoryBooks, StoredInstrument
from tests.unit.test_oms_handlers import EXCHANGE, handle, placed, trading
from xbus.trading import prodigy_exchange


def created(code: str = "NEW1", *, exchange: str = EXCHANGE, market: str = EXCHANGE) -> SymbolCreated:
    return SymbolCreated(
        exchange=exchange,
        market=market,
        symbol=Symbol(code=code, name=f"{code} Ltd", currency="AUD", cfi_code="EXXXXX", issuer="ACME"),
    )


async def test_an_order_on_a_symbol_created_after_its_exchange_is_accepted_and_before_it_is_rejected() -> None:
    """plxtra/xosp Config/Tasks/symbol-create.ps1: "Creates the Symbol on the Market in Prodigy"
    (``Symbol Add XOSP $MarketCode $SymbolCode -Name $SymbolName -Currency $Currency``): from then
    on the market trades it, so the OMS takes orders on ``SYMBOL.MARKET``."""
    books = await trading()
    before = await handle(placed("o0", instrument="NEW1.XSUT"), books)
    assert [type(e) for e in before.events] == [OrderRejected]
    await handle(created(), books)
    assert books.instruments["NEW1.XSUT"] == StoredInstrument(EXCHANGE, EXCHANGE, "AUD")
    after = await handle(placed("o1", instrument="NEW1.XSUT"), books)
    assert OrderAccepted in [type(e) for e in after.events], after.events


async def test_a_symbol_of_an_exchange_the_oms_does_not_have_waits_for_it() -> None:
    with pytest.raises(MissingPrerequisite) as waiting:
        await handle(created(), MemoryBooks())
    assert waiting.value.waits_for == EXCHANGE and "ExchangeAdded" in str(waiting.value)


async def test_a_symbol_on_a_market_another_exchange_lists_is_refused() -> None:
    books = MemoryBooks()
    await handle(prodigy_exchange(EXCHANGE, markets=1), books)
    await handle(prodigy_exchange("XOTH", markets=1), books)
    with pytest.raises(DomainError, match=r"XOTH lists markets another exchange already lists: XSUT \(by XSUT\)"):
        await handle(created(exchange="XOTH"), books)
    assert "NEW1.XSUT" not in books.instruments
