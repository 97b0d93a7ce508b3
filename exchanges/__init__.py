"""Exchange plugins: the protocols a market-data plugin and an OMS adapter implement, their
discovery through entry points, and Prodigy, the simulated exchange shipped with the bus."""

from exchanges.plugins import (
    AdapterResult,
    ExecutionReport,
    MarketData,
    MarketDataPlugin,
    OmsAdapter,
    PluginError,
    load_market_data_plugin,
    load_oms_adapter,
)

__all__ = [
    "AdapterResult",
    "ExecutionReport",
    "MarketData",
    "MarketDataPlugin",
    "OmsAdapter",
    "PluginError",
    "load_market_data_plugin",
    "load_oms_adapter",
]
