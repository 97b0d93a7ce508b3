"""Exchanges and orders for tests: a Prodigy exchange with markets and symbols, and routed orders."""

from __future__ import annotations

import datetime as dt
import uuid

from schemas.exchanges import ExchangeAdded, Market, Symbol, TradingHours


def new_exchange_code() -> str:
    return f"T{uuid.uuid4().hex[:6].upper()}"


def prodigy_exchange(
    code: str,
    *,
    markets: int = 2,
    symbols: int = 3,
    currency: str = "AUD",
    settles_through_registry: bool = True,
    plugin: str = "prodigy",
    adapter: str = "prodigy",
) -> ExchangeAdded:
    """``code`` with markets ``code``, ``codeB``, ... each listing ``XS01``, ``XS02``, ..."""
    return ExchangeAdded(
        code=code,
        name=f"Prodigy test exchange {code}",
        markets=tuple(
            Market(
                code=code + ("" if index == 0 else chr(ord("A") + index)),
                currency=currency,
                time_zone="Australia/Sydney",
                trading_hours=TradingHours(open=dt.time(10, 0), close=dt.time(16, 0)),
                symbols=tuple(
                    Symbol(code=f"XS{n:02d}", name=f"Test company {n}", currency=currency, cfi_code="ESVUFR")
                    for n in range(1, symbols + 1)
                ),
            )
            for index in range(markets)
        ),
        market_data_plugin=plugin,
        oms_adapter=adapter,
        settles_through_registry=settles_through_registry,
    )


def instruments(exchange: ExchangeAdded) -> list[str]:
    return [f"{symbol.code}.{market.code}" for market in exchange.markets for symbol in market.symbols]
