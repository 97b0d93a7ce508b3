"""Follow-up events of the Foundry Registry service ``registry`` (``xosp.registry.events``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.event import Event
from schemas.oms import AccountState
from schemas.provisioning import FlowId
from schemas.types import (
    Currency,
    ExchangeCode,
    InstrumentCode,
    InvestorId,
    Money,
    NonEmpty,
    OperatorId,
    OrderId,
    OrderSide,
    PositiveDecimalString,
    RegistryFeature,
    TradingAccountId,
)


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


class RegistrySettlementEnabled(Event):
    """The registry settles the exchange's executions (step ``registry.settlement`` of an onboarding)."""

    event_type = "xosp.registry_settlement.enabled.v1"
    aggregate_field = "exchange"

    flow_id: FlowId
    exchange: ExchangeCode


class SettlementApplied(Event):
    """One fill booked in one transaction: cash and holding moved, nothing created or lost."""

    event_type = "xosp.settlement.applied.v1"
    aggregate_field = "account_id"

    account_id: TradingAccountId
    exchange: ExchangeCode
    order_id: OrderId
    venue_trade_id: NonEmpty
    instrument: InstrumentCode
    side: OrderSide
    quantity: Annotated[int, Field(ge=1)]
    price: PositiveDecimalString
    #: Negative for a buy, positive for a sell.
    cash_delta: Money
    #: Positive for a buy, negative for a sell.
    holding_delta: int
    cash_balance: Money
    holding_after: Annotated[int, Field(ge=0)]


class TokenDefined(Event):
    """The registry's ``Issuer`` and ``Token`` of a symbol, linked to its market's ``Registry``
    (symbol-create.ps1), for a ``SymbolCreated`` (step ``registry.token``)."""

    event_type = "xosp.registry_token.defined.v1"
    aggregate_field = "exchange"

    flow_id: FlowId
    exchange: ExchangeCode
    #: The market's ``Registry`` entity.
    registry: ExchangeCode
    issuer: NonEmpty
    #: ``SYMBOL.MARKET``.
    token: InstrumentCode


class HoldingAdjusted(Event):
    """Shares of a token issued into or reclaimed from an account (step ``registry.holding``)."""

    event_type = "xosp.holding.adjusted.v1"
    aggregate_field = "account_id"

    flow_id: FlowId
    account_id: TradingAccountId
    token: InstrumentCode
    #: Positive for an issue, negative for a reclaim.
    delta: int
    holding_after: Annotated[int, Field(ge=0)]
    reference: NonEmpty
