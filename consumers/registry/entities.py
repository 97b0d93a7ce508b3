"""The registry's entities of an exchange (foundry-init.ps1, market-create.ps1, symbol-create.ps1):
a ``Registry`` per market, and an ``Issuer`` and a ``Token`` per symbol, the token ``SYMBOL.MARKET``
linked to its market's registry and owned by its issuer. They come with the exchange's own events
(``ExchangeAdded``, ``ExchangeUpdated`` with markets) and with a ``SymbolCreated``, the operation
of symbol-create.ps1. Defining an entity again is idempotent: the latest name and currency stand.
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers.registry import settlement
from consumers.registry.store import LedgerUnit, Token
from schemas.exchanges import ExchangeAdded, ExchangeUpdated, Market, Symbol, SymbolCreated
from schemas.registry import TokenDefined


async def exchange_added(event: ExchangeAdded, unit: LedgerUnit) -> None:
    """The exchange's registries and tokens, then its settlement (``settlement.exchange_added``)."""
    await _define_markets(unit, event.code, event.markets)
    await settlement.exchange_added(event, unit)


async def exchange_updated(event: ExchangeUpdated, unit: LedgerUnit) -> None:
    """Markets an update lists are defined as an ``ExchangeAdded``'s are; none removes an entity
    (holdings of its tokens may remain). An older update's ``settles_through_registry`` changes
    nothing: every exchange settles here (``settlement.exchange_added``)."""
    if event.markets is not None:
        await _define_markets(unit, event.code, event.markets)


async def symbol_created(event: SymbolCreated, unit: LedgerUnit) -> None:
    """The symbol's issuer and token, in its market's registry (defined here if the exchange's
    events have not listed the market), reported for the flow (step ``registry.token``)."""
    await unit.store.define_registry(event.market, event.exchange, unit.flow_id, unit.cause.time)
    token = _token(event.market, event.symbol)
    await unit.store.define_token(token, unit.flow_id, unit.cause.time)
    unit.record(
        TokenDefined(
            flow_id=unit.flow_id, exchange=event.exchange, registry=event.market, issuer=token.issuer, token=token.code
        )
    )


async def _define_markets(unit: LedgerUnit, exchange: str, markets: Sequence[Market]) -> None:
    for market in markets:
        await unit.store.define_registry(market.code, exchange, unit.flow_id, unit.cause.time)
        for symbol in market.symbols:
            await unit.store.define_token(_token(market.code, symbol), unit.flow_id, unit.cause.time)


def _token(market: str, symbol: Symbol) -> Token:
    """symbol-create.ps1: ``Entity Define XOSP $TokenClassID "${SymbolCode}.${MarketCode}" -Owner $IssuerID``."""
    return Token(
        code=f"{symbol.code}.{market}",
        registry=market,
        issuer=symbol.issuer_code,
        name=symbol.name,
        currency=symbol.currency,
    )
