"""The OMS's order rules on their own: vetting (the checks before it, each rule of Vetting.config's
``OMS.General`` with its code and parameters, the account's own limits, and the first failure
wins), the protection price, reservations and what fills release, the order's states and cancels.

The reference for vetting is plxtra/xosp ``Config/Zenith/Vetting.config``; each rule's test quotes
the line of it that the test holds the code to."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.oms.orders import Order, OrderState, cancel_refusal, report_problem, state_after
from consumers.oms.positions import CashPosition, HoldingPosition, book_fill, value_of
from consumers.oms.vetting import (
    Acceptance,
    Account,
    AmendedOrder,
    Exchange,
    ExchangeState,
    Instrument,
    Rejection,
    Snapshot,
    protection_price,
    vet,
)
from schemas.accounts import VettingLimits
from schemas.gateway import ExecutionKind, ExecutionReported
from schemas.oms import AccountState, OrderOutcome, RejectionCode, VettingRule
from schemas.orders import OrderCancelRequested, OrderPlaced
from schemas.types import AccountRight, OrderLifetime, OrderSide, OrderType, PositiveMoney

ACCOUNT = "XS:0001"
INSTRUMENT = "XS01.XSX"
LAST = Decimal("10.00")
#: Enough cash and holdings that OMS.FundingCheck and OMS.HoldingCheck let any order of a test through.
PLENTY = CashPosition("AUD", Decimal("1e12"))
HELD = HoldingPosition(INSTRUMENT, quantity=10**7)


def placed(
    side: OrderSide = OrderSide.BUY,
    order_type: OrderType = OrderType.LIMIT,
    quantity: int = 100,
    limit: str | None = "10.00",
    lifetime: OrderLifetime = OrderLifetime.DAY,
    stop: str | None = None,
) -> OrderPlaced:
    return OrderPlaced(
        order_id="ord-1",
        account_id=ACCOUNT,
        login_id="login-1",
        instrument=INSTRUMENT,
        side=side,
        order_type=order_type,
        quantity=quantity,
        limit_price=Decimal(limit)
        if limit is not None and order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        else None,
        stop_price=Decimal(stop) if stop is not None else None,
        lifetime=lifetime,
        expiry_date=dt.date(2030, 1, 1) if lifetime is OrderLifetime.GOOD_TILL_DATE else None,
    )


def snapshot(order: OrderPlaced | None = None, **changes: object) -> Snapshot:
    """A snapshot every rule lets through (a buy of 100 at 10.00 with 5000.00 AUD), changed by ``changes``."""
    passing = Snapshot(
        order=order or placed(),
        order_id_taken=False,
        account=Account(
            account_id=ACCOUNT,
            state=AccountState.ACTIVE,
            state_reason=None,
            allowed_exchanges=("XSX",),
            limits=VettingLimits(
                max_order_value=PositiveMoney(amount=Decimal("2000.00"), currency="AUD"), max_order_quantity=1000
            ),
        ),
        rights=frozenset({AccountRight.VIEW, AccountRight.TRADE}),
        instrument=Instrument(code=INSTRUMENT, exchange="XSX", currency="AUD", last_price=LAST),
        exchange=Exchange(
            code="XSX",
            state=ExchangeState.LISTED,
            state_reason=None,
            adapter="prodigy",
            settles_through_registry=True,
            adapter_running=True,
        ),
        cash=CashPosition("AUD", balance=Decimal("5000.00")),
        holding=HoldingPosition(INSTRUMENT, quantity=500),
    )
    return dataclasses.replace(passing, **changes)  # type: ignore[arg-type]


def unlimited(order: OrderPlaced, last: Decimal | None = LAST) -> Snapshot:
    """``order`` with the account's own limits off, plenty of cash and holdings, and ``last`` as the last price."""
    return with_last_price(
        with_limits(snapshot(order, cash=PLENTY, holding=HELD), max_order_value=None, max_order_quantity=None), last
    )


def rejected(snap: Snapshot) -> Rejection:
    decision = vet(snap)
    assert isinstance(decision, Rejection), decision
    return decision


def code_of(snap: Snapshot) -> RejectionCode:
    return rejected(snap).code


def failure(snap: Snapshot) -> tuple[RejectionCode, VettingRule | None, tuple[str, ...]]:
    """What the rejection event carries besides its reason: the code, the rule and its parameters."""
    rejection = rejected(snap)
    return rejection.code, rejection.rule, rejection.parameters


def accepted(snap: Snapshot) -> Acceptance:
    decision = vet(snap)
    assert isinstance(decision, Acceptance), decision
    return decision


def with_account(snap: Snapshot, **changes: object) -> Snapshot:
    assert snap.account is not None
    return dataclasses.replace(snap, account=dataclasses.replace(snap.account, **changes))  # type: ignore[arg-type]


def with_limits(snap: Snapshot, **changes: object) -> Snapshot:
    assert snap.account is not None
    return with_account(snap, limits=snap.account.limits.model_copy(update=changes))


def with_exchange(snap: Snapshot, **changes: object) -> Snapshot:
    assert snap.exchange is not None
    return dataclasses.replace(snap, exchange=dataclasses.replace(snap.exchange, **changes))  # type: ignore[arg-type]


def with_last_price(snap: Snapshot, last: Decimal | None) -> Snapshot:
    assert snap.instrument is not None
    return dataclasses.replace(snap, instrument=dataclasses.replace(snap.instrument, last_price=last))


def with_order(snap: Snapshot, **changes: object) -> Snapshot:
    """The order's terms changed without validation (an amend's terms, or a price no event can carry)."""
    return dataclasses.replace(snap, order=snap.order.model_copy(update=changes))  # type: ignore[attr-defined]


