"""A new exchange's markets become ``Market`` assets (consumers/authorisation/markets.py), as
plxtra/xosp's Config/Tasks/market-create.ps1 defines one with
``& dotnet $AuthorityControl Asset Define XOSP Market $MarketCode``."""

from __future__ import annotations

import datetime as dt

from consumers.authorisation.reach import Asset
from schemas.exchanges import ExchangeAdded, ExchangeUpdated, Market, TradingHours
from schemas.groups import AssetType
from tests.support.memory_authorisation import MemoryEntitlements
from tests.unit.test_authorisation_handlers import handle, with_logins


def market(code: str) -> Market:
    return Market(
        code=code,
        currency="AUD",
        time_zone="Australia/Sydney",
        trading_hours=TradingHours(open=dt.time(10), close=dt.time(16)),
    )


def added(*codes: str) -> ExchangeAdded:
    return ExchangeAdded(
        code="XSX",
        name="XOSP Stock Exchange",
        markets=tuple(market(code) for code in codes),
        market_data_plugin="prodigy",
        oms_adapter="prodigy",
    )


async def test_each_market_of_a_new_exchange_is_defined_as_a_market_asset() -> None:
    book = MemoryEntitlements()
    unit = await handle(added("XSX", "XSX[Demo]"), book)
    assert unit.events == []
    assert book.definitions == {
        Asset(AssetType.MARKET, "XSX"): ("XOSP Stock Exchange", unit.cause.id),
        Asset(AssetType.MARKET, "XSX[Demo]"): ("XOSP Stock Exchange", unit.cause.id),
    }


async def test_a_market_defined_later_changes_nothing_a_login_may_do() -> None:
    """A login's markets name their ``Market`` assets before the exchange is added (user-create.ps1
    imports its ``MarketAssociations`` whatever exists): defining the asset then announces nothing."""
    book = await with_logins("pk-1")
    before = await book.effective_permissions("pk-1")
    unit = await handle(added("XSX"), book)
    assert (unit.events, await book.effective_permissions("pk-1")) == ([], before)


async def test_an_update_listing_markets_defines_the_new_ones_and_renames_none_without_a_name() -> None:
    book = MemoryEntitlements()
    first = await handle(added("XSX"), book)
    update = await handle(ExchangeUpdated(code="XSX", markets=(market("XSX"), market("XSX2"))), book)
    assert book.definitions == {
        Asset(AssetType.MARKET, "XSX"): ("XOSP Stock Exchange", first.cause.id),
        Asset(AssetType.MARKET, "XSX2"): (None, update.cause.id),
    }
    await handle(ExchangeUpdated(code="XSX", name="Renamed"), book)
    assert len(book.definitions) == 2
