"""Events of ``xosp.exchanges`` (key: exchange code): onboarding an exchange."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Self
from zoneinfo import available_timezones

from pydantic import Field, field_validator, model_validator

from schemas.event import Event
from schemas.types import (
    CfiCode,
    Currency,
    ExchangeCode,
    Frozen,
    Label,
    MarketCode,
    NonEmpty,
    unique,
)

SymbolCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,32}$")]
#: The Foundry Registry's ``Issuer`` entity of a symbol (symbol-create.ps1's ``-IssuerCode``).
IssuerCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,32}$")]
TimeZone = Annotated[str, Field(min_length=1, max_length=64, description="IANA time zone, e.g. Australia/Sydney")]


class TradingHours(Frozen):
    """Continuous trading window in the market's own time zone."""

    open: dt.time
    close: dt.time

    @model_validator(mode="after")
    def _open_before_close(self) -> Self:
        if self.open >= self.close:
            raise ValueError("open must be before close")
        return self


class Symbol(Frozen):
    code: SymbolCode
    name: NonEmpty
    currency: Currency
    cfi_code: CfiCode
    #: The issuer the registry records the symbol's token under; none means one issuer of its own,
    #: coded as the symbol (symbol-create-bulk.ps1 creates symbols without one).
    issuer: IssuerCode | None = None

    @property
    def issuer_code(self) -> str:
        return self.issuer if self.issuer is not None else self.code


class Market(Frozen):
    code: MarketCode
    currency: Currency
    time_zone: TimeZone
    trading_hours: TradingHours
    symbols: tuple[Symbol, ...] = ()

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        if value not in _time_zones():
            raise ValueError(f"{value!r} is not an IANA time zone")
        return value

    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, value: tuple[Symbol, ...]) -> tuple[Symbol, ...]:
        return unique(value, "symbol", key=lambda symbol: symbol.code)


def _time_zones() -> set[str]:
    global _TIME_ZONES
    if _TIME_ZONES is None:
        _TIME_ZONES = available_timezones() | {"UTC"}
    return _TIME_ZONES


_TIME_ZONES: set[str] | None = None


class ExchangeAdded(Event):
    event_type = "xosp.exchange.added.v1"
    aggregate_field = "code"

    code: ExchangeCode
    name: NonEmpty
    markets: tuple[Market, ...] = Field(min_length=1)
    #: Entry-point name of the Zenith market-data plugin that feeds this exchange.
    market_data_plugin: Label
    #: Entry-point name of the OMS adapter that routes orders to this exchange.
    oms_adapter: Label
    #: Deprecated: read and ignored. Whether the registry settles is the deployment's choice, for
    #: every exchange (``XBUS_REGISTRY``, docs/exchanges.md); the field stays so that older events
    #: still parse and replay (removing it would be a new event version).
    settles_through_registry: bool = True

    @field_validator("markets")
    @classmethod
    def _unique_markets(cls, value: tuple[Market, ...]) -> tuple[Market, ...]:
        return unique(value, "market", key=lambda market: market.code)


class SymbolCreated(Event):
    """A symbol listed on one market of an exchange, as an operation of its own (symbol-create.ps1):
    the registry defines its issuer and token, the OMS takes orders on it."""

    event_type = "xosp.symbol.created.v1"
    aggregate_field = "exchange"

    exchange: ExchangeCode
    market: MarketCode
    symbol: Symbol

    @property
    def instrument(self) -> str:
        """``SYMBOL.MARKET``: the instrument code, and the registry's token code."""
        return f"{self.symbol.code}.{self.market}"


class ExchangeUpdated(Event):
    """A partial update: only the fields present change."""

    event_type = "xosp.exchange.updated.v1"
    aggregate_field = "code"

    code: ExchangeCode
    name: NonEmpty | None = None
    markets: tuple[Market, ...] | None = None
    market_data_plugin: Label | None = None
    oms_adapter: Label | None = None
    #: Deprecated: read and ignored, as ``ExchangeAdded.settles_through_registry``.
    settles_through_registry: bool | None = None


class ExchangeSuspended(Event):
    event_type = "xosp.exchange.suspended.v1"
    aggregate_field = "code"

    code: ExchangeCode
    reason: NonEmpty


class ExchangeRemoved(Event):
    event_type = "xosp.exchange.removed.v1"
    aggregate_field = "code"

    code: ExchangeCode
    reason: NonEmpty | None = None
