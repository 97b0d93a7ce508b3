"""Handlers of the gateway: exchanges from ``xosp.exchanges``, instructions from ``xosp.oms.events``.

The gateway is the OMS's connection to the exchanges. For each exchange it runs the OMS adapter
named in ``ExchangeAdded`` (found by entry point, exchanges/plugins.py) and reports it
registered (step ``gateway.adapter``), or the step failed when no such adapter is installed.

Instructions (``OrderRouted``, ``OrderCancelRouted``) are keyed by instrument, so one
instrument's arrive on one partition in the order the OMS routed them. Each is handed to the
adapter with the instrument's adapter state as last stored; the reports it returns become
``ExecutionReported`` events and the new state is stored, all in the batch's transaction: a crash
at any point applies the instruction once or not at all, and a replay into an empty schema
rebuilds the same books and the same reports. An instruction for an exchange that is unknown or
no longer active is answered with a rejection, never dropped: the OMS then releases what the
order reserved.

The gateway also keeps each market's close, and ends its trading day there with the adapter's
``end_of_day`` (a timer: :mod:`consumers.gateway.closing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from consumers.gateway import store
from consumers.gateway.store import ExchangeState, GatewayUnit
from consumers.runtime import DomainError, MissingPrerequisite
from exchanges import ExecutionReport, OmsAdapter, PluginError, load_oms_adapter
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended, ExchangeUpdated
from schemas.gateway import ExecutionKind, ExecutionReported, InstrumentPrice, OmsAdapterRegistered, OmsAdapterStopped
from schemas.oms import OrderCancelRouted, OrderRouted

STEP_ADAPTER = "gateway.adapter"
STEP_ADAPTER_STOP = "gateway.adapter_stop"
#: Reasons go into NonEmpty fields of at most this many characters.
MAX_REASON = 200


@cache
def adapter(name: str) -> OmsAdapter:
    """Adapters keep no state of their own between calls (it is handed to them), so one per name."""
    return load_oms_adapter(name)


async def exchange_added(event: ExchangeAdded, unit: GatewayUnit) -> None:
    try:
        prices = adapter(event.oms_adapter).reference_prices(event)
    except PluginError as error:
        unit.step_failed(unit.flow_id, STEP_ADAPTER, str(error))
        return
    await unit.store.put_exchange(event, unit.cause.time)
    await unit.store.put_markets(event.code, event.markets, unit.cause.time)
    unit.record(
        OmsAdapterRegistered(
            flow_id=unit.flow_id,
            exchange=event.code,
            adapter=event.oms_adapter,
            reference_prices=tuple(
                InstrumentPrice(instrument=instrument, price=price) for instrument, price in sorted(prices.items())
            ),
        )
    )


async def exchange_updated(event: ExchangeUpdated, unit: GatewayUnit) -> None:
    if event.oms_adapter is not None:
        try:
            adapter(event.oms_adapter)
        except PluginError as error:
            raise DomainError(f"exchange {event.code} cannot switch adapter: {error}") from None
    if not await unit.store.update_exchange(event, unit.cause.time):
        raise MissingPrerequisite(
            f"exchange {event.code} is unknown to the gateway (its ExchangeAdded was not applied here)",
            waits_for=event.code,
            needs="the exchange's ExchangeAdded",
            service="gateway",
        )
    if event.markets is not None:
        await unit.store.put_markets(event.code, event.markets, unit.cause.time)


async def exchange_suspended(event: ExchangeSuspended, unit: GatewayUnit) -> None:
    await _stop(unit, event.code, ExchangeState.SUSPENDED, f"suspended: {event.reason}")


async def exchange_removed(event: ExchangeRemoved, unit: GatewayUnit) -> None:
    await _stop(unit, event.code, ExchangeState.REMOVED, f"removed: {event.reason or 'no reason given'}")


async def _stop(unit: GatewayUnit, code: str, state: ExchangeState, reason: str) -> None:
    """Stop the adapter and report it; stopping it again reports again, so every suspension or
    removal flow closes its ``gateway.adapter_stop`` step."""
    reason = reason[:MAX_REASON]
    exchange = await unit.store.exchange(code)
    if exchange is None:
        unit.step_failed(unit.flow_id, STEP_ADAPTER_STOP, f"exchange {code} is not connected to the gateway")
        return
    await unit.store.stop_exchange(code, state, reason, unit.cause.time)
    unit.record(OmsAdapterStopped(flow_id=unit.flow_id, exchange=code, adapter=exchange.adapter, reason=reason))


async def order_routed(event: OrderRouted, unit: GatewayUnit) -> None:
    exchange = await _active_exchange(unit, event.exchange)
    if isinstance(exchange, str):
        rejection = _rejection(event, exchange)
        unit.record(_event(event.exchange, event.instrument, event.currency, event.settles_through_registry, rejection))
        return
    await unit.lock(f"instrument:{event.instrument}")
    result = await adapter(exchange.adapter).submit(event, await unit.store.adapter_state(event.instrument))
    await unit.store.save_adapter_state(event.instrument, event.exchange, result.state, unit.cause.time)
    _report(unit, exchange, event.instrument, result.reports)


async def order_cancel_routed(event: OrderCancelRouted, unit: GatewayUnit) -> None:
    exchange = await _active_exchange(unit, event.exchange)
    if isinstance(exchange, str):
        return  # the exchange takes nothing now; its open orders are not this platform's to end
    await unit.lock(f"instrument:{event.instrument}")
    result = await adapter(exchange.adapter).cancel(event, await unit.store.adapter_state(event.instrument))
    await unit.store.save_adapter_state(event.instrument, event.exchange, result.state, unit.cause.time)
    _report(unit, exchange, event.instrument, result.reports)


async def _active_exchange(unit: GatewayUnit, code: str) -> store.Exchange | str:
    """The exchange to route to, or why there is none."""
    exchange = await unit.store.exchange(code)
    if exchange is None:
        return f"exchange {code} is not connected to the gateway"
    if exchange.state is not ExchangeState.ACTIVE:
        return f"exchange {code} takes no orders ({exchange.state_reason})"
    return exchange


def _rejection(order: OrderRouted, reason: str) -> ExecutionReport:
    return ExecutionReport(
        order_id=order.order_id,
        account_id=order.account_id,
        side=order.side,
        kind=ExecutionKind.REJECTED,
        cumulative_quantity=0,
        leaves_quantity=0,
        reason=reason[:MAX_REASON],
    )


def _report(unit: GatewayUnit, exchange: store.Exchange, instrument: str, reports: Sequence[ExecutionReport]) -> None:
    for report in reports:
        unit.record(report_event(exchange, instrument, report))


def report_event(exchange: store.Exchange, instrument: str, report: ExecutionReport) -> ExecutionReported:
    """An adapter's report on an order of ``instrument`` as an event: every order of one
    instrument, resting ones that traded included, shares its market's currency and its
    exchange's settlement."""
    return _event(exchange.code, instrument, exchange.currency(instrument), exchange.settles_through_registry, report)


def _event(exchange: str, instrument: str, currency: str, settles: bool, report: ExecutionReport) -> ExecutionReported:
    return ExecutionReported(
        exchange=exchange,
        order_id=report.order_id,
        account_id=report.account_id,
        instrument=instrument,
        side=report.side,
        kind=report.kind,
        currency=currency,
        settles_through_registry=settles,
        fill_quantity=report.fill_quantity,
        fill_price=report.fill_price,
        venue_trade_id=report.venue_trade_id,
        cumulative_quantity=report.cumulative_quantity,
        leaves_quantity=report.leaves_quantity,
        reason=report.reason,
    )
