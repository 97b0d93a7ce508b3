"""The Foundry Registry's entities and the holdings issued and reclaimed in them (issue 19, items
6 and 7), on a FakeUnitOfWork over an in-memory ledger: a ``Registry`` per market, an ``Issuer``
and a ``Token`` per symbol, and holdings of tokens that move without a trade."""

from __future__ import annotations

import pytest

from consumers.registry.ledger import HOLDING_LIMIT, HoldingRefused, apply_holding_adjustment
from consumers.registry.service import SERVICE
from consumers.registry.store import Ledger, Token
from consumers.runtime import FakeUnitOfWork
from schemas import Event
from schemas.accounts import (
    HoldingsIssued,
    HoldingsReclaimed,
    Investor,
    TradingAccountClosed,
    TradingAccountOpened,
    TradingAccountSuspended,
)
from schemas.exchanges import ExchangeUpdated, Symbol, SymbolCreated
from schemas.provisioning import StepFailed
from schemas.registry import HoldingAdjusted, TokenDefined
from schemas.types import InvestorType
from tests.support.memory_registry import MemoryLedger
from xbus.trading import prodigy_exchange

ACCOUNT = "XS:acct1"


async def handle(event: Event, ledger: MemoryLedger) -> FakeUnitOfWork[Ledger]:
    unit: FakeUnitOfWork[Ledger] = FakeUnitOfWork.handling(event, ledger, service="registry")
    await SERVICE.by_type[event.event_type](event, unit)
    return unit


def created(code: str = "NEW1", *, issuer: str | None = "ACME", market: str = "XSUT") -> SymbolCreated:
    return SymbolCreated(
        exchange="XSUT",
        market=market,
        symbol=Symbol(code=code, name=f"{code} Ltd", currency="AUD", cfi_code="EXXXXX", issuer=issuer),
    )


def issue(quantity: int, reference: str = "I1", instrument: str = "XS01.XSUT") -> HoldingsIssued:
    return HoldingsIssued(account_id=ACCOUNT, instrument=instrument, quantity=quantity, reference=reference)


def reclaim(quantity: int, reference: str = "R1", instrument: str = "XS01.XSUT") -> HoldingsReclaimed:
    return HoldingsReclaimed(account_id=ACCOUNT, instrument=instrument, quantity=quantity, reference=reference)


async def with_account() -> MemoryLedger:
    """An exchange XSUT (markets XSUT and XSUTB, symbols XS01..XS02) and an open account."""
    ledger = MemoryLedger()
    await handle(prodigy_exchange("XSUT", symbols=2), ledger)
    investor = Investor(investor_id="inv-1", full_name="Pat Kim", country="AU", type=InvestorType.INDIVIDUAL)
    opening = TradingAccountOpened(
        account_id=ACCOUNT, owner="XS", name="Pat", classification="Retail", default_currency="AUD", investor=investor
    )
    await handle(opening, ledger)
    return ledger


def refusal(unit: FakeUnitOfWork[Ledger]) -> str:
    [failed] = unit.events
    assert isinstance(failed, StepFailed), unit.events
    assert failed.step == "registry.holding"
    return failed.reason


# --- entities (item 6) ----------------------------------------------------------------------


async def test_an_exchange_defines_a_registry_per_market_and_an_issuer_and_token_per_symbol() -> None:
    """plxtra/xosp Config/Tasks/market-create.ps1 defines the market's entity of class ``Registry``
    under ``$MarketCode``; Config/Tasks/symbol-create.ps1 defines an ``Issuer`` and a ``Token``
    ``"${SymbolCode}.${MarketCode}"`` owned by it, linked ``-ByAssociation RegistryToToken`` to the
    market's registry (Config/Init/foundry-init.ps1: ``Name="IssuerToToken"``, ``Name="RegistryToToken"``)."""
    ledger = MemoryLedger()
    await handle(prodigy_exchange("XSUT", symbols=2), ledger)
    assert ledger.registries == {"XSUT": "XSUT", "XSUTB": "XSUT"}
    assert ledger.tokens["XS02.XSUTB"] == Token("XS02.XSUTB", "XSUTB", "XS02", "Company XS02", "AUD")
    assert sorted(ledger.tokens) == ["XS01.XSUT", "XS01.XSUTB", "XS02.XSUT", "XS02.XSUTB"]
    # a symbol listed without an issuer (symbol-create-bulk.ps1 passes none) is its own issuer
    assert ledger.issuers == {"XS01", "XS02"}


