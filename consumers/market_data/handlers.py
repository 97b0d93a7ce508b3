"""The market-data service's rules: which exchanges have a running feed, one handler per event type.

Handlers only decide and record: the feeds table says which feeds run, with what definition, and
the feed supervisor of each instance (feeds.py) does the running. Loading the plugin here checks
that it is installed, so that an exchange naming a missing plugin fails its onboarding step
(``StepFailed``) instead of a feed failing later where nobody waits for it. Times come from the
event being handled, never the clock.
"""

from __future__ import annotations

from consumers.market_data import store
from consumers.market_data.store import FeedsUnit
from exchanges.plugins import PluginError, load_market_data_plugin
from infrastructure.catalogue import market_data_topic_name
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended, ExchangeUpdated
from schemas.market_data import MarketDataFeedStarted, MarketDataFeedStopped

STEP_FEED = "market_data.feed"
STEP_FEED_STOP = "market_data.feed_stop"
#: Longest reasons of MarketDataFeedStopped (``NonEmpty``) and StepFailed (``Reason``).
_STOP_REASON_LENGTH = 200
_STEP_REASON_LENGTH = 2000


async def exchange_added(event: ExchangeAdded, unit: FeedsUnit) -> None:
    """Start the exchange's feed (again, with this definition, if it was known)."""
    at = unit.cause.time
    try:
        load_market_data_plugin(event.market_data_plugin)
    except PluginError as error:
        await unit.store.put_feed(event, reason=_reason(str(error)), flow_id=unit.flow_id, at=at)
        unit.step_failed(unit.flow_id, STEP_FEED, _reason(str(error), _STEP_REASON_LENGTH))
        return
    await unit.store.put_feed(event, reason=None, flow_id=unit.flow_id, at=at)
    unit.record(_started(event, unit.flow_id))


async def exchange_updated(event: ExchangeUpdated, unit: FeedsUnit) -> None:
    """Apply the fields present; a running feed restarts when its plugin or its markets change.

    An update starts no flow, so a plugin that cannot be loaded fails no step: the feed stops,
    and ``MarketDataFeedStopped`` says why.
    """
    feed = await unit.store.feed(event.code)
    if feed is None:
        return  # never added here: there is no feed to change
    changes = event.model_dump(exclude_none=True, exclude={"code"})
    definition = ExchangeAdded.model_validate({**feed.definition.model_dump(), **changes})
    restart = feed.state == "running" and (
        definition.market_data_plugin != feed.plugin or definition.markets != feed.definition.markets
    )
    if not restart:
        await unit.store.keep_definition(definition, flow_id=unit.flow_id, at=unit.cause.time)
        return
    try:
        load_market_data_plugin(definition.market_data_plugin)
    except PluginError as error:
        reason = _reason(str(error))
        await unit.store.put_feed(definition, reason=reason, flow_id=unit.flow_id, at=unit.cause.time)
        unit.record(MarketDataFeedStopped(flow_id=unit.flow_id, exchange=event.code, plugin=feed.plugin, reason=reason))
        return
    await unit.store.put_feed(definition, reason=None, flow_id=unit.flow_id, at=unit.cause.time)
    unit.record(_started(definition, unit.flow_id))


async def exchange_suspended(event: ExchangeSuspended, unit: FeedsUnit) -> None:
    await _stop(unit, event.code, _reason(f"exchange suspended: {event.reason}"))


async def exchange_removed(event: ExchangeRemoved, unit: FeedsUnit) -> None:
    await _stop(unit, event.code, _reason(f"exchange removed: {event.reason}" if event.reason else "exchange removed"))


async def _stop(unit: FeedsUnit, exchange: str, reason: str) -> None:
    """Stop the exchange's feed (one stopped already gets the new reason: its step is done too)."""
    feed = await unit.store.feed(exchange)
    if feed is None:
        unit.step_failed(
            unit.flow_id, STEP_FEED_STOP, f"exchange {exchange} has no market-data feed: it was never added"
        )
        return
    await unit.store.stop_feed(exchange, reason=reason, flow_id=unit.flow_id, at=unit.cause.time)
    unit.record(MarketDataFeedStopped(flow_id=unit.flow_id, exchange=exchange, plugin=feed.plugin, reason=reason))


def _started(exchange: ExchangeAdded, flow_id: str) -> MarketDataFeedStarted:
    return MarketDataFeedStarted(
        flow_id=flow_id,
        exchange=exchange.code,
        plugin=exchange.market_data_plugin,
        topic=market_data_topic_name(exchange.code),
        instruments=store.instrument_count(exchange),
    )


def _reason(text: str, limit: int = _STOP_REASON_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
