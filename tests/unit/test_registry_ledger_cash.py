"""The registry's cash arithmetic on its own: exact, never negative, the ledger sums to the balance."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.registry.ledger import CashRefused, apply_cash_movement
from schemas.money import show

#: Amounts as upstream banking sends them: positive, up to 18 digits before the point and 8 after.
amounts = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("999999999999999999.99999999"), places=8)
movements = st.lists(st.tuples(st.booleans(), amounts), max_size=60)


@given(movements)
def test_balance_never_goes_negative_and_equals_the_sum_of_booked_deltas(moves: list[tuple[bool, Decimal]]) -> None:
    balance = Decimal(0)
    booked: list[Decimal] = []
    for is_deposit, amount in moves:
        delta = amount if is_deposit else -amount
        try:
            balance = apply_cash_movement(balance, delta, "AUD")
        except CashRefused as refused:
            assert not is_deposit and amount > balance, refused.reason
            continue
        booked.append(delta)
        assert balance >= 0
    assert balance == sum(booked, Decimal(0))


@given(st.decimals(min_value=0, max_value=Decimal("1e18"), places=8), amounts)
def test_a_withdrawal_is_refused_exactly_when_it_exceeds_the_balance(balance: Decimal, amount: Decimal) -> None:
    if amount > balance:
        with pytest.raises(CashRefused, match=r"^withdrawal of .* AUD exceeds settled cash .* AUD$"):
            apply_cash_movement(balance, -amount, "AUD")
    else:
        assert apply_cash_movement(balance, -amount, "AUD") == balance - amount


@given(amounts)
def test_shown_amounts_read_back_to_the_same_value(amount: Decimal) -> None:
    assert Decimal(show(amount)) == amount
    assert Decimal(show(-amount)) == -amount


def test_amounts_finer_than_the_ledger_are_refused_not_rounded() -> None:
    with pytest.raises(CashRefused, match="more than 8 decimal places"):
        apply_cash_movement(Decimal(0), Decimal("0.000000001"), "AUD")


def test_amounts_show_as_money() -> None:
    assert [show(Decimal(x)) for x in ("10.50000000", "0E-8", "-150", "0.12345000")] == [
        "10.50",
        "0.00",
        "-150.00",
        "0.12345",
    ]
