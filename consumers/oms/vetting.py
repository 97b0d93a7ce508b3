"""Vetting an order (docs/exchanges.md, "Vetting"): a pure function of what the OMS knows.

The handler loads a :class:`Snapshot` (the account, the login's rights on it, the instrument and
its exchange, the positions the order would draw on, and the order's terms), calls :func:`vet`
and stores what it decides. Nothing here reads a clock or a database, so every rule, and the
order in which they are tried (the first that fails wins), is tested without either.

Three stages, in this order. This project's checks, without which there is nothing to vet (the
order id is new, the account and instrument are known, the login may trade, the exchange is
allowed and active, the order is one the platform takes and can be priced): ``Xbus.`` codes.
Then the rule set ``OMS.General`` of the platform's ``Config/Zenith/Vetting.config``, its rules in
the set's order, each failing with the code and the parameters its ``FAIL WITH`` states. Then the
account's own limits (``Xbus.AccountLimit.`` codes). Vetting.config runs its rules for a place
and an amend, never for a cancel: :func:`vet` takes an order's terms, and for an amend what the
order already counts for (:class:`AmendedOrder`); cancels are never vetted.

Prices: a limit order is priced at its limit; a market order (``MARKET_TO_LIMIT`` is taken as
one) at its protection price, the furthest from the last price that ``OMS.Compliance`` lets a
limit order go: last + 10 % rounded down to the cent for a buy, last − 10 % rounded up for a
sell. That price is the order's ``details.price`` for every rule; its value is quantity × it; a
buy reserves the value, a sell holds back its quantity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Protocol

from consumers.oms.positions import EXACT, CashPosition, HoldingPosition, value_of
from schemas.accounts import VettingLimits
from schemas.money import show
from schemas.oms import AccountState, RejectionCode, VettingRule
from schemas.types import AccountRight, OrderLifetime, OrderSide, OrderType

#: ``OMS.Compliance``: a bid may be this much above the last price, an ask this much below (ends included).
PRICE_BAND = Decimal("0.10")
CENT = Decimal("0.01")
#: ``OMS.Limits``: ``details.value > 1000000``, ``details.price > 200.00``, ``details.quantity > 5000000``.
MAX_ORDER_VALUE = Decimal(1_000_000)
MAX_ORDER_PRICE = Decimal("200.00")
MAX_ORDER_QUANTITY = 5_000_000

SIDES = (OrderSide.BUY, OrderSide.SELL)
TYPES = (OrderType.MARKET, OrderType.LIMIT, OrderType.MARKET_TO_LIMIT)
LIFETIMES = (
    OrderLifetime.DAY,
    OrderLifetime.GOOD_TILL_CANCEL,
    OrderLifetime.IMMEDIATE_OR_CANCEL,
    OrderLifetime.FILL_OR_KILL,
)


class ExchangeState(StrEnum):
    """What ``xosp.exchanges`` last said of the exchange."""

    LISTED = "listed"
    SUSPENDED = "suspended"
    REMOVED = "removed"


class Terms(Protocol):
    """What vetting reads of an order: an ``OrderPlaced``, or an open order with an amendment applied."""

    @property
    def order_id(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def login_id(self) -> str: ...
    @property
    def instrument(self) -> str: ...
    @property
    def side(self) -> OrderSide: ...
    @property
    def order_type(self) -> OrderType: ...
    @property
    def quantity(self) -> int: ...
    @property
    def limit_price(self) -> Decimal | None: ...
    @property
    def lifetime(self) -> OrderLifetime: ...


@dataclass(frozen=True)
class Account:
    account_id: str
    state: AccountState
    state_reason: str | None
    allowed_exchanges: tuple[str, ...]
    limits: VettingLimits


@dataclass(frozen=True)
class Exchange:
    code: str
    state: ExchangeState
    state_reason: str | None
    #: The OMS adapter ``ExchangeAdded`` names: orders are routed to it.
    adapter: str
    settles_through_registry: bool
    #: The gateway has registered the adapter and not stopped it since.
    adapter_running: bool
    #: Why the gateway stopped the adapter; None if it never registered it.
    adapter_stopped_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.state is ExchangeState.LISTED and self.adapter_running


@dataclass(frozen=True)
class Instrument:
    code: str
    exchange: str
    #: The market's currency: orders on the instrument are paid in it.
    currency: str
    #: The adapter's reference price until the OMS sees a fill, then the last fill's price:
    #: Vetting.config's ``market.lastorclose``.
    last_price: Decimal | None


@dataclass(frozen=True)
class AmendedOrder:
    """An amend's order as it stands before the change: Vetting.config's ``order.value`` and
    ``order.quantity``, from which a rule takes what the amend adds."""

    #: What it reserves (a buy).
    value: Decimal
    #: What it holds back (a sell).
    quantity: int


@dataclass(frozen=True)
class Snapshot:
    order: Terms
    #: Another order has this id (accepted or rejected).
    order_id_taken: bool
    account: Account | None
    #: The login's rights on the account.
    rights: frozenset[AccountRight]
    instrument: Instrument | None
    #: The instrument's exchange (None when the instrument is unknown).
    exchange: Exchange | None
    #: Cash in the instrument's currency and the holding of the instrument; None: none on record.
    cash: CashPosition | None
    holding: HoldingPosition | None
    #: An amend: the order before it; None for a place.
    amending: AmendedOrder | None = None


@dataclass(frozen=True)
class Rejection:
    code: RejectionCode
    #: For the person who placed the order: what is wrong and what to do.
    reason: str
    #: The rule of ``OMS.General`` that failed; None for a check of this project's.
    rule: VettingRule | None = None
    #: What the rule's ``FAIL WITH`` states beside the code (an account limit: the limit).
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Acceptance:
    #: The price the order is valued at: its limit, or the protection price of a market order.
    price: Decimal
    protection_price: Decimal | None
    #: quantity × price, in the instrument's currency.
    value: Decimal
    #: Cash a buy reserves (its value); zero for a sell.
    reserved_cash: Decimal
    #: Quantity a sell holds back; zero for a buy.
    held_back: int


@dataclass(frozen=True)
class _Details:
    """An order past this project's checks, as Vetting.config's rules read it: its ``details``
    (quantity, price, value), the ``account``, ``balance``, ``holding`` and ``market``, and the
    ``order`` an amend changes."""

    order: Terms
    account: Account
    instrument: Instrument
    price: Decimal
    protection_price: Decimal | None
    value: Decimal
    cash: CashPosition
    holding: HoldingPosition | None
    amending: AmendedOrder | None

    @property
    def bid(self) -> bool:
        return self.order.side is OrderSide.BUY


def vet(snapshot: Snapshot) -> Rejection | Acceptance:
    """This project's checks, ``OMS.General`` rule by rule, the account's own limits: the first
    failure rejects the order."""
    details = _checked(snapshot)
    if isinstance(details, Rejection):
        return details
    for rule in RULES:
        rejection = rule(details)
        if rejection is not None:
            return rejection
    return Acceptance(
        price=details.price,
        protection_price=details.protection_price,
        value=details.value,
        reserved_cash=details.value if details.bid else Decimal(0),
        held_back=0 if details.bid else details.order.quantity,
    )


def protection_price(last_price: Decimal, side: OrderSide) -> Decimal | None:
    """The worst price a market order may fill at, the furthest ``OMS.Compliance`` lets a limit go:
    last + 10 % rounded down to the cent for a buy, last − 10 % rounded up for a sell; None when a
    buy's falls below a cent."""
    if side is OrderSide.BUY:
        ceiling = EXACT.multiply(last_price, 1 + PRICE_BAND).quantize(CENT, rounding=ROUND_FLOOR, context=EXACT)
        return ceiling if ceiling > 0 else None
    return EXACT.multiply(last_price, 1 - PRICE_BAND).quantize(CENT, rounding=ROUND_CEILING, context=EXACT)


