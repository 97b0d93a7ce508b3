"""Wiring of the OMS service: operators, accounts, the registry's closures and failed openings.

``TradingAccountClosed`` is deliberately not handled: the OMS closes on the registry's
``RegistryAccountStateChanged(closed)`` (docs/provisioning.md). Funds are not handled either:
with registry settlement on (the default) they are the registry's.
"""

from __future__ import annotations

from pathlib import Path

from consumers.oms import handlers
from consumers.runtime import Service
from schemas.accounts import TradingAccountOpened, TradingAccountSuspended, TradingAccountUpdated
from schemas.foundry import RegistryAccountStateChanged
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.provisioning import ProvisioningFailed

SERVICE = Service(
    name="oms",
    handlers={
        OperatorRegistered.event_type: handlers.operator_registered,
        OperatorDeregistered.event_type: handlers.operator_deregistered,
        TradingAccountOpened.event_type: handlers.account_opened,
        TradingAccountUpdated.event_type: handlers.account_updated,
        TradingAccountSuspended.event_type: handlers.account_suspended,
        RegistryAccountStateChanged.event_type: handlers.registry_account_state_changed,
        ProvisioningFailed.event_type: handlers.provisioning_failed,
    },
    migrations=Path(__file__).parent / "sql",
    description="OMS: operators through its Identity function; trading-account metadata, vetting and state.",
)
