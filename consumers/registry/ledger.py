"""The registry's arithmetic of cash and holdings: pure, so that it can be checked on its own.

Money is :class:`~decimal.Decimal` at the ledger's precision (numeric(36, 8)) and never rounds:
an amount the ledger cannot hold exactly is refused, with the reason. Holdings are whole numbers.

Two kinds of movement, refused differently. A deposit or withdrawal is a request: one the
registry does not book is refused with :class:`CashRefused` (a step report). A fill is a fact:
the exchange has executed it, so it is booked even when it takes settled cash below zero (a
withdrawal raced an open buy, docs/exchanges.md); one that cannot be booked at all (a sell beyond
the holding) raises :class:`Unbookable`, for the handler to turn into a dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, localcontext

from schemas.money import show
from schemas.types import OrderSide


class CashRefused(Exception):
    """A cash movement the registry does not book; ``reason`` says why, for the step report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unbookable(Exception):
    """A fill the registry cannot book; ``reason`` says why, for the dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: The ledger stores numeric(36, 8): eight decimal places, 28 digits before the point.
CASH_QUANTUM = Decimal("0.00000001")
CASH_LIMIT = Decimal(10) ** 28
#: Holdings are bigint.
HOLDING_LIMIT = 2**63 - 1
#: Enough digits for any sum of two ledger amounts and any fill's value the ledger can hold; a
#: rounding would raise instead of losing cents.
_EXACT = Context(prec=40, traps=[Inexact, InvalidOperation, Overflow])
#: For comparing and showing amounts: wide enough for anything the ledger holds, rounding allowed.
_WIDE = Context(prec=60)


# Cash


def add_cash(balance: Decimal, delta: Decimal, currency: str) -> Decimal:
    """``balance + delta``, exact, within what the ledger holds; either may be negative.

    Raises :class:`CashRefused` for an amount finer than the ledger's eight decimal places or a
    sum beyond its 28 digits before the point.
    """
    if abs(delta) >= CASH_LIMIT:
        raise CashRefused(f"amount {show(abs(delta))} {currency} is more than the registry can book")
    if delta.quantize(CASH_QUANTUM, context=_WIDE) != delta:
        raise CashRefused(
            f"amount {format(abs(delta), 'f')} {currency} has more than 8 decimal places; "
            "the registry books cash to 0.00000001"
        )
    with localcontext(_EXACT):
        after = balance + delta
    if abs(after) >= CASH_LIMIT:
        raise CashRefused(f"a balance of {show(after)} {currency} is more than the registry can hold")
    return after


def apply_cash_movement(balance: Decimal, delta: Decimal, currency: str) -> Decimal:
    """Settled cash after a deposit (``delta`` > 0) or withdrawal: exact; a withdrawal never
    leaves it below zero.

    A deposit onto a balance that a settlement took below zero is booked, even if the balance
    stays below zero: the money has arrived. Raises :class:`CashRefused` for a withdrawal beyond
    ``balance`` and as :func:`add_cash` does.
    """
    after = add_cash(balance, delta, currency)
    if delta < 0 and after < 0:
        raise CashRefused(f"withdrawal of {show(-delta)} {currency} exceeds settled cash {show(balance)} {currency}")
    return after


# Issue and reclaim


class HoldingRefused(Exception):
    """An issue or reclaim the registry does not book; ``reason`` says why, for the step report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def apply_holding_adjustment(holding: int, delta: int, token: str) -> int:
    """The holding after an issue (``delta`` > 0) or reclaim: never below zero, never beyond a bigint.

    Raises :class:`HoldingRefused` for a reclaim beyond ``holding`` and a holding the ledger cannot hold.
    """
    after = holding + delta
    if after < 0:
        raise HoldingRefused(f"reclaim of {-delta} {token} exceeds the holding of {holding} {token}")
    if after > HOLDING_LIMIT:
        raise HoldingRefused(f"a holding of {after} {token} is more than the registry can hold")
    return after


# Settlement


@dataclass(frozen=True)
class Settlement:
    """What one fill does to the account's cash in the fill's currency and its holding."""

    #: Negative for a buy, positive for a sell.
    cash_delta: Decimal
    cash_after: Decimal
    #: Positive for a buy, negative for a sell.
    holding_delta: int
    holding_after: int

    @property
    def overdraws(self) -> bool:
        """A buy that took settled cash below zero: booked, but a person should know."""
        return self.cash_delta < 0 and self.cash_after < 0


def settle(
    side: OrderSide,
    quantity: int,
    price: Decimal,
    *,
    cash: Decimal,
    holding: int,
    currency: str,
    instrument: str,
) -> Settlement:
    """Book a fill of ``quantity`` at ``price`` against ``cash`` (in ``currency``) and ``holding``
    (of ``instrument``): a buy pays quantity × price and receives the quantity, a sell the reverse.

    Cash may go below zero (the fill is a fact, see the module's docstring); the holding never
    does. Raises :class:`Unbookable` for a sell beyond the holding, a side other than buy or
    sell, and an amount the ledger cannot hold exactly.
    """
    if side not in (OrderSide.BUY, OrderSide.SELL):
        raise Unbookable(f"the registry settles buys and sells only, not a {side.value} (nothing to deliver from)")
    if quantity <= 0:
        raise Unbookable(f"a fill of quantity {quantity} moves nothing")
    if side is OrderSide.SELL and quantity > holding:
        raise Unbookable(f"a sell of {quantity} {instrument} exceeds the holding of {holding} {instrument}")
    try:
        with localcontext(_EXACT):
            value = price * quantity
    except (Inexact, Overflow):
        raise Unbookable(
            f"{quantity} × {format(price, 'f')} {currency} has more digits than the registry can book"
        ) from None
    cash_delta = -value if side is OrderSide.BUY else value
    holding_delta = quantity if side is OrderSide.BUY else -quantity
    try:
        cash_after = add_cash(cash, cash_delta, currency)
    except CashRefused as refused:
        raise Unbookable(refused.reason) from None
    holding_after = holding + holding_delta
    if holding_after > HOLDING_LIMIT:
        raise Unbookable(f"a holding of {holding_after} {instrument} is more than the registry can hold")
    return Settlement(cash_delta, cash_after, holding_delta, holding_after)
