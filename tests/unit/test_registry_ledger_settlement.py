"""The registry's settlement arithmetic on its own: cash is conserved exactly, holdings never go negative."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.registry.ledger import CashRefused, Settlement, Unbookable, apply_cash_movement, settle
from schemas.types import OrderSide

INSTRUMENTS = ("XS01.XSX", "XS02.XSX")
prices = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1000000"), places=8)
quantities = st.integers(min_value=1, max_value=1_000_000)
deposits = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000000"), places=2)


@dataclass(frozen=True)
class Deposit:
    amount: Decimal


@dataclass(frozen=True)
class Trade:
    buy: bool
    instrument: str
    quantity: int
    price: Decimal


operations = st.lists(
    st.one_of(
        st.builds(Deposit, deposits),
        st.builds(Trade, st.booleans(), st.sampled_from(INSTRUMENTS), quantities, prices),
    ),
    max_size=60,
)


def fill(side: OrderSide, quantity: int, price: str, cash: str = "0", holding: int = 0) -> Settlement:
    return settle(
        side, quantity, Decimal(price), cash=Decimal(cash), holding=holding, currency="AUD", instrument="XS01.XSX"
    )


@given(operations)
def test_cash_is_deposits_minus_buys_plus_sells_and_holdings_are_buys_minus_sells(ops: list[Deposit | Trade]) -> None:
    """Any sequence the OMS would let through: a sell is cut to what the account holds, as vetting would."""
    cash = Decimal(0)
    holdings = dict.fromkeys(INSTRUMENTS, 0)
    deposited, bought, sold = Decimal(0), Decimal(0), Decimal(0)
    net = dict.fromkeys(INSTRUMENTS, 0)
    for op in ops:
        if isinstance(op, Deposit):
            cash = apply_cash_movement(cash, op.amount, "AUD")
            deposited += op.amount
            continue
        quantity = op.quantity if op.buy else min(op.quantity, holdings[op.instrument])
        if quantity == 0:
            continue  # nothing held: the OMS refuses the sell (Quantity.Insufficient)
        side = OrderSide.BUY if op.buy else OrderSide.SELL
        settled = settle(
            side,
            quantity,
            op.price,
            cash=cash,
            holding=holdings[op.instrument],
            currency="AUD",
            instrument=op.instrument,
        )
        assert settled.cash_after == cash + settled.cash_delta
        assert settled.holding_after == holdings[op.instrument] + settled.holding_delta >= 0
        assert settled.overdraws == (op.buy and settled.cash_after < 0)
        cash, holdings[op.instrument] = settled.cash_after, settled.holding_after
        value = op.price * quantity
        if op.buy:
            bought += value
            net[op.instrument] += quantity
        else:
            sold += value
            net[op.instrument] -= quantity
    assert cash == deposited - bought + sold
    assert holdings == net
    assert all(quantity >= 0 for quantity in holdings.values())


@given(quantities, prices, st.integers(min_value=0, max_value=1_000_000))
def test_a_sell_beyond_the_holding_is_unbookable(quantity: int, price: Decimal, holding: int) -> None:
    if quantity <= holding:
        settled = settle(
            OrderSide.SELL, quantity, price, cash=Decimal(0), holding=holding, currency="AUD", instrument="XS01.XSX"
        )
        assert (settled.holding_after, settled.cash_delta) == (holding - quantity, price * quantity)
        return
    with pytest.raises(Unbookable, match=rf"^a sell of {quantity} XS01.XSX exceeds the holding of {holding} XS01.XSX$"):
        settle(OrderSide.SELL, quantity, price, cash=Decimal(0), holding=holding, currency="AUD", instrument="XS01.XSX")


def test_a_buy_beyond_settled_cash_is_booked_below_zero_and_withdrawals_then_refused() -> None:
    settled = fill(OrderSide.BUY, 10, "12.50", cash="100")
    assert (settled.cash_delta, settled.cash_after, settled.holding_after) == (Decimal("-125.00"), Decimal("-25"), 10)
    assert settled.overdraws
    with pytest.raises(CashRefused, match=r"exceeds settled cash -25\.00 AUD$"):
        apply_cash_movement(settled.cash_after, Decimal("-1"), "AUD")
    assert apply_cash_movement(settled.cash_after, Decimal("10"), "AUD") == Decimal("-15")  # a deposit lands


def test_a_sell_within_cash_never_overdraws() -> None:
    assert not fill(OrderSide.SELL, 5, "1.00", cash="-3", holding=5).overdraws


def test_a_value_finer_than_the_ledger_is_unbookable_not_rounded() -> None:
    with pytest.raises(Unbookable, match="more than 8 decimal places"):
        fill(OrderSide.BUY, 1, "0.000000001", cash="1")
    assert fill(OrderSide.BUY, 10, "0.000000001", cash="1").cash_delta == Decimal("-0.00000001")


def test_a_value_beyond_the_ledger_is_unbookable() -> None:
    with pytest.raises(Unbookable, match="more than the registry can book"):
        fill(OrderSide.BUY, 10**12, "100000000000000000")


def test_only_buys_and_sells_settle() -> None:
    with pytest.raises(Unbookable, match="buys and sells only, not a SHORTSELL"):
        fill(OrderSide.SHORTSELL, 1, "1.00", holding=0)
