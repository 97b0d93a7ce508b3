"""Wiring of the gateway: exchanges from ``xosp.exchanges``, the OMS's routed instructions, and
the markets' closes (a timer)."""

from __future__ import annotations

from pathlib import Path

from consumers.gateway import closing, handlers
from consumers.gateway.store import PostgresGateway
from consumers.runtime import Service, fields_locked_as
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended, ExchangeUpdated
from schemas.oms import OrderCancelRouted, OrderRouted

SERVICE = Service(
    name="gateway",
    # an instrument's book is one state, and its orders come from every account's partition
    locks=fields_locked_as("instrument", "instrument"),
    handlers={
        ExchangeAdded: handlers.exchange_added,
        ExchangeUpdated: handlers.exchange_updated,
        ExchangeSuspended: handlers.exchange_suspended,
        ExchangeRemoved: handlers.exchange_removed,
        OrderRouted: handlers.order_routed,
        OrderCancelRouted: handlers.order_cancel_routed,
    },
    store=PostgresGateway,
    migrations=Path(__file__).parent / "sql",
    timers=(closing.END_OF_DAY,),
    description=(
        "Gateway: runs each exchange's OMS adapter; routed orders in, execution reports out; "
        "DAY orders expired at each market's close."
    ),
)