def _checked(snapshot: Snapshot) -> Rejection | _Details:
    """This project's checks, in order; what the rules read when they all pass."""
    order = snapshot.order
    if snapshot.order_id_taken:
        return Rejection(
            RejectionCode.ORDER_DUPLICATE,
            f"order id {order.order_id} is already used by another order; place the order under a new id",
        )
    account = snapshot.account
    if account is None:
        return Rejection(
            RejectionCode.ACCOUNT_UNKNOWN,
            f"trading account {order.account_id} is not known to the OMS; check the account id "
            "(orders are taken once the account is opened)",
        )
    if AccountRight.TRADE not in snapshot.rights:
        return Rejection(
            RejectionCode.LOGIN_NO_TRADE_RIGHT,
            f"login {order.login_id} has no trade right on trading account {account.account_id}; "
            "an administrator of the account can grant it",
        )
    instrument, exchange = snapshot.instrument, snapshot.exchange
    if instrument is None or exchange is None:
        return Rejection(
            RejectionCode.INSTRUMENT_UNKNOWN,
            f"instrument {order.instrument} is not listed on any exchange the OMS knows; "
            "instruments are written SYMBOL.MARKET, for example XS01.XSX",
        )
    if exchange.code not in account.allowed_exchanges:
        allowed = ", ".join(account.allowed_exchanges) or "none"
        return Rejection(
            RejectionCode.EXCHANGE_NOT_ALLOWED,
            f"trading account {account.account_id} may not trade on exchange {exchange.code} "
            f"(its allowed exchanges: {allowed})",
        )
    if not exchange.active:
        return Rejection(RejectionCode.EXCHANGE_NOT_ACTIVE, _inactive(exchange))
    unsupported = _unsupported(order)
    if unsupported is not None:
        return Rejection(RejectionCode.ORDER_UNSUPPORTED, unsupported)
    priced = _price(order, instrument)
    if isinstance(priced, Rejection):
        return priced
    price, protection = priced
    return _Details(
        order=order,
        account=account,
        instrument=instrument,
        price=price,
        protection_price=protection,
        value=value_of(order.quantity, price),
        cash=snapshot.cash or CashPosition(instrument.currency),
        holding=snapshot.holding,
        amending=snapshot.amending,
    )