def bid(limit: str, quantity: int = 100) -> OrderPlaced:
    return placed(OrderSide.BUY, quantity=quantity, limit=limit)


def ask(limit: str, quantity: int = 100) -> OrderPlaced:
    return placed(OrderSide.SELL, quantity=quantity, limit=limit)


def test_an_order_every_rule_lets_through_is_accepted_and_reserves_its_value() -> None:
    assert accepted(snapshot()) == Acceptance(
        price=Decimal("10.00"),
        protection_price=None,
        value=Decimal("1000.00"),
        reserved_cash=Decimal("1000.00"),
        held_back=0,
    )


def test_what_vetting_reads_and_decides_are_values_no_rule_can_change() -> None:
    """The handler hands vetting one snapshot and stores what it decides; a rule that changed either
    (the order's terms, the account, a position) would change what the next rule or the store
    sees. Every one of them is frozen."""
    snap = snapshot(amending=AmendedOrder(value=Decimal(0), quantity=0))
    decided = [accepted(snapshot()), rejected(snapshot(order_id_taken=True))]
    for value in [snap, snap.account, snap.instrument, snap.exchange, snap.amending, *decided]:
        field = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, None)


# --- before vetting: this project's checks, under Xbus. codes and no rule -----------------------

#: The codes Vetting.config's OMS.General fails with (plxtra/xosp Config/Zenith/Vetting.config).
VETTING_CODES = {
    "Account.Inactive",
    "Balance.Exceed",
    "Quantity.Insufficient",
    "OrderPrice.Invalid",
    "OrderPrice.TooFarAbove",
    "OrderPrice.TooFarBelow",
    "OrderValue.Exceed",
    "OrderPrice.Exceed",
    "OrderQuantity.Exceed",
}


def test_every_code_is_vetting_configs_or_one_that_cannot_be_mistaken_for_the_platforms() -> None:
    """Vetting.config names its codes ``Subject.Problem`` (``FAIL WITH [Balance.Exceed, balance.trading]``);
    the checks it does not make (a login's trade right, an exchange the account may not use, ...)
    and the account's own limits are this project's, so their codes say so: ``Xbus.`` first."""
    ours = {str(code) for code in RejectionCode} - VETTING_CODES
    assert {str(code) for code in RejectionCode} >= VETTING_CODES
    assert ours and all(code.startswith("Xbus.") for code in ours), ours
    assert [str(rule) for rule in VettingRule] == [
        "OMS.Implicit",
        "OMS.FundingCheck",
        "OMS.HoldingCheck",
        "OMS.Compliance",
        "OMS.Limits",
    ]


def test_a_taken_order_id_is_a_duplicate() -> None:
    assert vet(snapshot(order_id_taken=True)) == Rejection(
        RejectionCode.ORDER_DUPLICATE,
        "order id ord-1 is already used by another order; place the order under a new id",
    )


def test_an_unknown_account_is_rejected() -> None:
    assert failure(snapshot(account=None)) == (RejectionCode.ACCOUNT_UNKNOWN, None, ())


@pytest.mark.parametrize("rights", [frozenset(), frozenset({AccountRight.VIEW, AccountRight.ADMIN})])
def test_a_login_without_the_trade_right_is_rejected(rights: frozenset[AccountRight]) -> None:
    assert vet(snapshot(rights=rights)) == Rejection(
        RejectionCode.LOGIN_NO_TRADE_RIGHT,
        "login login-1 has no trade right on trading account XS:0001; an administrator of the account can grant it",
    )


def test_an_instrument_no_known_exchange_lists_is_unknown() -> None:
    assert code_of(snapshot(instrument=None, exchange=None)) is RejectionCode.INSTRUMENT_UNKNOWN


@pytest.mark.parametrize("allowed", [(), ("XSY",)])
def test_an_exchange_outside_the_allowed_ones_is_not_allowed(allowed: tuple[str, ...]) -> None:
    decision = rejected(with_account(snapshot(), allowed_exchanges=allowed))
    assert decision.code is RejectionCode.EXCHANGE_NOT_ALLOWED
    assert decision.reason.endswith(f"(its allowed exchanges: {', '.join(allowed) or 'none'})")


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"adapter_running": False}, "its OMS adapter prodigy is not registered"),
        ({"adapter_running": False, "adapter_stopped_reason": "exchange suspended"}, "adapter was stopped"),
        ({"state": ExchangeState.SUSPENDED, "state_reason": "halted"}, "exchange XSX is suspended (halted)"),
        ({"state": ExchangeState.REMOVED}, "exchange XSX is removed; it takes no orders"),
    ],
)
def test_an_exchange_without_a_running_adapter_or_not_listed_is_not_active(
    changes: dict[str, object], says: str
) -> None:
    decision = rejected(with_exchange(snapshot(), **changes))
    assert decision.code is RejectionCode.EXCHANGE_NOT_ACTIVE
    assert says in decision.reason


@pytest.mark.parametrize(
    "order",
    [
        placed(side=OrderSide.SHORTSELL),
        placed(order_type=OrderType.STOP, stop="9.00"),
        placed(order_type=OrderType.STOP_LIMIT, stop="9.00"),
        placed(lifetime=OrderLifetime.GOOD_TILL_DATE),
    ],
    ids=["shortsell", "stop", "stop-limit", "good-till-date"],
)
def test_a_side_type_or_lifetime_the_platform_does_not_take_is_unsupported(order: OrderPlaced) -> None:
    assert code_of(snapshot(order)) is RejectionCode.ORDER_UNSUPPORTED


@pytest.mark.parametrize("lifetime", list(OrderLifetime)[:4])
@pytest.mark.parametrize("order_type", [OrderType.MARKET, OrderType.LIMIT, OrderType.MARKET_TO_LIMIT])
def test_supported_types_and_lifetimes_are_accepted(order_type: OrderType, lifetime: OrderLifetime) -> None:
    accepted(snapshot(placed(order_type=order_type, lifetime=lifetime, quantity=10)))


