"""Wiring of the registry: the event types it handles (and so the topics it reads) and its SQL.

It reads ``xosp.operators``, ``xosp.accounts``, ``xosp.exchanges``, ``xosp.provisioning.events``
(compensation) and ``xosp.gateway.events`` (fills to settle).
"""

from __future__ import annotations

from pathlib import Path

from consumers.registry import accounts, compensation, entities, issuance, operators, settlement
from consumers.registry.store import PostgresLedger
from consumers.runtime import Service, fields_locked_as
from schemas.accounts import (
    FundsDeposited,
    FundsWithdrawn,
    HoldingsIssued,
    HoldingsReclaimed,
    TradingAccountClosed,
    TradingAccountOpened,
    TradingAccountSuspended,
)
from schemas.exchanges import ExchangeAdded, ExchangeUpdated, SymbolCreated
from schemas.gateway import ExecutionReported
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.provisioning import ProvisioningFailed

SERVICE = Service(
    name="registry",
    # its handlers lock the account an event names (a failed flow names it as its entity)
    locks=fields_locked_as("account", "account_id", "entity_id"),
    handlers={
        OperatorRegistered: operators.operator_registered,
        OperatorDeregistered: operators.operator_deregistered,
        TradingAccountOpened: accounts.account_opened,
        TradingAccountSuspended: accounts.account_suspended,
        TradingAccountClosed: accounts.account_closed,
        FundsDeposited: accounts.funds_deposited,
        FundsWithdrawn: accounts.funds_withdrawn,
        ProvisioningFailed: compensation.provisioning_failed,
        HoldingsIssued: issuance.holdings_issued,
        HoldingsReclaimed: issuance.holdings_reclaimed,
        ExchangeAdded: entities.exchange_added,
        ExchangeUpdated: entities.exchange_updated,
        SymbolCreated: entities.symbol_created,
        ExecutionReported: settlement.execution_reported,
    },
    store=PostgresLedger,
    migrations=Path(__file__).parent / "sql",
    description=(
        "Foundry Registry: operators, investors, trading accounts, settled cash and holdings of tokens; "
        "a registry per market, an issuer and a token per symbol; issues and reclaims of holdings; "
        "settles the fills of exchanges that settle through it."
    ),
)
