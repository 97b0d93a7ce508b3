"""Wiring of the OMS service: provisioning (operators, accounts, the registry's closures, failed
openings) and the order flow (docs/exchanges.md).

For orders it reads ``xosp.orders`` (orders placed, cancels), ``xosp.exchanges`` (exchanges and
their instruments), the gateway's adapters and execution reports, Resource Authorisation's
account access and logins' disables and enables, and the registry's cash movements; it emits
``OrderAccepted``, ``OrderRejected``, ``OrderRouted``, ``OrderCancelRouted``,
``OrderCancelRejected`` and ``OrderCompleted``.

``TradingAccountClosed`` is deliberately not handled: the OMS closes on the registry's
``RegistryAccountStateChanged(closed)`` (docs/provisioning.md). Nor are ``FundsDeposited`` and
``FundsWithdrawn``: funds are the registry's, and the OMS books its ``CashMovementApplied``.
``OrderAmendRequested`` is not handled yet (docs/exchanges.md).
"""

from __future__ import annotations

from pathlib import Path

from consumers.oms import handlers
from consumers.runtime import Service, keys_locked_as
from schemas.accounts import TradingAccountOpened, TradingAccountSuspended, TradingAccountUpdated
from schemas.authorisation import AccessRevoked, AccountAccessGranted, PermissionsGranted
from schemas.exchanges import ExchangeAdded, ExchangeRemoved, ExchangeSuspended, ExchangeUpdated
from schemas.gateway import ExecutionReported, OmsAdapterRegistered, OmsAdapterStopped
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.orders import OrderCancelRequested, OrderPlaced
from schemas.provisioning import ProvisioningFailed
from schemas.registry import CashMovementApplied, RegistryAccountStateChanged

SERVICE = Service(
    name="oms",
    # most of what it reads is keyed by trading account, and its handlers lock the account
    batch_locks=keys_locked_as("account"),
    handlers={
        OperatorRegistered: handlers.operator_registered,
        OperatorDeregistered: handlers.operator_deregistered,
        TradingAccountOpened: handlers.account_opened,
        TradingAccountUpdated: handlers.account_updated,
        TradingAccountSuspended: handlers.account_suspended,
        RegistryAccountStateChanged: handlers.registry_account_state_changed,
        ProvisioningFailed: handlers.provisioning_failed,
        ExchangeAdded: handlers.exchange_added,
        ExchangeUpdated: handlers.exchange_updated,
        ExchangeSuspended: handlers.exchange_suspended,
        ExchangeRemoved: handlers.exchange_removed,
        OmsAdapterRegistered: handlers.adapter_registered,
        OmsAdapterStopped: handlers.adapter_stopped,
        ExecutionReported: handlers.execution_reported,
        AccountAccessGranted: handlers.account_access_granted,
        AccessRevoked: handlers.access_revoked,
        PermissionsGranted: handlers.permissions_granted,
        CashMovementApplied: handlers.cash_movement_applied,
        OrderPlaced: handlers.order_placed,
        OrderCancelRequested: handlers.order_cancel_requested,
    },
    migrations=Path(__file__).parent / "sql",
    description=(
        "OMS: operators through its Identity function; trading-account metadata, vetting and state; "
        "orders vetted, routed and completed; cash and holdings positions."
    ),
)