@pytest.mark.parametrize("order_type", [OrderType.MARKET, OrderType.MARKET_TO_LIMIT])
@pytest.mark.parametrize("side", [OrderSide.BUY, OrderSide.SELL])
def test_a_market_order_without_a_last_price_cannot_be_priced_which_is_not_a_vetting_failure(
    order_type: OrderType, side: OrderSide
) -> None:
    """Vetting.config, OMS.Compliance: ``RUN IF market HAS lastorclose  # Must have a price to work
    with`` ... ``ELSE  # No price to work with { # FAIL WITH LastPrice.Unavailable IF market MISSING
    lastorclose }`` (commented out): no last price is no rejection of vetting's. A market order is
    valued and protected at last ± 10 %, so without one it has neither a price nor a value to vet
    or reserve: this project refuses it before vetting, under its own code."""
    decision = rejected(with_last_price(snapshot(placed(side, order_type), holding=HELD), None))
    assert (decision.code, decision.rule, decision.parameters) == (RejectionCode.ORDER_UNPRICED, None, ())
    assert decision.reason == (
        "XS01.XSX has no last price yet, so a market order can be given no protection price to be valued "
        "and reserved at; place a limit order"
    )


def test_a_market_buy_whose_protection_price_would_be_below_a_cent_cannot_be_priced() -> None:
    buy = placed(order_type=OrderType.MARKET)
    assert code_of(with_last_price(snapshot(buy), Decimal("0.009"))) is RejectionCode.ORDER_UNPRICED
    assert accepted(with_last_price(snapshot(buy), Decimal("0.0091"))).protection_price == Decimal("0.01")


# --- OMS.Implicit -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "says"),
    [
        (AccountState.SUSPENDED, "is suspended (margin call); it takes no orders until it is reinstated"),
        (AccountState.CLOSED, "is closed (margin call); it takes no orders"),
    ],
)
def test_oms_implicit_an_account_not_active_fails_with_account_inactive(state: AccountState, says: str) -> None:
    """Vetting.config, OMS.Implicit: ``FAIL WITH Account.Inactive IF account HAS active AND (NOT
    account.active)``: no parameters. A suspended or a closed account is not active."""
    decision = rejected(with_account(snapshot(), state=state, state_reason="margin call"))
    assert (decision.code, decision.rule, decision.parameters) == (
        RejectionCode.ACCOUNT_INACTIVE,
        VettingRule.IMPLICIT,
        (),
    )
    assert decision.reason == f"trading account XS:0001 {says}"


# --- OMS.FundingCheck (bids) --------------------------------------------------------------------


def test_oms_funding_check_a_bid_beyond_the_trading_balance_fails_with_the_balance() -> None:
    """Vetting.config, OMS.FundingCheck: ``FAIL WITH [Balance.Exceed, balance.trading] IF order.side
    IS Bid AND (order HAS value AND (details.value - order.value) > balance.trading)``. The trading
    balance is the cash available to trade: booked less what open buys reserve. A place has no
    earlier order, so what it needs is its whole value; exactly the balance is not beyond it."""
    short = snapshot(cash=CashPosition("AUD", balance=Decimal("1500.00"), unfilled_buys=Decimal("600.00")))
    assert failure(short) == (RejectionCode.BALANCE_EXCEED, VettingRule.FUNDING_CHECK, ("900.00",))
    assert rejected(short).reason == (
        "the buy needs 1000.00 AUD (100 × 10.00) but 900.00 AUD is available (booked 1500.00, reserved by open "
        "buys 600.00); deposit funds or place a smaller order"
    )
    accepted(snapshot(cash=CashPosition("AUD", balance=Decimal("1600.00"), unfilled_buys=Decimal("600.00"))))


def test_oms_funding_check_a_bid_with_no_cash_on_record_has_a_trading_balance_of_nothing() -> None:
    assert failure(snapshot(cash=None)) == (RejectionCode.BALANCE_EXCEED, VettingRule.FUNDING_CHECK, ("0.00",))


def test_oms_funding_check_an_amend_needs_only_what_it_adds_to_the_order() -> None:
    """Vetting.config, OMS.FundingCheck: ``(details.value - order.value) > balance.trading``: an amend
    (``RUN IF request.type IN ['Place', 'Amend']``) needs the trading balance for the value it adds
    to what the order already reserves."""
    amending = AmendedOrder(value=Decimal("600.00"), quantity=60)
    cash = CashPosition("AUD", balance=Decimal("1100.00"), unfilled_buys=Decimal("600.00"))  # the order's 600 reserved
    fits = snapshot(with_quantity(110), cash=cash, amending=amending)  # 1100.00: 500.00 more
    assert accepted(fits).reserved_cash == Decimal("1100.00")
    beyond = snapshot(with_quantity(111), cash=cash, amending=amending)  # 1110.00: 510.00 more
    assert failure(beyond) == (RejectionCode.BALANCE_EXCEED, VettingRule.FUNDING_CHECK, ("500.00",))
    assert rejected(beyond).reason.startswith("the buy needs 510.00 AUD more than the 600.00 AUD it reserves")


def with_quantity(quantity: int, side: OrderSide = OrderSide.BUY) -> OrderPlaced:
    return placed(side, quantity=quantity, limit="10.00")


def test_oms_funding_check_is_for_bids_only() -> None:
    """Vetting.config, OMS.FundingCheck: ``IF order.side IS Bid``: an ask needs no cash."""
    sell = accepted(snapshot(placed(side=OrderSide.SELL, quantity=100), cash=None))
    assert (sell.reserved_cash, sell.held_back, sell.value) == (Decimal(0), 100, Decimal("1000.00"))