def _price(order: Terms, instrument: Instrument) -> Rejection | tuple[Decimal, Decimal | None]:
    """The price the order is valued at and its protection price, or why a market order has none.

    A market order on an instrument with no last price yet cannot be protected, valued nor
    reserved: refused here, since Vetting.config fails nothing for want of a last price."""
    if order.order_type is OrderType.LIMIT:
        assert order.limit_price is not None  # OrderPlaced requires it for a limit order
        return order.limit_price, None
    last = instrument.last_price
    if last is None:
        return Rejection(
            RejectionCode.ORDER_UNPRICED,
            f"{instrument.code} has no last price yet, so a market order can be given no protection price to be "
            "valued and reserved at; place a limit order",
        )
    protection = protection_price(last, order.side)
    if protection is None:
        return Rejection(
            RejectionCode.ORDER_UNPRICED,
            f"{instrument.code}'s last price {show(last)} plus 10 % is below a cent, so a market buy can be given "
            "no protection price; place a limit order",
        )
    return protection, protection


def _implicit(details: _Details) -> Rejection | None:
    """``FAIL WITH Account.Inactive IF account HAS active AND (NOT account.active)``."""
    account = details.account
    if account.state is AccountState.ACTIVE:
        return None
    until = "" if account.state is AccountState.CLOSED else " until it is reinstated"
    return Rejection(
        RejectionCode.ACCOUNT_INACTIVE,
        f"trading account {account.account_id} is {account.state}{_because(account.state_reason)}; "
        f"it takes no orders{until}",
        VettingRule.IMPLICIT,
    )


