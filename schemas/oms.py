"""Follow-up events of the Order Management System about operators and accounts (``xosp.oms.events``).

Order events (accepted, rejected, executions) belong to the exchanges work and join this module then.
"""

from __future__ import annotations

from enum import StrEnum

from schemas.accounts import VettingLimits
from schemas.event import Event
from schemas.provisioning import FlowId
from schemas.types import Currency, ExchangeCode, NonEmpty, OmsFeature, OperatorId, OwnerCode, TradingAccountId


class AccountState(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class OmsOperatorRegistered(Event):
    """The OMS's Identity function knows the operator (step ``oms.operator``)."""

    event_type = "xosp.oms_operator.registered.v1"
    aggregate_field = "operator_id"

    flow_id: FlowId
    operator_id: OperatorId
    features: tuple[OmsFeature, ...]
    owners: tuple[OwnerCode, ...] = ()


class OmsAccountProvisioned(Event):
    """The OMS holds the account's metadata and vetting settings (step ``oms.account``)."""

    event_type = "xosp.oms_account.provisioned.v1"
    aggregate_field = "account_id"

    flow_id: FlowId
    account_id: TradingAccountId
    currency: Currency
    allowed_exchanges: tuple[ExchangeCode, ...] = ()
    vetting: VettingLimits = VettingLimits()


class OmsAccountStateChanged(Event):
    """The OMS accepts orders for the account, or no longer does (step ``oms.account_state``)."""

    event_type = "xosp.oms_account.state_changed.v1"
    aggregate_field = "account_id"

    flow_id: FlowId
    account_id: TradingAccountId
    state: AccountState
    reason: NonEmpty | None = None