# --- OMS.HoldingCheck (asks) --------------------------------------------------------------------


def test_oms_holding_check_an_ask_with_no_holding_fails_with_zero() -> None:
    """Vetting.config, OMS.HoldingCheck: ``RUN IF order.side IS Ask # Can BID for anything but can only
    ASK for what we have`` ... ``FAIL WITH [Quantity.Insufficient, 0] IF holding MISSING available``."""
    decision = rejected(snapshot(ask("10.00"), holding=None))
    assert (decision.code, decision.rule, decision.parameters) == (
        RejectionCode.QUANTITY_INSUFFICIENT,
        VettingRule.HOLDING_CHECK,
        ("0",),
    )
    assert decision.reason == f"the sell needs 100 {INSTRUMENT} but none are held; sell no more than is available"


def test_oms_holding_check_an_ask_beyond_the_available_holding_fails_with_what_is_available() -> None:
    """Vetting.config, OMS.HoldingCheck: ``FAIL WITH [Quantity.Insufficient, holding.available] IF
    (details.quantity - order.quantity) > holding.available``: available is what is held less what
    open sells hold back; exactly that much is not beyond it."""
    decision = rejected(snapshot(ask("10.00"), holding=HoldingPosition(INSTRUMENT, quantity=150, unfilled_sells=60)))
    assert (decision.code, decision.rule, decision.parameters) == (
        RejectionCode.QUANTITY_INSUFFICIENT,
        VettingRule.HOLDING_CHECK,
        ("90",),
    )
    assert decision.reason == (
        f"the sell needs 100 {INSTRUMENT} but 90 are available (held 150, held back by open sells 60); "
        "sell no more than is available"
    )
    accepted(snapshot(ask("10.00"), holding=HoldingPosition(INSTRUMENT, quantity=160, unfilled_sells=60)))


def test_oms_holding_check_an_amend_needs_only_the_quantity_it_adds() -> None:
    """Vetting.config, OMS.HoldingCheck: ``(details.quantity - order.quantity) > holding.available``."""
    amending = AmendedOrder(value=Decimal("600.00"), quantity=60)
    holding = HoldingPosition(INSTRUMENT, quantity=100, unfilled_sells=60)  # the order's 60 held back: 40 available
    assert accepted(snapshot(with_quantity(100, OrderSide.SELL), holding=holding, amending=amending)).held_back == 100
    beyond = snapshot(with_quantity(101, OrderSide.SELL), holding=holding, amending=amending)
    assert failure(beyond) == (RejectionCode.QUANTITY_INSUFFICIENT, VettingRule.HOLDING_CHECK, ("40",))
    assert rejected(beyond).reason.startswith(f"the sell needs 41 {INSTRUMENT} more than the 60 it holds back")


def test_oms_holding_check_is_for_asks_only() -> None:
    accepted(snapshot(holding=None))


# --- OMS.Compliance -----------------------------------------------------------------------------


@pytest.mark.parametrize(("price", "shown"), [("0", "0.00"), ("-0.01", "-0.01")])
def test_oms_compliance_a_price_not_above_zero_is_invalid(price: str, shown: str) -> None:
    """Vetting.config, OMS.Compliance: ``FAIL WITH [OrderPrice.Invalid] IF details.price <= 0``: no
    parameters. No event carries such a price; an amend's terms come to vetting unchecked."""
    decision = rejected(with_order(snapshot(), limit_price=Decimal(price)))
    assert (decision.code, decision.rule, decision.parameters) == (
        RejectionCode.ORDER_PRICE_INVALID,
        VettingRule.COMPLIANCE,
        (),
    )
    assert decision.reason == f"price {shown} is not above zero; give a positive limit price"


@pytest.mark.parametrize(("limit", "passes"), [("11.00", True), ("11.01", False), ("10.00", True)])
def test_oms_compliance_a_bid_more_than_ten_percent_above_last_or_close_is_too_far_above(
    limit: str, passes: bool
) -> None:
    """Vetting.config, OMS.Compliance: ``RUN IF order.side IS Bid { FAIL WITH
    [OrderPrice.TooFarAbove, '10.0%'] IF (100 * (details.price - market.lastorclose) /
    market.lastorclose) > 10.0 }``: exactly 10 % above is not more than 10 %. The instrument's last
    price (the adapter's reference price until a fill) is its last-or-close."""
    snap = unlimited(bid(limit))
    if passes:
        assert accepted(snap).price == Decimal(limit)
    else:
        decision = rejected(snap)
        assert (decision.code, decision.rule, decision.parameters) == (
            RejectionCode.ORDER_PRICE_TOO_FAR_ABOVE,
            VettingRule.COMPLIANCE,
            ("10.0%",),
        )
        assert decision.reason == (
            "the bid's price 11.01 is more than 10 % above XS01.XSX's last price 10.00 (at most 11.00); bid no higher"
        )


@pytest.mark.parametrize(("limit", "passes"), [("9.00", True), ("8.99", False), ("10.00", True)])
def test_oms_compliance_an_ask_more_than_ten_percent_below_last_or_close_is_too_far_below(
    limit: str, passes: bool
) -> None:
    """Vetting.config, OMS.Compliance: ``RUN IF order.side IS Ask { FAIL WITH
    [OrderPrice.TooFarBelow, '-10.0%'] IF (100 * (details.price - market.lastorclose) /
    market.lastorclose) < -10.0 }``."""
    snap = unlimited(ask(limit))
    if passes:
        assert accepted(snap).price == Decimal(limit)
    else:
        decision = rejected(snap)
        assert (decision.code, decision.rule, decision.parameters) == (
            RejectionCode.ORDER_PRICE_TOO_FAR_BELOW,
            VettingRule.COMPLIANCE,
            ("-10.0%",),
        )
        assert decision.reason == (
            "the ask's price 8.99 is more than 10 % below XS01.XSX's last price 10.00 (at least 9.00); ask no lower"
        )


