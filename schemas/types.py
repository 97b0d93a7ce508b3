"""Value types shared by every event: identifiers, money and the platform's enumerations.

They live in one place so that a login id or a currency is validated the same way in
every event, and so that their JSON Schemas are identical wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationInfo, WithJsonSchema
from pydantic.functional_validators import BeforeValidator

NonEmpty = Annotated[str, Field(min_length=1, max_length=200)]
LoginId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^\S+$")]
OperatorId = LoginId
InvestorId = LoginId
OrderId = LoginId
#: Exchange / market code, upper case, with an optional environment tag kept as part of the code: ``XSX[Demo]``.
ExchangeCode = Annotated[str, Field(pattern=r"^[A-Z0-9]{1,16}(\[[A-Za-z0-9]{1,16}\])?$")]
MarketCode = ExchangeCode
#: OMS owner (tenant) code, for example ``XS``.
OwnerCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,32}$")]
#: Trading account id ``OWNER:ACCOUNT``, for example ``XS:0001``.
TradingAccountId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,32}:[A-Za-z0-9_\-.]{1,64}$")]
#: Instrument ``CODE.MARKET``, for example ``XS01.XSX`` or ``XS01.XSX[Demo]``.
InstrumentCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,32}\.[A-Z0-9]{1,16}(\[[A-Za-z0-9]{1,16}\])?$")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code")]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
#: CFI code (ISO 10962): six upper-case letters.
CfiCode = Annotated[str, Field(pattern=r"^[A-Z]{6}$")]
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.:$]+$")]

DECIMAL_PATTERN = r"^-?\d{1,18}(\.\d{1,8})?$"


#: Validation context of input from outside the bus (HTTP, ``xbus publish``): see ``EventTypes.parse_input``.
EDGE = "edge"
_DECIMAL = re.compile(DECIMAL_PATTERN)


def _decimal_from_string(value: Any, info: ValidationInfo) -> Decimal:
    """Accept money only as a decimal string (or Decimal): a float has already lost cents.

    At the edge the string must also follow the grammar the JSON Schema declares (no exponent,
    at most 18 digits before the point and 8 after): ``"1e3"`` or forty digits there are a typo
    or an attack, not an amount. Inside the bus a service's own amounts are taken as written.
    """
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError('must be a decimal string such as "1250.50", not a number')
    if info.context and info.context.get(EDGE) and not _DECIMAL.match(value):
        raise ValueError(
            f"{value[:40]!r} is not an amount: up to 18 digits, optionally a point and up to 8 more, no exponent"
        )
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not parsed.is_finite():
        raise ValueError(f"{value!r} is not a finite decimal number")
    return parsed


DecimalString = Annotated[
    Decimal,
    BeforeValidator(_decimal_from_string),
    PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN}),
]
PositiveDecimalString = Annotated[DecimalString, Field(gt=0)]


class Frozen(BaseModel):
    """Base of every value in an event: immutable and closed, so its JSON Schema is closed too."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Money(Frozen):
    """An amount in one currency; never a float."""

    amount: DecimalString
    currency: Currency


class PositiveMoney(Frozen):
    """A cash movement: the amount must be above zero."""

    amount: PositiveDecimalString
    currency: Currency


class Role(StrEnum):
    ZENITH_ADMINISTRATOR = "Zenith:Administrator"
    FOUNDRY_OPERATOR = "Foundry:Operator"
    FOUNDRY_SUPERUSER = "Foundry:SuperUser"
    MOTIF_USER = "Motif:User"
    MOTIFXL_USER = "MotifXL:User"


class OperatorSystem(StrEnum):
    OMS = "oms"
    REGISTRY = "registry"
    PRODIGY = "prodigy"


class OmsFeature(StrEnum):
    ADMIN = "Admin"
    ALTER = "Alter"
    AUDIT = "Audit"
    OPERATOR = "Operator"


class RegistryFeature(StrEnum):
    ADMIN = "Admin"
    AUDIT = "Audit"
    DEFINE = "Define"
    DEFINE_SYSTEM = "DefineSystem"
    MAINTAIN_RECORDS = "MaintainRecords"
    SUBMIT_RECORDS = "SubmitRecords"
    OPERATIONS = "Operations"


class AccountRight(StrEnum):
    VIEW = "view"
    TRADE = "trade"
    ADMIN = "admin"


class InvestorType(StrEnum):
    INDIVIDUAL = "individual"
    COMPANY = "company"
    TRUST = "trust"


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    SHORTSELL = "SHORTSELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"
    MARKET_TO_LIMIT = "MARKET_TO_LIMIT"


class OrderLifetime(StrEnum):
    DAY = "DAY"
    GOOD_TILL_CANCEL = "GOOD_TILL_CANCEL"
    IMMEDIATE_OR_CANCEL = "IMMEDIATE_OR_CANCEL"
    FILL_OR_KILL = "FILL_OR_KILL"
    GOOD_TILL_DATE = "GOOD_TILL_DATE"


def unique(values: tuple[Any, ...], what: str, key: Callable[[Any], Any] = lambda value: value) -> tuple[Any, ...]:
    """Reject repeated entries: a repeated role or login is an upstream bug worth surfacing."""
    seen: set[Any] = set()
    for value in values:
        if key(value) in seen:
            raise ValueError(f"{what} {key(value)!s} appears more than once")
        seen.add(key(value))
    return values
