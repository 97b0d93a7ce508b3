"""Prodigy's public feed: deterministic apart from the clock, in sequence per instrument, paced, closable."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict

import pytest

from exchanges.plugins import (
    MARKET_DATA_GROUP,
    OMS_ADAPTER_GROUP,
    MarketData,
    installed,
    load_market_data_plugin,
    load_oms_adapter,
)
from exchanges.prodigy import ProdigyMarketData, ProdigyOmsAdapter
from exchanges.prodigy.pricing import DEPTH, reference_price
from exchanges.prodigy.simulation import simulate
from schemas.exchanges import ExchangeAdded, Market, Symbol, TradingHours
from schemas.market_data import MarketTradeReported, QuoteUpdated, TradingStatus, TradingStatusChanged

#: Long enough for the seeded walk of XSX to halt and reopen instruments.
LONG_FEED = 6_000


def exchange(code: str = "XSX", markets: dict[str, tuple[str, ...]] | None = None) -> ExchangeAdded:
    listed = markets if markets is not None else {"XSX": ("XS01", "XS02", "XS03"), "XSY": ("XS01",)}
    return ExchangeAdded(
        code=code,
        name=f"{code} exchange",
        markets=tuple(
            Market(
                code=market,
                currency="AUD",
                time_zone="Australia/Sydney",
                trading_hours=TradingHours(open=dt.time(10), close=dt.time(16)),
                symbols=tuple(
                    Symbol(code=symbol, name=symbol, currency="AUD", cfi_code="ESVUFR") for symbol in symbols
                ),
            )
            for market, symbols in listed.items()
        ),
        market_data_plugin="prodigy",
        oms_adapter="prodigy",
    )


async def collect(plugin: ProdigyMarketData, feeding: ExchangeAdded) -> list[MarketData]:
    return [event async for event in plugin.feed(feeding)]


def per_instrument(events: list[MarketData]) -> dict[str, list[MarketData]]:
    grouped: dict[str, list[MarketData]] = defaultdict(list)
    for event in events:
        grouped[event.instrument].append(event)
    return grouped


def timeless(events: list[MarketData], *also: str) -> list[dict[str, object]]:
    """The events without their time (and the fields ``also``)."""
    return [event.model_dump(exclude={"at", *also}) for event in events]


def statuses(events: list[MarketData]) -> list[TradingStatus]:
    return [event.status for event in events if isinstance(event, TradingStatusChanged)]


@pytest.fixture(scope="module")
def long_feed() -> list[MarketData]:
    return asyncio.run(collect(ProdigyMarketData(rate=None, limit=LONG_FEED), exchange()))


async def test_the_same_exchange_gives_the_same_events_apart_from_their_time() -> None:
    first = await collect(ProdigyMarketData(rate=None, limit=500), exchange())
    second = await collect(ProdigyMarketData(rate=None, limit=500), exchange())
    assert timeless(first) == timeless(second)
    other = await collect(ProdigyMarketData(rate=None, limit=500), exchange("XSZ"))
    assert timeless(other, "exchange") != timeless(first, "exchange")


def test_with_a_fixed_clock_the_feed_is_byte_identical() -> None:
    def noon() -> dt.datetime:
        return dt.datetime(2025, 1, 6, 12, tzinfo=dt.UTC)

    def run() -> list[str]:
        return [event.model_dump_json() for event in simulate(exchange(), noon, limit=300)]

    assert run() == run()


def test_seq_starts_at_one_per_instrument_and_rises_by_one(long_feed: list[MarketData]) -> None:
    grouped = per_instrument(long_feed)
    assert sorted(grouped) == ["XS01.XSX", "XS01.XSY", "XS02.XSX", "XS03.XSX"]
    for events in grouped.values():
        assert [event.seq for event in events] == list(range(1, len(events) + 1))


def test_each_instrument_opens_pre_open_then_open_and_ends_closed(long_feed: list[MarketData]) -> None:
    for events in per_instrument(long_feed).values():
        assert statuses(events[:2]) == [TradingStatus.PRE_OPEN, TradingStatus.OPEN]
        assert statuses(events[-1:]) == [TradingStatus.CLOSED]


def test_a_halted_instrument_reopens_and_prints_nothing_meanwhile(long_feed: list[MarketData]) -> None:
    halts = 0
    for events in per_instrument(long_feed).values():
        halted = False
        for event in events:
            if isinstance(event, TradingStatusChanged):
                halts += event.status is TradingStatus.HALTED
                assert not halted or event.status in (TradingStatus.OPEN, TradingStatus.CLOSED)
                halted = event.status is TradingStatus.HALTED
            else:
                assert not halted, f"{event.instrument} printed {event.event_type} while halted"
    assert halts >= 2


def test_quotes_are_five_levels_a_side_best_first_bids_below_asks(long_feed: list[MarketData]) -> None:
    quotes = [event for event in long_feed if isinstance(event, QuoteUpdated)]
    assert len(quotes) > LONG_FEED // 2
    for quote in quotes:
        bids = [level.price for level in quote.bids]
        asks = [level.price for level in quote.asks]
        assert len(bids) == len(asks) == DEPTH
        assert bids == sorted(bids, reverse=True) and len(set(bids)) == DEPTH
        assert asks == sorted(asks) and len(set(asks)) == DEPTH
        assert bids[0] < asks[0]


def test_trades_start_from_the_reference_price_and_have_unique_trade_ids(long_feed: list[MarketData]) -> None:
    for instrument, events in per_instrument(long_feed).items():
        trades = [event for event in events if isinstance(event, MarketTradeReported)]
        assert trades, f"{instrument} printed no trade"
        assert len({trade.venue_trade_id for trade in trades}) == len(trades)
        reference = reference_price("XSX", instrument)
        assert abs(trades[0].price - reference) <= reference / 50


def test_events_are_valid_market_data_read_back_unchanged(long_feed: list[MarketData]) -> None:
    for event in long_feed[:500]:
        assert type(event).model_validate_json(event.model_dump_json()) == event


@pytest.mark.parametrize("limit", [12, 13, 250])
async def test_the_limit_is_the_number_of_events_closing_statuses_included(limit: int) -> None:
    events = await collect(ProdigyMarketData(rate=None, limit=limit), exchange())
    assert len(events) == limit
    assert statuses(events[-4:]) == [TradingStatus.CLOSED] * 4


def test_a_limit_too_small_to_open_and_close_every_instrument_is_refused() -> None:
    with pytest.raises(ValueError, match=r"limit of 11 events is too small for XSX: its 4 instruments need 12"):
        ProdigyMarketData(limit=11).feed(exchange())


async def test_an_exchange_without_instruments_feeds_nothing() -> None:
    assert await collect(ProdigyMarketData(rate=None), exchange(markets={"XSX": ()})) == []


async def test_the_feed_keeps_to_its_rate() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = await collect(ProdigyMarketData(rate=400.0, limit=60), exchange())
    elapsed = loop.time() - started
    assert len(events) == 60
    # it sleeps after each batch of 8 until that batch is due: the 56th event at 56/400 s
    assert 56 / 400 <= elapsed < 5


async def test_closing_the_feed_stops_it() -> None:
    feed = ProdigyMarketData(rate=None).feed(exchange())
    taken = [await anext(feed) for _ in range(10)]
    await feed.aclose()
    assert len(taken) == 10
    with pytest.raises(StopAsyncIteration):
        await anext(feed)


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be a positive number"):
        ProdigyMarketData(rate=rate)


def test_both_plugins_load_through_their_entry_points() -> None:
    assert "prodigy" in installed(MARKET_DATA_GROUP) and "prodigy" in installed(OMS_ADAPTER_GROUP)
    plugin = load_market_data_plugin("prodigy")
    assert isinstance(plugin, ProdigyMarketData) and (plugin.rate, plugin.limit) == (50.0, None)
    assert isinstance(load_oms_adapter("prodigy"), ProdigyOmsAdapter)