def test_oms_compliance_a_bid_far_below_the_market_and_an_ask_far_above_it_are_accepted() -> None:
    """Vetting.config, OMS.Compliance checks a bid only against ``> 10.0`` above and an ask only
    against ``< -10.0`` below: a bid at half the last price, or an ask at twice it, risks nothing
    and rests in the book."""
    assert accepted(unlimited(bid("5.00"))).price == Decimal("5.00")
    assert accepted(unlimited(ask("20.00"))).price == Decimal("20.00")


def test_oms_compliance_with_no_last_or_close_there_is_no_price_check() -> None:
    """Vetting.config, OMS.Compliance: ``RUN IF market HAS lastorclose  # Must have a price to work
    with``; the ``ELSE`` branch fails nothing: an order on an instrument with no last price is
    accepted, whatever its price (a new listing must be able to trade)."""
    assert accepted(unlimited(bid("150.00"), last=None)).price == Decimal("150.00")
    assert accepted(unlimited(ask("0.01"), last=None)).price == Decimal("0.01")


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e6"), places=6))
def test_oms_compliance_takes_the_exact_percentage(last: Decimal) -> None:
    """The percentage of Vetting.config is taken exactly: 10 % above is accepted, a hundred-millionth
    beyond it is not (no rounding in the division lets it through)."""
    top, bottom = last * Decimal("1.1"), last * Decimal("0.9")
    tiny = Decimal("1e-8")
    for price, order, code in (
        (top, bid, None),
        (top + tiny, bid, RejectionCode.ORDER_PRICE_TOO_FAR_ABOVE),
        (bottom, ask, None),
        (bottom - tiny, ask, RejectionCode.ORDER_PRICE_TOO_FAR_BELOW),
    ):
        decision = vet(with_order(unlimited(order("1.00", quantity=1), last), limit_price=price))
        if code is None:
            assert not (isinstance(decision, Rejection) and decision.rule is VettingRule.COMPLIANCE), decision
        else:
            assert isinstance(decision, Rejection) and decision.code is code, decision


# --- OMS.Limits ---------------------------------------------------------------------------------


def test_oms_limits_an_order_value_above_a_million_exceeds() -> None:
    """Vetting.config, OMS.Limits: ``FAIL WITH [OrderValue.Exceed, '1000000'] IF details.value >
    1000000``: quantity × price, exactly; a million is not above it."""
    at = unlimited(bid("0.20", quantity=5_000_000), last=None)  # 1,000,000.00
    assert accepted(at).value == Decimal("1000000.00")
    above = with_order(at, limit_price=Decimal("0.20000001"))  # 1,000,000.05
    decision = rejected(above)
    assert (decision.code, decision.rule, decision.parameters) == (
        RejectionCode.ORDER_VALUE_EXCEED,
        VettingRule.LIMITS,
        ("1000000",),
    )
    assert decision.reason == (
        "the order's value 1000000.05 AUD (5000000 × 0.20000001) is above the maximum order value of 1000000; "
        "place a smaller order"
    )


def test_oms_limits_an_order_price_above_two_hundred_exceeds() -> None:
    """Vetting.config, OMS.Limits: ``FAIL WITH [OrderPrice.Exceed, '200.00'] IF details.price > 200.00``."""
    assert accepted(unlimited(bid("200.00"), last=None)).price == Decimal("200.00")
    decision = rejected(unlimited(bid("200.01"), last=None))
    assert (decision.code, decision.rule, decision.parameters) == (
        RejectionCode.ORDER_PRICE_EXCEED,
        VettingRule.LIMITS,
        ("200.00",),
    )
    assert (
        decision.reason == "price 200.01 is above the maximum order price of 200.00; place the order at 200.00 or less"
    )


def test_oms_limits_an_order_quantity_above_five_million_exceeds() -> None:
    """Vetting.config, OMS.Limits: ``FAIL WITH [OrderQuantity.Exceed, '5000000'] IF details.quantity >
    5000000``."""
    accepted(unlimited(bid("0.10", quantity=5_000_000), last=None))
    decision = rejected(unlimited(bid("0.10", quantity=5_000_001), last=None))
    assert (decision.code, decision.rule, decision.parameters) == (
        RejectionCode.ORDER_QUANTITY_EXCEED,
        VettingRule.LIMITS,
        ("5000000",),
    )
    assert decision.reason == "quantity 5000001 is above the maximum order quantity of 5000000; place a smaller order"


def test_oms_limits_are_tried_in_the_order_the_rule_states_them() -> None:
    """Vetting.config, OMS.Limits fails with its first ``FAIL WITH`` that holds: value, price, quantity."""
    assert code_of(unlimited(bid("300.00", quantity=6_000_000), last=None)) is RejectionCode.ORDER_VALUE_EXCEED
    assert code_of(unlimited(bid("300.00", quantity=1), last=None)) is RejectionCode.ORDER_PRICE_EXCEED
    cheap = with_order(unlimited(bid("0.01", quantity=1), last=None), quantity=6_000_000)
    assert code_of(cheap) is RejectionCode.ORDER_QUANTITY_EXCEED


def test_a_market_order_is_vetted_at_its_protection_price() -> None:
    """A market order's ``details.price`` is the price it is valued and reserved at: its protection
    price. So OMS.Limits' ``details.price > 200.00`` refuses a market buy where last + 10 % is above
    200.00, and a market order always passes OMS.Compliance (its protection is within 10 %)."""
    market = placed(order_type=OrderType.MARKET, quantity=1)
    assert accepted(unlimited(market, last=Decimal("181.81"))).price == Decimal("199.99")
    assert code_of(unlimited(market, last=Decimal("181.83"))) is RejectionCode.ORDER_PRICE_EXCEED  # 200.01