def _funding_check(details: _Details) -> Rejection | None:
    """``FAIL WITH [Balance.Exceed, balance.trading] IF order.side IS Bid AND (order HAS value AND
    (details.value - order.value) > balance.trading)``: the trading balance is the cash available
    (booked less what open buys reserve); a place has no ``order.value`` to take off."""
    if not details.bid:
        return None
    cash, currency = details.cash, details.instrument.currency
    already = details.amending.value if details.amending else Decimal(0)
    needed = details.value - already
    if needed <= cash.available:
        return None
    more = f" more than the {_money(already, currency)} it reserves" if details.amending else ""
    return Rejection(
        RejectionCode.BALANCE_EXCEED,
        f"the buy needs {_money(needed, currency)}{more} ({details.order.quantity} × {show(details.price)}) but "
        f"{_money(cash.available, currency)} is available (booked {show(cash.balance)}, reserved by open buys "
        f"{show(cash.unfilled_buys)}); deposit funds or place a smaller order",
        VettingRule.FUNDING_CHECK,
        (show(cash.available),),
    )


def _holding_check(details: _Details) -> Rejection | None:
    """``RUN IF order.side IS Ask { FAIL WITH [Quantity.Insufficient, 0] IF holding MISSING available;
    FAIL WITH [Quantity.Insufficient, holding.available] IF (details.quantity - order.quantity) >
    holding.available }``."""
    if details.bid:
        return None
    holding, code = details.holding, details.instrument.code
    already = details.amending.quantity if details.amending else 0
    needed = details.order.quantity - already
    if holding is None:
        return Rejection(
            RejectionCode.QUANTITY_INSUFFICIENT,
            f"the sell needs {needed} {code} but none are held; sell no more than is available",
            VettingRule.HOLDING_CHECK,
            ("0",),
        )
    if needed <= holding.available:
        return None
    more = f" more than the {already} it holds back" if details.amending else ""
    return Rejection(
        RejectionCode.QUANTITY_INSUFFICIENT,
        f"the sell needs {needed} {code}{more} but {holding.available} are available (held {holding.quantity}, "
        f"held back by open sells {holding.unfilled_sells}); sell no more than is available",
        VettingRule.HOLDING_CHECK,
        (str(holding.available),),
    )


def _compliance(details: _Details) -> Rejection | None:
    """``FAIL WITH [OrderPrice.Invalid] IF details.price <= 0``; then, ``RUN IF market HAS
    lastorclose``, a bid more than 10.0 % above it is ``[OrderPrice.TooFarAbove, '10.0%']`` and an
    ask more than 10.0 % below it ``[OrderPrice.TooFarBelow, '-10.0%']``. The percentage is taken
    exactly: 100 × (price − last) / last > 10 is (price − last) > last × 0.10."""
    price, last, code = details.price, details.instrument.last_price, details.instrument.code
    if price <= 0:
        return Rejection(
            RejectionCode.ORDER_PRICE_INVALID,
            f"price {show(price)} is not above zero; give a positive limit price",
            VettingRule.COMPLIANCE,
        )
    if last is None:  # no price to work with: Vetting.config checks nothing
        return None
    band = EXACT.multiply(last, PRICE_BAND)
    if details.bid and EXACT.subtract(price, last) > band:
        return Rejection(
            RejectionCode.ORDER_PRICE_TOO_FAR_ABOVE,
            f"the bid's price {show(price)} is more than 10 % above {code}'s last price {show(last)} "
            f"(at most {show(EXACT.add(last, band))}); bid no higher",
            VettingRule.COMPLIANCE,
            ("10.0%",),
        )
    if not details.bid and EXACT.subtract(last, price) > band:
        return Rejection(
            RejectionCode.ORDER_PRICE_TOO_FAR_BELOW,
            f"the ask's price {show(price)} is more than 10 % below {code}'s last price {show(last)} "
            f"(at least {show(EXACT.subtract(last, band))}); ask no lower",
            VettingRule.COMPLIANCE,
            ("-10.0%",),
        )
    return None


