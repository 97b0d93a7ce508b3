"""Amounts as people read them, and as events carry them: shared by every service that shows money.

An event's ``Money`` holds the exact amount; ``show`` writes it with cents at least and no
trailing zeros beyond them (``12.5`` → ``12.50``, ``0.12345`` stays), the way a reason a person
reads should.
"""

from __future__ import annotations

from decimal import Context, Decimal, InvalidOperation

from schemas.types import Money

#: Wide enough for any amount a ledger of numeric(36, 8) holds; rounding allowed (only for showing).
_WIDE = Context(prec=60)
_CENTS = Decimal("0.01")


def show(amount: Decimal) -> str:
    """An amount as people write money: cents at least, no trailing zeros beyond them."""
    try:
        cents = amount.quantize(_CENTS, context=_WIDE)
    except InvalidOperation:  # too many digits to show in cents: show it as it is
        return format(amount, "f")
    return format(cents if cents == amount else amount.normalize(_WIDE), "f")


def money(amount: Decimal, currency: str) -> Money:
    """``amount`` in ``currency`` as an event carries it (the shown form: no float, no noise)."""
    return Money(amount=Decimal(show(amount)), currency=currency)