async def test_markets_an_update_lists_are_defined_and_a_renamed_symbol_takes_its_new_name() -> None:
    ledger = MemoryLedger()
    await handle(prodigy_exchange("XSUT", markets=1, symbols=1), ledger)
    renamed = prodigy_exchange("XSUT", markets=2, symbols=1).markets
    renamed = tuple(
        m.model_copy(update={"symbols": (m.symbols[0].model_copy(update={"name": "Renamed"}),)}) for m in renamed
    )
    await handle(ExchangeUpdated(code="XSUT", markets=renamed), ledger)
    assert set(ledger.registries) == {"XSUT", "XSUTB"}
    assert ledger.tokens["XS01.XSUT"].name == ledger.tokens["XS01.XSUTB"].name == "Renamed"


# --- symbols as an operation of their own (item 7) ------------------------------------------


async def test_a_symbol_created_defines_its_issuer_and_token_in_the_markets_registry_and_says_so() -> None:
    """plxtra/xosp Config/Tasks/symbol-create.ps1: "This script registers a new Symbol with the XOSP
    system - Registers the Symbol Asset under the Market in the Foundry Registry"; ``$IssuerID =
    ... Entity Define XOSP $IssuerClassID $IssuerCode``, ``$TokenID = ... "${SymbolCode}.${MarketCode}"
    -Desc $SymbolName -Owner $IssuerID``, then ``Entity Link XOSP $TokenID $RegistryID``."""
    ledger = MemoryLedger()
    await handle(prodigy_exchange("XSUT", markets=1), ledger)
    unit = await handle(created(), ledger)
    assert unit.events == [
        TokenDefined(flow_id=unit.cause.id, exchange="XSUT", registry="XSUT", issuer="ACME", token="NEW1.XSUT")
    ]
    assert ledger.tokens["NEW1.XSUT"] == Token("NEW1.XSUT", "XSUT", "ACME", "NEW1 Ltd", "AUD")
    assert "ACME" in ledger.issuers


async def test_a_symbol_on_a_market_not_yet_listed_defines_the_markets_registry_too() -> None:
    ledger = MemoryLedger()
    await handle(created(issuer=None, market="XSUTZ"), ledger)
    assert ledger.registries == {"XSUTZ": "XSUT"}
    assert ledger.tokens["NEW1.XSUTZ"].issuer == "NEW1"


# --- issue and reclaim (item 6) -------------------------------------------------------------


async def test_shares_issued_into_an_account_are_held_of_the_token_and_reported() -> None:
    """plxtra/xosp Config/Tasks/account-issue.ps1: "This script issues an amount of shares in the
    given symbol into an account" (``$Symbol, # Format SYMBOL.MARKET``); without Foundry it is
    ``Holding Transfer XOSP $OwnerCode $AccountCode $MarketCode $SymbolCode $Amount``."""
    ledger = await with_account()
    unit = await handle(issue(100), ledger)
    assert unit.events == [
        HoldingAdjusted(
            flow_id=unit.cause.id, account_id=ACCOUNT, token="XS01.XSUT", delta=100, holding_after=100, reference="I1"
        )
    ]
    await handle(issue(5, reference="I2"), ledger)
    assert ledger.holdings[(ACCOUNT, "XS01.XSUT")] == 105
    assert unit.locked == [f"account:{ACCOUNT}"]