def _limits(details: _Details) -> Rejection | None:
    """``FAIL WITH [OrderValue.Exceed, '1000000'] IF details.value > 1000000``, ``[OrderPrice.Exceed,
    '200.00'] IF details.price > 200.00``, ``[OrderQuantity.Exceed, '5000000'] IF details.quantity >
    5000000``, in that order; amounts in the market's currency."""
    quantity, price, value = details.order.quantity, details.price, details.value
    if value > MAX_ORDER_VALUE:
        return Rejection(
            RejectionCode.ORDER_VALUE_EXCEED,
            f"the order's value {_money(value, details.instrument.currency)} ({quantity} × {show(price)}) is above "
            "the maximum order value of 1000000; place a smaller order",
            VettingRule.LIMITS,
            ("1000000",),
        )
    if price > MAX_ORDER_PRICE:
        return Rejection(
            RejectionCode.ORDER_PRICE_EXCEED,
            f"price {show(price)} is above the maximum order price of 200.00; place the order at 200.00 or less",
            VettingRule.LIMITS,
            ("200.00",),
        )
    if quantity > MAX_ORDER_QUANTITY:
        return Rejection(
            RejectionCode.ORDER_QUANTITY_EXCEED,
            f"quantity {quantity} is above the maximum order quantity of 5000000; place a smaller order",
            VettingRule.LIMITS,
            ("5000000",),
        )
    return None


def _account_limits(details: _Details) -> Rejection | None:
    """The account's own ``VettingLimits``, beyond Vetting.config's. The OMS has no exchange rates: a
    maximum order value in another currency than the market's cannot be compared, so it refuses
    the order rather than let it through unchecked."""
    limits, order, instrument = details.account.limits, details.order, details.instrument
    most = limits.max_order_quantity
    if most is not None and order.quantity > most:
        return Rejection(
            RejectionCode.ACCOUNT_MAX_ORDER_QUANTITY,
            f"quantity {order.quantity} is above the account's maximum order quantity of {most}; place a smaller order",
            parameters=(str(most),),
        )
    ceiling = limits.max_order_value
    if ceiling is None:
        return None
    if ceiling.currency != instrument.currency:
        return Rejection(
            RejectionCode.ACCOUNT_LIMIT_CURRENCY,
            f"trading account {details.account.account_id}'s maximum order value is in {ceiling.currency} but "
            f"{instrument.code} trades in {instrument.currency}, and the OMS has no exchange rates to compare "
            f"them; set the account's maximum order value in {instrument.currency} to trade there",
            parameters=(ceiling.currency, instrument.currency),
        )
    if details.value > ceiling.amount:
        return Rejection(
            RejectionCode.ACCOUNT_MAX_ORDER_VALUE,
            f"the order's value {_money(details.value, instrument.currency)} ({order.quantity} × "
            f"{show(details.price)}) is above the account's maximum order value of "
            f"{_money(ceiling.amount, ceiling.currency)}; place a smaller order",
            parameters=(show(ceiling.amount), ceiling.currency),
        )
    return None


#: ``OMS.General``'s rules in the set's order, then the account's own limits.
RULES: tuple[Callable[[_Details], Rejection | None], ...] = (
    _implicit,
    _funding_check,
    _holding_check,
    _compliance,
    _limits,
    _account_limits,
)


def _unsupported(order: Terms) -> str | None:
    if order.side not in SIDES:
        return f"side {order.side} is not supported; place a BUY or a SELL"
    if order.order_type not in TYPES:
        return f"order type {order.order_type} is not supported; place a {_either(TYPES)} order"
    if order.lifetime not in LIFETIMES:
        return f"lifetime {order.lifetime} is not supported; use {_either(LIFETIMES)}"
    return None


def _inactive(exchange: Exchange) -> str:
    if exchange.state is not ExchangeState.LISTED:
        return f"exchange {exchange.code} is {exchange.state}{_because(exchange.state_reason)}; it takes no orders"
    if exchange.adapter_stopped_reason is not None:
        return (
            f"exchange {exchange.code} takes no orders: its OMS adapter was stopped "
            f"({exchange.adapter_stopped_reason}); place the order once it is registered again"
        )
    return (
        f"exchange {exchange.code} takes no orders yet: its OMS adapter {exchange.adapter} is not registered; "
        "place the order once the exchange is onboarded"
    )


def _because(reason: str | None) -> str:
    return f" ({reason})" if reason else ""


def _either(choices: tuple[StrEnum, ...]) -> str:
    return ", ".join(str(choice) for choice in choices[:-1]) + f" or {choices[-1]}"


def _money(amount: Decimal, currency: str) -> str:
    return f"{show(amount)} {currency}"
