"""The close of each market: a timer of the gateway ends the trading day of every market whose
close has struck, so that the adapters expire its DAY orders.

No event says that a market has closed, so the gateway looks at the clock: every
:data:`INTERVAL_SECONDS`, for each market of an active exchange whose close has passed on a
trading date it has not ended yet (:mod:`consumers.runtime.trading_days`), it hands each of the
market's instruments that it holds a state of to the adapter's ``end_of_day``, stores the new
state and reports what the adapter reports (``EXPIRED``, for Prodigy) as ``ExecutionReported``,
then records the date as ended, all in the tick's transaction. A tick that fails ends nothing
and the next one tries again; reports carry ids made from their instrument, order and kind
(``TimerUnit.record_about``), so a tick run again after a crash, on another instance or on a
rebuilt schema gives the OMS the same events, which its inbox drops.

The instruments are locked as an instruction locks them (one transaction of the gateway at a
time per book), so a close falls between two instructions, never inside one. An instrument's
first instruction applied while the tick runs is not in its list: its DAY order then ends at
the next close. A gateway that was down, or an exchange suspended, over several closes ends
the missed days at once when it is back: what they left open is over.

The close is not an instruction on the gateway's input topics, so a replay of those topics into
an empty schema does not put the closes back between the instructions they fell between: a
replay that crosses a close rebuilds books in which the day's DAY orders rested longer.
"""

from __future__ import annotations

import datetime as dt

import structlog

from consumers.gateway.handlers import adapter, report_event
from consumers.runtime import Timer, TimerUnit
from consumers.runtime.trading_days import last_closed

log = structlog.get_logger("xbus.gateway")

#: How late after a close its DAY orders expire, at most (besides the time a tick takes).
INTERVAL_SECONDS = 10.0


def clock(unit: TimerUnit) -> dt.datetime:
    """The time a tick ends days up to: the tick's own (the runtime's clock); tests set another."""
    return unit.cause.time


async def end_days(unit: TimerUnit) -> None:
    """End the trading day of every market whose close has passed since its last ended day."""
    now = clock(unit)
    due = [
        (market, closed)
        for market in await unit.store.markets_of_active_exchanges()
        if (closed := last_closed(now, market.time_zone, market.close)) > market.ended_through
    ]
    instruments = {market: await unit.store.instruments_with_state(market) for market, _ in due}
    await unit.lock(*(f"instrument:{instrument}" for listed in instruments.values() for instrument in listed))
    for market, closed in due:
        exchange = await unit.store.exchange(market.exchange)
        assert exchange is not None  # markets are kept only of exchanges the gateway runs
        reported = 0
        for instrument in instruments[market]:
            state = await unit.store.adapter_state(instrument)
            result = await adapter(exchange.adapter).end_of_day(instrument, state)
            if result.state != state:
                await unit.store.save_adapter_state(instrument, exchange.code, result.state, unit.cause.time)
            for report in result.reports:
                unit.record_about(
                    f"{instrument}/{report.order_id}/{report.kind}", report_event(exchange, instrument, report)
                )
            reported += len(result.reports)
        await unit.store.end_day(market, closed)
        log.info(
            "trading day ended",
            exchange=market.exchange,
            market=market.market,
            trading_date=str(closed),
            reports=reported,
        )


END_OF_DAY = Timer("end_of_day", INTERVAL_SECONDS, end_days)
