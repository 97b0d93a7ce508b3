"""Follow-up events of the Foundry Registry service ``registry`` (``xosp.registry.events``)."""

from __future__ import annotations

from schemas.event import Event
from schemas.oms import AccountState
from schemas.provisioning import FlowId
from schemas.types import Currency, InvestorId, Money, NonEmpty, OperatorId, RegistryFeature, TradingAccountId


class RegistryOperatorRegistered(Event):
    """The registry's Identity function knows the operator (step ``registry.operator``)."""

    event_type = "xosp.registry_operator.registered.v1"
    aggregate_field = "operator_id"

    flow_id: FlowId
    operator_id: OperatorId
    features: tuple[RegistryFeature, ...]


class RegistryAccountOpened(Event):
    """The investor, the account it owns, zero settled cash and no holdings (step ``registry.account``)."""

    event_type = "xosp.registry_account.opened.v1"
    aggregate_field = "account_id"

    flow_id: FlowId
    account_id: TradingAccountId
    investor_id: InvestorId
    currency: Currency


class CashMovementApplied(Event):
    """A deposit or withdrawal booked on settled cash (step ``registry.cash``)."""

    event_type = "xosp.cash_movement.applied.v1"
    aggregate_field = "account_id"

    flow_id: FlowId
    account_id: TradingAccountId
    #: Positive for a deposit, negative for a withdrawal.
    delta: Money
    #: Settled cash in that currency after the movement.
    balance: Money
    reference: NonEmpty


class RegistryAccountStateChanged(Event):
    """The registry's account is suspended or closed (step ``registry.account_state``)."""

    event_type = "xosp.registry_account.state_changed.v1"
    aggregate_field = "account_id"

    flow_id: FlowId
    account_id: TradingAccountId
    state: AccountState
    reason: NonEmpty | None = None
