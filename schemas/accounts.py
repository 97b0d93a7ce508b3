"""Events of ``xosp.accounts`` (key: trading account id ``OWNER:ACCOUNT``)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator

from schemas.event import Event
from schemas.types import (
    AccountRight,
    CountryCode,
    Currency,
    ExchangeCode,
    Frozen,
    InstrumentCode,
    InvestorId,
    InvestorType,
    Label,
    LoginId,
    NonEmpty,
    OwnerCode,
    PositiveMoney,
    TradingAccountId,
    unique,
)

PiiHash = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/=:_\-]{16,128}$", description="hash of personal data")]


class Investor(Frozen):
    """The legal owner of a trading account, as the Foundry Registry records it (no raw PII)."""

    investor_id: InvestorId
    full_name: NonEmpty
    country: CountryCode
    type: InvestorType
    pii_hash: PiiHash | None = None


class AccountLogin(Frozen):
    """A login associated with the account, and what it may do there."""

    login_id: LoginId
    rights: tuple[AccountRight, ...] = Field(min_length=1)

    _unique_rights = field_validator("rights")(lambda v: unique(v, "right"))


class VettingLimits(Frozen):
    """OMS vetting settings; an absent limit is not checked."""

    max_order_value: PositiveMoney | None = None
    max_order_quantity: Annotated[int, Field(ge=1)] | None = None


class TradingAccountOpened(Event):
    event_type = "xosp.account.opened.v1"
    aggregate_field = "account_id"

    account_id: TradingAccountId
    owner: OwnerCode
    name: NonEmpty
    classification: Label
    default_currency: Currency
    categories: tuple[Label, ...] = ()
    attributes: dict[Label, Annotated[str, Field(max_length=500)]] = Field(default_factory=dict)
    investor: Investor
    logins: tuple[AccountLogin, ...] = ()
    allowed_exchanges: tuple[ExchangeCode, ...] = ()
    vetting: VettingLimits = VettingLimits()

    _unique_logins = field_validator("logins")(lambda v: unique(v, "login", key=lambda login: login.login_id))

    @model_validator(mode="after")
    def _owner_prefixes_account(self) -> Self:
        if self.account_id.split(":", 1)[0] != self.owner:
            raise ValueError(f"account_id {self.account_id!r} must start with its owner {self.owner!r}:")
        return self


class AccountLoginLinked(Event):
    event_type = "xosp.account.login_linked.v1"
    aggregate_field = "account_id"

    account_id: TradingAccountId
    login_id: LoginId
    rights: tuple[AccountRight, ...] = Field(min_length=1)


class AccountLoginUnlinked(Event):
    event_type = "xosp.account.login_unlinked.v1"
    aggregate_field = "account_id"

    account_id: TradingAccountId
    login_id: LoginId


class TradingAccountUpdated(Event):
    """A partial update: only the fields present change."""

    event_type = "xosp.account.updated.v1"
    aggregate_field = "account_id"

    account_id: TradingAccountId
    name: NonEmpty | None = None
    classification: Label | None = None
    categories: tuple[Label, ...] | None = None
    attributes: dict[Label, Annotated[str, Field(max_length=500)]] | None = None
    allowed_exchanges: tuple[ExchangeCode, ...] | None = None
    vetting: VettingLimits | None = None


class TradingAccountSuspended(Event):
    event_type = "xosp.account.suspended.v1"
    aggregate_field = "account_id"

    account_id: TradingAccountId
    reason: NonEmpty


class TradingAccountClosed(Event):
    event_type = "xosp.account.closed.v1"
    aggregate_field = "account_id"

    account_id: TradingAccountId
    reason: NonEmpty | None = None


class FundsDeposited(Event):
    """Cash arriving from upstream banking; ``reference`` is the bank's transfer id."""

    event_type = "xosp.account.funds_deposited.v1"
    aggregate_field = "account_id"

    account_id: TradingAccountId
    amount: PositiveMoney
    reference: NonEmpty


class FundsWithdrawn(Event):
    event_type = "xosp.account.funds_withdrawn.v1"
    aggregate_field = "account_id"

    account_id: TradingAccountId
    amount: PositiveMoney
    reference: NonEmpty


class HoldingsIssued(Event):
    """Shares of a token issued into the account by its issuer, not bought (account-issue.ps1);
    ``reference`` is the issue's id, taken once per account."""

    event_type = "xosp.account.holdings_issued.v1"
    aggregate_field = "account_id"

    account_id: TradingAccountId
    #: The token, ``SYMBOL.MARKET``.
    instrument: InstrumentCode
    quantity: Annotated[int, Field(ge=1)]
    reference: NonEmpty


class HoldingsReclaimed(Event):
    """Shares of a token taken back from the account (account-reclaim.ps1); never more than it holds."""

    event_type = "xosp.account.holdings_reclaimed.v1"
    aggregate_field = "account_id"

    account_id: TradingAccountId
    instrument: InstrumentCode
    quantity: Annotated[int, Field(ge=1)]
    reference: NonEmpty
