"""The demo scenario: one exchange, its operators, users and trading accounts, funds and orders.

It is the platform guide's four operations as events, small enough to read in a terminal, and
deterministic apart from event ids so that two runs publish the same facts.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from schemas import Event
from schemas.accounts import (
    AccountLogin,
    FundsDeposited,
    Investor,
    TradingAccountOpened,
    VettingLimits,
)
from schemas.exchanges import ExchangeAdded, Market, Symbol, TradingHours
from schemas.operators import ManualActionCompleted, OperatorRegistered
from schemas.orders import OrderPlaced
from schemas.types import (
    AccountRight,
    InvestorType,
    OmsFeature,
    OperatorSystem,
    OrderLifetime,
    OrderSide,
    OrderType,
    PositiveMoney,
    RegistryFeature,
    Role,
)
from schemas.users import SessionLimits, SessionPolicy, UserCreated

EXCHANGE = "XSX"
USERS = [
    ("3f1c9a52-0001-4d1e-9c1a-000000000001", "alice", "Alice Nguyen"),
    ("3f1c9a52-0002-4d1e-9c1a-000000000002", "bob", "Bob Okafor"),
    ("3f1c9a52-0003-4d1e-9c1a-000000000003", "carol", "Carol Smith"),
    ("3f1c9a52-0004-4d1e-9c1a-000000000004", "dan", "Dan Rossi"),
]


def demo_events() -> list[Event]:
    """Events in the order an operator would provision by hand; the bus no longer needs that order."""
    return [_exchange(), *_operators(), *_users(), *_accounts(), *_funds(), *_orders()]


def _exchange() -> ExchangeAdded:
    symbols = tuple(
        Symbol(code=f"XS0{i}", name=f"XOSP Sample Company {i}", currency="AUD", cfi_code="ESVUFR") for i in range(1, 4)
    )
    market = Market(
        code=EXCHANGE,
        currency="AUD",
        time_zone="Australia/Sydney",
        trading_hours=TradingHours(open=dt.time(10), close=dt.time(16)),
        symbols=symbols,
    )
    return ExchangeAdded(
        code=EXCHANGE,
        name="XOSP Stock Exchange",
        markets=(market,),
        market_data_plugin="prodigy",
        oms_adapter="prodigy",
    )


def _operators() -> list[Event]:
    registered = OperatorRegistered(
        operator_id="ops-1",
        login_id=USERS[0][0],
        systems=(OperatorSystem.OMS, OperatorSystem.REGISTRY, OperatorSystem.PRODIGY),
        oms_features=(OmsFeature.ADMIN, OmsFeature.OPERATOR),
        registry_features=(RegistryFeature.ADMIN, RegistryFeature.MAINTAIN_RECORDS),
        owners=("XS",),
        exchanges=(EXCHANGE,),
    )
    completed = ManualActionCompleted(
        operator_id="ops-1", flow_id="operator:ops-1", step="prodigy", done_by="ops-admin"
    )
    return [registered, completed]


def _users() -> list[Event]:
    policy = SessionPolicy(pool="General", overrides=SessionLimits(max_sessions=2))
    return [
        UserCreated(
            login_id=login_id,
            username=username,
            email=f"{username}@example.com",
            display_name=name,
            roles=(Role.MOTIF_USER,) if index else (Role.MOTIF_USER, Role.FOUNDRY_OPERATOR),
            markets=(EXCHANGE,),
            session_policy=policy if index % 2 == 0 else None,
        )
        for index, (login_id, username, name) in enumerate(USERS)
    ]


def _accounts() -> list[Event]:
    return [
        TradingAccountOpened(
            account_id=f"XS:000{index + 1}",
            owner="XS",
            name=f"{name} trading",
            classification="Retail",
            default_currency="AUD",
            investor=Investor(
                investor_id=f"INV-{index + 1}", full_name=name, country="AU", type=InvestorType.INDIVIDUAL
            ),
            logins=(AccountLogin(login_id=login_id, rights=(AccountRight.VIEW, AccountRight.TRADE)),),
            allowed_exchanges=(EXCHANGE,),
            vetting=VettingLimits(max_order_value=PositiveMoney(amount=Decimal("50000"), currency="AUD")),
        )
        for index, (login_id, _, name) in enumerate(USERS[:3])
    ]


def _funds() -> list[Event]:
    return [
        FundsDeposited(
            account_id=f"XS:000{i}",
            amount=PositiveMoney(amount=Decimal("10000.00"), currency="AUD"),
            reference=f"BANK-{i}",
        )
        for i in range(1, 4)
    ]


def _orders() -> list[Event]:
    return [
        OrderPlaced(
            order_id="ORD-1",
            account_id="XS:0001",
            login_id=USERS[0][0],
            instrument="XS01.XSX",
            side=OrderSide.BUY,
            order_type=OrderType.LIMIT,
            quantity=100,
            limit_price=Decimal("12.50"),
        ),
        OrderPlaced(
            order_id="ORD-2",
            account_id="XS:0002",
            login_id=USERS[1][0],
            instrument="XS02.XSX",
            side=OrderSide.BUY,
            order_type=OrderType.MARKET,
            quantity=50,
            lifetime=OrderLifetime.IMMEDIATE_OR_CANCEL,
        ),
    ]
