"""The event models refuse what upstream systems must not send."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

import schemas
from schemas.accounts import FundsDeposited, TradingAccountOpened
from schemas.exchanges import ExchangeAdded
from schemas.market_data import PriceLevel
from schemas.operators import OperatorRegistered
from schemas.orders import OrderAmendRequested, OrderPlaced
from schemas.types import Money
from schemas.users import UserCreated

ACCOUNT = {
    "account_id": "XS:0001",
    "owner": "XS",
    "name": "Alice trading",
    "classification": "Retail",
    "default_currency": "AUD",
    "investor": {"investor_id": "INV-1", "full_name": "Alice", "country": "AU", "type": "individual"},
    "logins": [{"login_id": "u1", "rights": ["view", "trade"]}],
}
ORDER = {
    "order_id": "O1",
    "account_id": "XS:0001",
    "login_id": "u1",
    "instrument": "XS01.XSX",
    "side": "BUY",
    "order_type": "LIMIT",
    "quantity": 10,
    "limit_price": "12.50",
}


def problem(model: type, data: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return schemas.describe_validation_error(caught.value)


def test_every_event_type_is_versioned_and_unique() -> None:
    types = schemas.event_types.types()
    assert len(types) == len(set(types)) == 81
    assert all(t.startswith("xosp.") and ".v" in t for t in types)


def test_money_as_a_float_is_refused_and_as_a_string_is_exact() -> None:
    assert "decimal string" in problem(Money, {"amount": 10.1, "currency": "AUD"})
    assert Money(amount="0.10", currency="AUD").model_dump_json() == '{"amount":"0.10","currency":"AUD"}'


def test_a_deposit_must_be_positive_and_in_an_iso_currency() -> None:
    base = {"account_id": "XS:0001", "reference": "bank-1"}
    assert "amount.amount" in problem(FundsDeposited, {**base, "amount": {"amount": "0", "currency": "AUD"}})
    assert "amount.currency" in problem(FundsDeposited, {**base, "amount": {"amount": "5", "currency": "aud"}})


def test_models_are_closed_and_frozen() -> None:
    assert "Extra inputs are not permitted" in problem(
        UserCreated, {"login_id": "u", "username": "u", "email": "a@b.co", "display_name": "U", "password": "x"}
    )
    event = UserCreated(login_id="u", username="u", email="a@b.co", display_name="U")
    with pytest.raises(ValidationError):
        event.login_id = "other"  # type: ignore[misc]


def test_account_id_must_start_with_its_owner() -> None:
    assert "must start with its owner" in problem(TradingAccountOpened, {**ACCOUNT, "owner": "ZZ"})
    assert TradingAccountOpened.model_validate(ACCOUNT).aggregate_id == "XS:0001"


def test_a_login_listed_twice_on_an_account_is_refused() -> None:
    twice = {**ACCOUNT, "logins": ACCOUNT["logins"] * 2}
    assert "login u1 appears more than once" in problem(TradingAccountOpened, twice)


def test_environment_tag_is_kept_in_codes() -> None:
    order = OrderPlaced.model_validate({**ORDER, "instrument": "XS01.XSX[Demo]"})
    assert order.instrument == "XS01.XSX[Demo]"
    assert "instrument" in problem(OrderPlaced, {**ORDER, "instrument": "XS01"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"limit_price": None}, "limit_price is required for a LIMIT order"),
        ({"order_type": "MARKET"}, "limit_price is not allowed for a MARKET order"),
        ({"order_type": "STOP_LIMIT"}, "stop_price is required"),
        ({"lifetime": "GOOD_TILL_DATE"}, "expiry_date is required for GOOD_TILL_DATE"),
        ({"quantity": 0}, "quantity"),
        ({"side": "HOLD"}, "side"),
    ],
)
def test_orders_are_consistent_with_their_type(change: dict, message: str) -> None:
    assert message in problem(OrderPlaced, {**ORDER, **change})


def test_an_amendment_must_change_something() -> None:
    assert "needs a new quantity or a new limit_price" in problem(
        OrderAmendRequested, {"order_id": "O1", "account_id": "XS:0001", "login_id": "u1"}
    )


def test_operator_features_need_their_system() -> None:
    data = {"operator_id": "op", "login_id": "u1", "systems": ["oms"], "registry_features": ["Admin"]}
    assert "'registry' is not in systems" in problem(OperatorRegistered, data)


def test_exchange_markets_need_a_real_time_zone_and_hours() -> None:
    market = {
        "code": "XSX",
        "currency": "AUD",
        "time_zone": "Mars/Olympus",
        "trading_hours": {"open": "10:00", "close": "16:00"},
    }
    data = {"code": "XSX", "name": "X", "markets": [market], "market_data_plugin": "prodigy", "oms_adapter": "prodigy"}
    assert "not an IANA time zone" in problem(ExchangeAdded, data)
    backwards = {**market, "time_zone": "UTC", "trading_hours": {"open": "16:00", "close": "10:00"}}
    assert "open must be before close" in problem(ExchangeAdded, {**data, "markets": [backwards]})


def test_unknown_type_names_the_way_to_find_known_ones() -> None:
    with pytest.raises(schemas.UnknownEventType, match="xbus schemas list"):
        schemas.event_types.parse("xosp.user.created.v9", {})


@pytest.mark.parametrize("price", ["0", "0.000", "-1", "1e3", "1.5E2", "", "abc", "1234567890123456789", "1.123456789"])
def test_a_market_data_price_outside_the_amounts_grammar_or_not_above_zero_is_refused(price: str) -> None:
    with pytest.raises(ValidationError):
        PriceLevel.model_validate_json(f'{{"price": "{price}", "quantity": 1}}')


def test_a_market_data_price_is_a_decimal_string_read_exactly_and_never_a_json_number() -> None:
    level = PriceLevel.model_validate_json('{"price": "10.12345678", "quantity": 1}')
    assert level.price == Decimal("10.12345678") and isinstance(level.price, Decimal)
    assert level.model_dump_json() == '{"price":"10.12345678","quantity":1}'
    assert PriceLevel(price=Decimal("0.5"), quantity=1).price == Decimal("0.5")
    with pytest.raises(ValidationError):
        PriceLevel.model_validate_json('{"price": 10.5, "quantity": 1}')
    with pytest.raises(ValidationError):
        PriceLevel(price=Decimal("0"), quantity=1)
