"""What an exchange plugs in: a Zenith market-data plugin and an OMS adapter, found by entry point.

A third party adds an exchange by installing a package that declares, in its own
``pyproject.toml``::

    [project.entry-points."xosp_bus.market_data"]
    myexchange = "mypackage.feed:MyMarketData"

    [project.entry-points."xosp_bus.oms_adapters"]
    myexchange = "mypackage.orders:MyOmsAdapter"

and an ``ExchangeAdded`` naming ``myexchange`` as its ``market_data_plugin`` and ``oms_adapter``.
Each entry point is a class (or any callable) taking no arguments that returns the plugin.

**Market data** is a stream: ``feed(exchange)`` is an async iterator of trades, quotes (best
bid/ask first, deeper levels where the exchange has them) and trading-status changes, and the
feed stops when the iterator is closed (``aclose()``). The ``market_data`` service publishes
what it yields on ``xosp.marketdata.<exchange>``.

**Orders** go through an adapter that the ``gateway`` service calls once per instruction, with
the instrument's adapter state as the gateway last stored it; the adapter returns the execution
reports the instruction caused (for the order itself and for resting orders it traded with)
and the instrument's new state. The gateway stores that state in the same PostgreSQL
transaction as the reports' outbox rows, so an instruction is applied exactly once even when the
gateway crashes half-way, and a replay rebuilds the same book. This is how a matching engine is
kept in production (a deterministic state machine over a sequenced journal of instructions) and
it suits an adapter of a real exchange too: its state then holds what it needs to resume a
session (sequence numbers, the venue's order ids), and it must treat ``order_id`` as the client
order id the exchange deduplicates on.

**The close** of each market is told to the adapter too: once a market's trading day has
ended (``ExchangeAdded`` gives its ``trading_hours.close`` in its ``time_zone``), the gateway
calls ``end_of_day`` once per instrument of the market that it holds a state of, and the
adapter ends what does not outlive the day (``DAY`` orders, reported ``EXPIRED``), in the same
transaction as the state, as for an instruction. The adapter reads no clock to know that the
day is over: the close is the gateway's to tell, once per market and trading day. An adapter
of a real exchange, which expires orders itself, returns there the expiries the exchange sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import entry_points
from typing import Any, Protocol, TypeAlias, runtime_checkable

from infrastructure.errors import XbusError
from schemas.exchanges import ExchangeAdded
from schemas.gateway import ExecutionKind
from schemas.market_data import MarketTradeReported, QuoteUpdated, TradingStatusChanged
from schemas.oms import OrderCancelRouted, OrderRouted
from schemas.types import OrderSide

MARKET_DATA_GROUP = "xosp_bus.market_data"
OMS_ADAPTER_GROUP = "xosp_bus.oms_adapters"

MarketData: TypeAlias = MarketTradeReported | QuoteUpdated | TradingStatusChanged
#: An adapter's state for one instrument: JSON-serialisable (dicts, lists, str, int, bool, None).
AdapterState: TypeAlias = Mapping[str, Any]


class PluginError(XbusError):
    """A plugin named by an exchange is not installed, or cannot be loaded."""


@runtime_checkable
class MarketDataPlugin(Protocol):
    def feed(self, exchange: ExchangeAdded) -> AsyncIterator[MarketData]:
        """Yield ``exchange``'s market data, per instrument in ``seq`` order, until closed."""
        ...


@dataclass(frozen=True)
class ExecutionReport:
    """One thing that happened to one order at the exchange (a FIX ExecutionReport)."""

    order_id: str
    account_id: str
    side: OrderSide
    kind: ExecutionKind
    cumulative_quantity: int
    leaves_quantity: int
    fill_quantity: int = 0
    fill_price: Decimal | None = None
    venue_trade_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class AdapterResult:
    reports: tuple[ExecutionReport, ...]
    #: The instrument's adapter state after the instruction, to pass to the next call.
    state: AdapterState


@runtime_checkable
class OmsAdapter(Protocol):
    def reference_prices(self, exchange: ExchangeAdded) -> Mapping[str, Decimal]:
        """Per instrument (``CODE.MARKET``), the price the OMS vets against until trades set one."""
        ...

    async def submit(self, order: OrderRouted, state: AdapterState | None) -> AdapterResult:
        """Send a new order; ``state`` is None for an instrument's first instruction."""
        ...

    async def cancel(self, cancel: OrderCancelRouted, state: AdapterState | None) -> AdapterResult:
        """Cancel what is left of an order; a cancel of an order no longer open reports nothing."""
        ...

    async def end_of_day(self, instrument: str, state: AdapterState | None) -> AdapterResult:
        """The market has closed: end what does not outlive the day (``DAY`` orders, reported
        ``EXPIRED``); ``state`` is the instrument's as last stored."""
        ...


def load_market_data_plugin(name: str) -> MarketDataPlugin:
    plugin = _load(MARKET_DATA_GROUP, name)
    if not isinstance(plugin, MarketDataPlugin):
        raise PluginError(f"market-data plugin {name!r} has no feed(exchange) method")
    return plugin


def load_oms_adapter(name: str) -> OmsAdapter:
    adapter = _load(OMS_ADAPTER_GROUP, name)
    if not isinstance(adapter, OmsAdapter):
        raise PluginError(f"OMS adapter {name!r} lacks reference_prices, submit, cancel or end_of_day")
    return adapter


def installed(group: str) -> Sequence[str]:
    return sorted(entry.name for entry in entry_points(group=group))


def _load(group: str, name: str) -> object:
    found = entry_points(group=group, name=name)
    if not found:
        raise PluginError(
            f"no plugin {name!r} in entry-point group {group!r}; installed: {', '.join(installed(group)) or 'none'}"
        )
    entry = next(iter(found))
    try:
        return entry.load()()
    except Exception as error:  # a third party's import or constructor failing: say which plugin
        raise PluginError(f"plugin {name!r} ({entry.value}) failed to load: {error!r}") from error