# --- the account's own limits, after vetting: Xbus.AccountLimit. ---------------------------------


def test_a_quantity_above_the_accounts_own_limit_is_rejected_and_at_it_accepted() -> None:
    snap = with_limits(snapshot(placed(quantity=100)), max_order_value=None)
    assert failure(with_limits(snap, max_order_quantity=99)) == (
        RejectionCode.ACCOUNT_MAX_ORDER_QUANTITY,
        None,
        ("99",),
    )
    assert rejected(with_limits(snap, max_order_quantity=99)).reason == (
        "quantity 100 is above the account's maximum order quantity of 99; place a smaller order"
    )
    accepted(with_limits(snap, max_order_quantity=100))
    accepted(with_limits(snap, max_order_quantity=None))


def test_a_value_above_the_accounts_own_limit_is_rejected_and_at_it_accepted() -> None:
    snap = snapshot(placed(quantity=100, limit="10.00"))
    decision = rejected(with_limits(snap, max_order_value=PositiveMoney(amount=Decimal("999.99"), currency="AUD")))
    assert decision == Rejection(
        RejectionCode.ACCOUNT_MAX_ORDER_VALUE,
        "the order's value 1000.00 AUD (100 × 10.00) is above the account's maximum order value of 999.99 AUD; "
        "place a smaller order",
        parameters=("999.99", "AUD"),
    )
    accepted(with_limits(snap, max_order_value=PositiveMoney(amount=Decimal("1000"), currency="AUD")))


def test_a_value_limit_in_another_currency_than_the_markets_refuses_the_order_rather_than_being_skipped() -> None:
    """Issue 20, defect 6: an account's max order value was silently skipped when its currency
    differed from the market's. The OMS has no exchange rates to convert with, so it refuses the
    order with a code of the account's limits, saying what to change."""
    limit = PositiveMoney(amount=Decimal("1000000.00"), currency="USD")
    decision = rejected(with_limits(snapshot(), max_order_value=limit))
    assert (decision.code, decision.rule, decision.parameters) == (
        RejectionCode.ACCOUNT_LIMIT_CURRENCY,
        None,
        ("USD", "AUD"),
    )
    assert decision.reason == (
        "trading account XS:0001's maximum order value is in USD but XS01.XSX trades in AUD, and the OMS has no "
        "exchange rates to compare them; set the account's maximum order value in AUD to trade there"
    )


def test_a_market_order_is_valued_at_its_protection_price_against_the_accounts_limit() -> None:
    market = placed(order_type=OrderType.MARKET, quantity=100)
    snap = with_limits(snapshot(market), max_order_value=PositiveMoney(amount=Decimal("1099.99"), currency="AUD"))
    assert code_of(snap) is RejectionCode.ACCOUNT_MAX_ORDER_VALUE  # 100 × 11.00
    assert accepted(with_limits(snap, max_order_value=None)).value == Decimal("1100.00")


# --- the first failure wins ---------------------------------------------------------------------


def _inactive(snap: Snapshot) -> Snapshot:
    return with_account(snap, state=AccountState.SUSPENDED)


def _unsupported(snap: Snapshot) -> Snapshot:
    return with_order(snap, lifetime=OrderLifetime.GOOD_TILL_DATE)


def _unpriced(snap: Snapshot) -> Snapshot:
    """A market order with no last price (the limit a later breaker sets is then no price of its)."""
    market = with_order(snap, order_type=OrderType.MARKET)
    return with_last_price(market, None) if market.instrument else market


def _priced(price: str) -> Callable[[Snapshot], Snapshot]:
    return lambda snap: with_order(snap, limit_price=Decimal(price))


def _big(snap: Snapshot) -> Snapshot:
    return with_order(snap, quantity=5_000_001)


#: One way to fail each check and rule, in the order they are tried; each touches something of its
#: own (or, like the market order, something no later one reads), so that all can fail one
#: snapshot at once. A bid's list has OMS.FundingCheck; an ask's OMS.HoldingCheck.
BEFORE: list[tuple[RejectionCode, Callable[[Snapshot], Snapshot]]] = [
    (RejectionCode.ORDER_DUPLICATE, lambda s: dataclasses.replace(s, order_id_taken=True)),
    (RejectionCode.LOGIN_NO_TRADE_RIGHT, lambda s: dataclasses.replace(s, rights=frozenset({AccountRight.VIEW}))),
    (RejectionCode.INSTRUMENT_UNKNOWN, lambda s: dataclasses.replace(s, instrument=None, exchange=None)),
    (RejectionCode.EXCHANGE_NOT_ALLOWED, lambda s: with_account(s, allowed_exchanges=())),
    (RejectionCode.EXCHANGE_NOT_ACTIVE, lambda s: with_exchange(s, adapter_running=False) if s.exchange else s),
    (RejectionCode.ORDER_UNSUPPORTED, _unsupported),
    (RejectionCode.ORDER_UNPRICED, _unpriced),
    (RejectionCode.ACCOUNT_INACTIVE, _inactive),
]
AFTER: list[tuple[RejectionCode, Callable[[Snapshot], Snapshot]]] = [
    (RejectionCode.ORDER_VALUE_EXCEED, _big),
    (RejectionCode.ACCOUNT_MAX_ORDER_QUANTITY, lambda s: with_limits(s, max_order_quantity=99)),
    (
        RejectionCode.ACCOUNT_LIMIT_CURRENCY,
        lambda s: with_limits(s, max_order_value=PositiveMoney(amount=Decimal("1"), currency="USD")),
    ),
]
BID_BREAKERS = [
    *BEFORE,
    (RejectionCode.BALANCE_EXCEED, lambda s: dataclasses.replace(s, cash=CashPosition("AUD", Decimal("999.99")))),
    (RejectionCode.ORDER_PRICE_TOO_FAR_ABOVE, _priced("11.01")),
    *AFTER,
]
ASK_BREAKERS = [
    *BEFORE,
    (RejectionCode.QUANTITY_INSUFFICIENT, lambda s: dataclasses.replace(s, holding=None)),
    (RejectionCode.ORDER_PRICE_TOO_FAR_BELOW, _priced("8.99")),
    *AFTER,
]