async def test_shares_reclaimed_leave_the_rest_and_a_reclaim_beyond_the_holding_is_refused() -> None:
    """plxtra/xosp Config/Tasks/account-reclaim.ps1: "This script reclaims an amount of shares of
    the given symbol from an account": ``Holding Transfer ... $SymbolCode -$Amount``; with
    ``-OnlyIfHeld`` it skips a symbol whose holding ``-lt $Amount``. Holdings never go below zero."""
    ledger = await with_account()
    await handle(issue(100), ledger)
    [reclaimed] = (await handle(reclaim(40), ledger)).events
    assert isinstance(reclaimed, HoldingAdjusted) and (reclaimed.delta, reclaimed.holding_after) == (-40, 60)
    reason = refusal(await handle(reclaim(61, reference="R2"), ledger))
    assert reason == "reclaim of 61 XS01.XSUT exceeds the holding of 60 XS01.XSUT"
    [emptied] = (await handle(reclaim(60, reference="R3"), ledger)).events
    assert isinstance(emptied, HoldingAdjusted) and emptied.holding_after == 0
    assert ledger.holdings[(ACCOUNT, "XS01.XSUT")] == 0 and len(ledger.holding_movements) == 3


async def test_an_issue_sent_again_under_a_new_event_id_is_refused_naming_the_earlier_one() -> None:
    ledger = await with_account()
    first = await handle(issue(100), ledger)
    reason = refusal(await handle(issue(100), ledger))
    assert reason == (
        f"account {ACCOUNT} had +100 XS01.XSUT booked under reference I1 already (flow {first.cause.id}): "
        "issue of 100 XS01.XSUT (reference I1) refused; a reference is booked once"
    )
    assert refusal(await handle(reclaim(1, reference="I1"), ledger)).startswith(f"account {ACCOUNT} had +100")
    assert ledger.holdings[(ACCOUNT, "XS01.XSUT")] == 100


async def test_a_token_the_registry_does_not_have_is_neither_issued_nor_reclaimed() -> None:
    ledger = await with_account()
    reason = refusal(await handle(issue(1, instrument="ZZ.XSUT"), ledger))
    assert reason == (
        "token ZZ.XSUT is not in the registry (no SymbolCreated or exchange market defined it): "
        "issue of 1 ZZ.XSUT (reference I1) refused"
    )
    await handle(created("ZZ"), ledger)
    assert isinstance((await handle(issue(1, instrument="ZZ.XSUT"), ledger)).events[0], HoldingAdjusted)


async def test_a_suspended_account_takes_issues_but_gives_nothing_back() -> None:
    ledger = await with_account()
    await handle(issue(10), ledger)
    await handle(TradingAccountSuspended(account_id=ACCOUNT, reason="review"), ledger)
    assert isinstance((await handle(issue(1, reference="I2"), ledger)).events[0], HoldingAdjusted)
    assert refusal(await handle(reclaim(1), ledger)) == (
        f"account {ACCOUNT} is suspended: reclaim of 1 XS01.XSUT (reference R1) refused (issues are still taken)"
    )
    assert ledger.holdings[(ACCOUNT, "XS01.XSUT")] == 11


@pytest.mark.parametrize("movement", [issue(1), reclaim(1)], ids=["issue", "reclaim"])
async def test_an_unknown_or_closed_account_refuses_issues_and_reclaims(movement: Event) -> None:
    ledger = MemoryLedger()
    await handle(prodigy_exchange("XSUT"), ledger)
    assert refusal(await handle(movement, ledger)).startswith(f"account {ACCOUNT} is unknown to the registry: ")
    ledger = await with_account()
    await handle(TradingAccountClosed(account_id=ACCOUNT), ledger)
    assert refusal(await handle(movement, ledger)).startswith(f"account {ACCOUNT} is closed: ")
    assert ledger.holding_movements == []


def test_a_holding_may_reach_what_the_ledger_holds_and_no_more_nor_below_zero() -> None:
    """Holdings are bigint (``HOLDING_LIMIT``) and never negative (0001_registry.sql: ``quantity >= 0``)."""
    assert apply_holding_adjustment(HOLDING_LIMIT - 1, 1, "XS01.XSUT") == 2**63 - 1
    with pytest.raises(HoldingRefused, match=r"a holding of 9223372036854775808 XS01.XSUT is more than"):
        apply_holding_adjustment(HOLDING_LIMIT, 1, "XS01.XSUT")
    assert apply_holding_adjustment(5, -5, "XS01.XSUT") == 0
    with pytest.raises(HoldingRefused, match=r"reclaim of 6 XS01.XSUT exceeds the holding of 5 XS01.XSUT"):
        apply_holding_adjustment(5, -6, "XS01.XSUT")
