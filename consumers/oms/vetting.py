"""Vetting an order (docs/exchanges.md, "Vetting"): a pure function of what the OMS knows.

The handler loads a :class:`Snapshot` (the account, the login's rights on it, the instrument and
its exchange, the positions the order would draw on, and the order), calls :func:`vet` and stores
what it decides. Nothing here reads a clock or a database, so every rule, and the order in which
they are tried (the first that fails wins), is tested without either.

Prices: a limit order is priced at its limit; a market order (``MARKET_TO_LIMIT`` is taken as
one) at its protection price, the last price ± 10 % to the cent, rounded away from the trade.
The order's value is quantity × that price; a buy reserves it, a sell holds back its quantity.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from consumers.oms.positions import EXACT, CashPosition, HoldingPosition, value_of
from schemas.accounts import VettingLimits
from schemas.money import show
from schemas.oms import AccountState, RejectionCode
from schemas.orders import OrderPlaced
from schemas.types import AccountRight, OrderLifetime, OrderSide, OrderType

#: A limit price may be this far from the last price, either way (inclusive).
PRICE_BAND = Decimal("0.10")
CENT = Decimal("0.01")

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
    #: The adapter's reference price until the OMS sees a fill, then the last fill's price.
    last_price: Decimal | None


@dataclass(frozen=True)
class Snapshot:
    order: OrderPlaced
    #: An order with this id is already on record (accepted or rejected).
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


@dataclass(frozen=True)
class Rejection:
    code: RejectionCode
    #: For the person who placed the order: what is wrong and what to do.
    reason: str


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


def vet(snapshot: Snapshot) -> Rejection | Acceptance:
    """Rules 1 to 11 of docs/exchanges.md, in that order: the first that fails rejects the order."""
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
    if account.state is AccountState.CLOSED:
        return Rejection(
            RejectionCode.ACCOUNT_CLOSED,
            f"trading account {account.account_id} is closed{_because(account.state_reason)}; it takes no orders",
        )
    if account.state is AccountState.SUSPENDED:
        return Rejection(
            RejectionCode.ACCOUNT_SUSPENDED,
            f"trading account {account.account_id} is suspended{_because(account.state_reason)}; "
            "it takes no orders until it is reinstated",
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
    limit = account.limits.max_order_quantity
    if limit is not None and order.quantity > limit:
        return Rejection(
            RejectionCode.QUANTITY_LIMIT,
            f"quantity {order.quantity} is above the account's maximum order quantity of {limit}; "
            "place a smaller order",
        )
    priced = _price(order, instrument)
    if isinstance(priced, Rejection):
        return priced
    price, protection = priced
    value = value_of(order.quantity, price)
    ceiling = account.limits.max_order_value
    if ceiling is not None and ceiling.currency == instrument.currency and value > ceiling.amount:
        return Rejection(
            RejectionCode.VALUE_LIMIT,
            f"the order's value {_money(value, instrument.currency)} ({order.quantity} × {show(price)}) is above "
            f"the account's maximum order value of {_money(ceiling.amount, ceiling.currency)}; "
            "place a smaller order",
        )
    if order.side is OrderSide.BUY:
        cash = snapshot.cash or CashPosition(instrument.currency)
        if value > cash.available:
            return Rejection(
                RejectionCode.BALANCE_EXCEED,
                f"the buy needs {_money(value, instrument.currency)} ({order.quantity} × {show(price)}) but "
                f"{_money(cash.available, instrument.currency)} is available (booked {show(cash.booked)}, "
                f"reserved by open buys {show(cash.reserved)}); deposit funds or place a smaller order",
            )
    else:
        holding = snapshot.holding or HoldingPosition(instrument.code)
        if order.quantity > holding.available:
            return Rejection(
                RejectionCode.QUANTITY_INSUFFICIENT,
                f"the sell needs {order.quantity} {instrument.code} but {holding.available} are available "
                f"(held {holding.quantity}, held back by open sells {holding.held_back}); "
                "sell no more than is available",
            )
    is_buy = order.side is OrderSide.BUY
    return Acceptance(
        price=price,
        protection_price=protection,
        value=value,
        reserved_cash=value if is_buy else Decimal(0),
        held_back=0 if is_buy else order.quantity,
    )


def protection_price(last_price: Decimal, side: OrderSide) -> Decimal | None:
    """The worst price a market order may fill at: last + 10 % rounded up to the cent for a buy,
    last − 10 % rounded down for a sell; None when a sell's floor falls below a cent."""
    if side is OrderSide.BUY:
        return EXACT.multiply(last_price, 1 + PRICE_BAND).quantize(CENT, rounding=ROUND_CEILING, context=EXACT)
    floor = EXACT.multiply(last_price, 1 - PRICE_BAND).quantize(CENT, rounding=ROUND_FLOOR, context=EXACT)
    return floor if floor > 0 else None


def price_band(last_price: Decimal) -> tuple[Decimal, Decimal]:
    """The limit prices ``Price.OutOfRange`` lets through: last price ± 10 %, both ends included."""
    return EXACT.multiply(last_price, 1 - PRICE_BAND), EXACT.multiply(last_price, 1 + PRICE_BAND)


def _price(order: OrderPlaced, instrument: Instrument) -> Rejection | tuple[Decimal, Decimal | None]:
    """Rule 9: the price the order is valued at and its protection price, or why it has none.

    A limit order on an instrument with no last price yet (no reference price, no fill) is not
    range-checked: there is nothing to check it against, and the first trade must be possible.
    A market order there cannot be protected, so it is refused.
    """
    last = instrument.last_price
    if order.order_type is OrderType.LIMIT:
        assert order.limit_price is not None  # OrderPlaced requires it for a limit order
        if last is not None:
            low, high = price_band(last)
            if not low <= order.limit_price <= high:
                return Rejection(
                    RejectionCode.PRICE_OUT_OF_RANGE,
                    f"limit price {show(order.limit_price)} is outside {show(low)} to {show(high)}, "
                    f"10 % either side of {instrument.code}'s last price {show(last)}; place it within that range",
                )
        return order.limit_price, None
    if last is None:
        return Rejection(
            RejectionCode.PRICE_OUT_OF_RANGE,
            f"{instrument.code} has no last price yet, so a market order cannot be given a protection price; "
            "place a limit order",
        )
    protection = protection_price(last, order.side)
    if protection is None:
        return Rejection(
            RejectionCode.PRICE_OUT_OF_RANGE,
            f"{instrument.code}'s last price {show(last)} less 10 % is below a cent, so a market sell cannot be "
            "given a protection price; place a limit order",
        )
    return protection, protection


def _unsupported(order: OrderPlaced) -> str | None:
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