@pytest.mark.parametrize(
    ("side", "breakers", "first"),
    [(OrderSide.BUY, BID_BREAKERS, n) for n in range(len(BID_BREAKERS))]
    + [(OrderSide.SELL, ASK_BREAKERS, n) for n in range(len(ASK_BREAKERS))],
    ids=[f"bid-{code}" for code, _ in BID_BREAKERS] + [f"ask-{code}" for code, _ in ASK_BREAKERS],
)
def test_the_first_failure_wins_checks_then_oms_general_in_its_order_then_the_accounts_limits(
    side: OrderSide, breakers: list[tuple[RejectionCode, Callable[[Snapshot], Snapshot]]], first: int
) -> None:
    """Vetting.config's rule set ``OMS.General`` runs ``OMS.Implicit``, ``OMS.FundingCheck``,
    ``OMS.HoldingCheck``, ``OMS.Compliance``, ``OMS.Limits`` in that order. This project's checks come
    before it (an order must be known, allowed and priced to be vetted), the account's own limits
    after it; the first failure is the rejection."""
    snap = snapshot(
        placed(side, quantity=100, limit="10.00"),
        cash=CashPosition("AUD", Decimal("1e9")),
        holding=HoldingPosition(INSTRUMENT, quantity=10**7),
    )
    snap = with_limits(snap, max_order_value=None, max_order_quantity=None)
    for _, breaker in breakers[first:]:
        snap = breaker(snap)
    assert code_of(snap) is breakers[first][0]


def test_an_unknown_account_comes_before_the_trade_right() -> None:
    assert code_of(snapshot(account=None, rights=frozenset(), instrument=None, exchange=None)) is (
        RejectionCode.ACCOUNT_UNKNOWN
    )


# --- the protection price -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "buy", "sell"),
    [
        ("10.00", "11.00", "9.00"),
        ("10.01", "11.01", "9.01"),  # 11.011 down, 9.009 up: towards the last price
        ("0.999", "1.09", "0.90"),  # 1.0989 down, 0.8991 up
        ("123.45", "135.79", "111.11"),  # 135.795 down, 111.105 up
    ],
)
def test_protection_price_is_within_ten_percent_to_the_cent_rounded_towards_the_last_price(
    last: str, buy: str, sell: str
) -> None:
    """The worst price a market order may fill at is the furthest one OMS.Compliance lets a limit
    order have (``> 10.0`` above for a bid, ``< -10.0`` below for an ask fail), to the cent."""
    assert protection_price(Decimal(last), OrderSide.BUY) == Decimal(buy)
    assert protection_price(Decimal(last), OrderSide.SELL) == Decimal(sell)


prices = st.decimals(min_value=Decimal("0.02"), max_value=Decimal("1e12"), places=8)


@given(prices)
def test_protection_price_never_lets_a_market_order_trade_beyond_ten_percent(last: Decimal) -> None:
    high, low = last * Decimal("1.1"), last * Decimal("0.9")
    buy = protection_price(last, OrderSide.BUY)
    sell = protection_price(last, OrderSide.SELL)
    assert buy is not None and high - Decimal("0.01") < buy <= high
    assert sell is not None and low <= sell < low + Decimal("0.01")
    assert buy == buy.quantize(Decimal("0.01")) and sell == sell.quantize(Decimal("0.01"))


def test_a_market_buy_reserves_quantity_times_its_protection_price() -> None:
    market = with_last_price(snapshot(placed(order_type=OrderType.MARKET, quantity=30)), Decimal("10.01"))
    decision = accepted(market)
    assert (decision.protection_price, decision.price, decision.reserved_cash) == (
        Decimal("11.01"),
        Decimal("11.01"),
        Decimal("330.30"),
    )


def test_a_market_sell_is_protected_below_the_last_price_and_reserves_no_cash() -> None:
    decision = accepted(snapshot(placed(side=OrderSide.SELL, order_type=OrderType.MARKET, quantity=30)))
    assert (decision.protection_price, decision.value, decision.reserved_cash, decision.held_back) == (
        Decimal("9.00"),
        Decimal("270.00"),
        Decimal(0),
        30,
    )


# --- what fills book and release ----------------------------------------------------------------


def test_a_buy_fill_books_its_cost_and_releases_its_share_at_the_reservation_price() -> None:
    booking = book_fill(OrderSide.BUY, 40, Decimal("9.90"), reservation_price=Decimal("10.00"))
    assert (booking.value, booking.cash, booking.quantity) == (Decimal("396.00"), Decimal("-396.00"), 40)
    assert (booking.cash_released, booking.held_back_released) == (Decimal("400.00"), 0)


def test_a_sell_fill_books_its_proceeds_and_releases_its_held_back_quantity() -> None:
    booking = book_fill(OrderSide.SELL, 40, Decimal("10.10"), reservation_price=Decimal("9.00"))
    assert (booking.value, booking.cash, booking.quantity) == (Decimal("404.00"), Decimal("404.00"), -40)
    assert (booking.cash_released, booking.held_back_released) == (Decimal(0), 40)


