"""Wiring of the OMS service: provisioning (operators, accounts, the registry's closures, failed
openings) and the order flow (docs/exchanges.md).

For orders it reads ``xosp.orders`` (orders placed, cancels), ``xosp.exchanges`` (exchanges and
their instruments), the gateway's adapters and execution reports, Resource Authorisation's
account access and logins' disables and enables, and the registry's cash movements; it emits
``OrderAccepted``, ``OrderRejected``, ``OrderRouted``, ``OrderCancelRouted``,
``OrderCancelRejected`` and ``OrderCompleted``.

``TradingAccountClosed``, ``FundsDeposited`` and ``FundsWithdrawn`` are handled only in a
deployment without the registry (``XBUS_REGISTRY=false``, ``funds.py``): with it, funds are the
registry's, the OMS books its ``CashMovementApplied`` and closes on its
``RegistryAccountStateChanged(closed)`` (docs/provisioning.md).
``OrderAmendRequested`` is not handled yet (docs/exchanges.md).
"""

from __future__ import annotations

from pathlib import Path

from consumers.oms import accounts, funds, placing, rights, venues
from consumers.oms.store import PostgresBooks
from consumers.runtime import Service, fields_locked_as
from schemas.accounts import (
    FundsDeposited,
    FundsWithdrawn,
    TradingAccountClosed,
    TradingAccountOpened,
    TradingAccountSuspended,
    TradingAccountUpdated,
)
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended, ExchangeUpdated, SymbolCreated
from schemas.gateway import ExecutionReported, OmsAdapterRegistered, OmsAdapterStopped
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.orders import OrderCancelRequested, OrderPlaced
from schemas.provisioning import ProvisioningFailed
from schemas.registry import CashMovementApplied, RegistryAccountStateChanged

SERVICE = Service(
    name="oms",
    # its handlers lock the account an event names (a failed flow names it as its entity)
    locks=fields_locked_as("account", "account_id", "entity_id"),
    handlers={
        OperatorRegistered: accounts.operator_registered,
        OperatorDeregistered: accounts.operator_deregistered,
        TradingAccountOpened: accounts.account_opened,
        TradingAccountUpdated: accounts.account_updated,
        TradingAccountSuspended: accounts.account_suspended,
        TradingAccountClosed: funds.account_closed,
        FundsDeposited: funds.funds_deposited,
        FundsWithdrawn: funds.funds_withdrawn,
        RegistryAccountStateChanged: accounts.registry_account_state_changed,
        ProvisioningFailed: accounts.provisioning_failed,
        ExchangeAdded: venues.exchange_added,
        ExchangeUpdated: venues.exchange_updated,
        SymbolCreated: venues.symbol_created,
        ExchangeSuspended: venues.exchange_suspended,
        ExchangeRemoved: venues.exchange_removed,
        OmsAdapterRegistered: venues.adapter_registered,
        OmsAdapterStopped: venues.adapter_stopped,
        ExecutionReported: venues.execution_reported,
        AccountAccessGranted: rights.account_access_granted,
        AccessRevoked: rights.access_revoked,
        PermissionsGranted: rights.permissions_granted,
        CashMovementApplied: accounts.cash_movement_applied,
        OrderPlaced: placing.order_placed,
        OrderCancelRequested: placing.order_cancel_requested,
    },
    store=PostgresBooks,
    migrations=Path(__file__).parent / "sql",
    description=(
        "OMS: operators through its Identity function; trading-account metadata, vetting and state; "
        "orders vetted, routed and completed; cash and holdings positions."
    ),
)
