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
        OperatorRegistered.event_type: handlers.operator_registered,
        OperatorDeregistered.event_type: handlers.operator_deregistered,
        TradingAccountOpened.event_type: handlers.account_opened,
        TradingAccountUpdated.event_type: handlers.account_updated,
        TradingAccountSuspended.event_type: handlers.account_suspended,
        RegistryAccountStateChanged.event_type: handlers.registry_account_state_changed,
        ProvisioningFailed.event_type: handlers.provisioning_failed,
        ExchangeAdded.event_type: handlers.exchange_added,
        ExchangeUpdated.event_type: handlers.exchange_updated,
        ExchangeSuspended.event_type: handlers.exchange_suspended,
        ExchangeRemoved.event_type: handlers.exchange_removed,
        OmsAdapterRegistered.event_type: handlers.adapter_registered,
        OmsAdapterStopped.event_type: handlers.adapter_stopped,
        ExecutionReported.event_type: handlers.execution_reported,
        AccountAccessGranted.event_type: handlers.account_access_granted,
        AccessRevoked.event_type: handlers.access_revoked,
        PermissionsGranted.event_type: handlers.permissions_granted,
        CashMovementApplied.event_type: handlers.cash_movement_applied,
        OrderPlaced.event_type: handlers.order_placed,
        OrderCancelRequested.event_type: handlers.order_cancel_requested,
    },
    migrations=Path(__file__).parent / "sql",
    description=(
        "OMS: operators through its Identity function; trading-account metadata, vetting and state; "
        "orders vetted, routed and completed; cash and holdings positions."
    ),
)