@given(
    st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=20),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e9"), places=2),
    st.data(),
)
def test_fills_of_a_whole_buy_release_exactly_its_reservation_and_never_cost_more(
    quantities: list[int], limit: Decimal, data: st.DataObject
) -> None:
    reserved = value_of(sum(quantities), limit)  # what a buy reserves: its value (the first test above)
    bookings = [
        book_fill(
            OrderSide.BUY,
            quantity,
            data.draw(st.decimals(min_value=Decimal("0.01"), max_value=limit, places=2)),
            reservation_price=limit,
        )
        for quantity in quantities
    ]
    assert sum(booking.cash_released for booking in bookings) == reserved
    assert all(-booking.cash <= booking.cash_released for booking in bookings)


# --- an order's life ----------------------------------------------------------------------------


def order(state: OrderState = OrderState.ROUTED, filled: int = 0, **changes: object) -> Order:
    stored = Order(
        order_id="ord-1",
        account_id=ACCOUNT,
        login_id="login-1",
        instrument=INSTRUMENT,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=100,
        limit_price=Decimal("10.00"),
        lifetime=OrderLifetime.DAY,
        expiry_date=None,
        state=state,
        exchange="XSX",
        adapter="prodigy",
        currency="AUD",
        price=Decimal("10.00"),
        protection_price=None,
        reserved=Decimal("1000.00"),
        held_back=0,
        filled_quantity=filled,
        filled_value=Decimal(0),
        outcome=OrderOutcome.FILLED if state is OrderState.COMPLETED else None,
        rejection_code=RejectionCode.BALANCE_EXCEED if state is OrderState.REJECTED else None,
        reason=None,
        placed_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
        changed_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )
    return dataclasses.replace(stored, **changes)  # type: ignore[arg-type]


def report(kind: ExecutionKind, fill: int = 0, leaves: int = 100, account_id: str = ACCOUNT) -> ExecutionReported:
    return ExecutionReported(
        exchange="XSX",
        order_id="ord-1",
        account_id=account_id,
        instrument=INSTRUMENT,
        side=OrderSide.BUY,
        kind=kind,
        currency="AUD",
        settles_through_registry=True,
        fill_quantity=fill,
        fill_price=Decimal("10.00") if fill else None,
        venue_trade_id="T-1" if fill else None,
        cumulative_quantity=100 - leaves,
        leaves_quantity=leaves,
    )


@pytest.mark.parametrize(
    ("current", "reported", "after"),
    [
        (OrderState.ROUTED, report(ExecutionKind.ACKNOWLEDGED), OrderState.ACKNOWLEDGED),
        (OrderState.PARTIALLY_FILLED, report(ExecutionKind.ACKNOWLEDGED), OrderState.PARTIALLY_FILLED),
        (OrderState.ACKNOWLEDGED, report(ExecutionKind.FILLED, fill=40, leaves=60), OrderState.PARTIALLY_FILLED),
        (OrderState.PARTIALLY_FILLED, report(ExecutionKind.FILLED, fill=60, leaves=0), OrderState.COMPLETED),
        (OrderState.ROUTED, report(ExecutionKind.CANCELLED, leaves=0), OrderState.COMPLETED),
        (OrderState.ACKNOWLEDGED, report(ExecutionKind.EXPIRED, leaves=0), OrderState.COMPLETED),
        (OrderState.ROUTED, report(ExecutionKind.REJECTED, leaves=0), OrderState.COMPLETED),
    ],
)
def test_reports_move_the_order_on_and_a_final_one_completes_it(
    current: OrderState, reported: ExecutionReported, after: OrderState
) -> None:
    assert state_after(current, reported) is after


def test_reports_for_orders_not_routed_to_that_account_or_over_or_overfilled_are_problems() -> None:
    fill = report(ExecutionKind.FILLED, fill=40, leaves=60)
    assert report_problem(order(), fill) is None
    assert "routed no such order" in (report_problem(None, fill) or "")
    assert "routed no such order" in (report_problem(order(state=OrderState.REJECTED), fill) or "")
    assert "routed no such order" in (report_problem(order(), report(ExecutionKind.FILLED, 40, 60, "XS:0002")) or "")
    assert "already over (filled)" in (report_problem(order(state=OrderState.COMPLETED), fill) or "")
    assert "more than its open quantity 30" in (report_problem(order(filled=70), fill) or "")


def cancel(account_id: str = ACCOUNT) -> OrderCancelRequested:
    return OrderCancelRequested(order_id="ord-1", account_id=account_id, login_id="login-1")


TRADE = frozenset({AccountRight.TRADE})


def test_an_open_order_of_the_account_is_cancelled_by_a_login_with_the_trade_right() -> None:
    for state in (OrderState.ROUTED, OrderState.ACKNOWLEDGED, OrderState.PARTIALLY_FILLED):
        assert cancel_refusal(order(state), cancel(), TRADE) is None


def test_cancels_of_unknown_foreign_done_or_unauthorised_orders_are_refused_with_the_reason() -> None:
    unknown = "trading account XS:0001 has no order ord-1; check the order id"
    assert (cancel_refusal(None, cancel(), TRADE) or "").startswith(unknown)
    assert (cancel_refusal(order(), cancel("XS:0002"), TRADE) or "").startswith("trading account XS:0002 has no order")
    assert cancel_refusal(order(), cancel(), frozenset({AccountRight.VIEW})) == (
        "login login-1 has no trade right on trading account XS:0001; an administrator of the account can grant it"
    )
    assert cancel_refusal(order(OrderState.COMPLETED), cancel(), TRADE) == (
        "order ord-1 is already over (filled): there is nothing left to cancel"
    )
    assert cancel_refusal(order(OrderState.REJECTED), cancel(), TRADE) == (
        "order ord-1 was rejected (Balance.Exceed): there is nothing to cancel"
    )
