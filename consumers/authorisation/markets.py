"""Handlers of ``xosp.exchanges``: each market of an exchange is the asset ``Market:<code>``.

The reference deployment's ``market-create.ps1`` defines the Authority asset as it creates the
market (``Asset Define XOSP Market <code>``); here an exchange's ``ExchangeAdded`` (and an
``ExchangeUpdated`` that lists its markets) does. Associations may name a market before it is
defined (a login's markets, a group's): defining it changes what no login may do.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.authorisation.reach import Asset
from consumers.authorisation.store import EntitlementsUnit
from schemas.exchanges import ExchangeAdded, ExchangeUpdated, Market
from schemas.groups import AssetType


async def exchange_added(event: ExchangeAdded, unit: EntitlementsUnit) -> None:
    await _define(unit, event.markets, event.name)


async def exchange_updated(event: ExchangeUpdated, unit: EntitlementsUnit) -> None:
    """Markets the update lists that are new are defined; those it no longer lists stay."""
    if event.markets is not None:
        await _define(unit, event.markets, event.name)


async def _define(unit: EntitlementsUnit, markets: Iterable[Market], exchange_name: str | None) -> None:
    for market in markets:
        asset = Asset(AssetType.MARKET, market.code)
        await unit.store.define_asset(asset, exchange_name, unit.flow_id, unit.cause.time)
