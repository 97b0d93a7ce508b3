"""A trading scenario of any size: deposits, then orders from the accounts' logins, then cancels.

The end-to-end test and the conservation property run it. It is seeded: the same seed gives the
same orders with the same event ids. Orders are a mix a front end would send (buys and sells,
limit and market, every lifetime Prodigy takes, some from logins without the trade right, some
beyond what an account holds), so vetting refuses a share of them for each of its reasons, and
the cancels at the end leave no order open: every order reaches a final state.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from producers import Outgoing
from schemas.accounts import FundsDeposited
from schemas.exchanges import ExchangeAdded, Market, Symbol, TradingHours
from schemas.orders import OrderCancelRequested, OrderPlaced
from schemas.types import OrderLifetime, OrderSide, OrderType, PositiveMoney
from xbus.scenario import seeded

CENT = Decimal("0.01")
_LIFETIMES = (
    OrderLifetime.DAY,
    OrderLifetime.GOOD_TILL_CANCEL,
    OrderLifetime.IMMEDIATE_OR_CANCEL,
    OrderLifetime.FILL_OR_KILL,
)
#: Lifetimes that may leave an order resting in the book: the scenario cancels these at the end.
_RESTING = {OrderLifetime.DAY, OrderLifetime.GOOD_TILL_CANCEL}


@dataclass(frozen=True)
class TradingAccount:
    account_id: str
    #: Logins associated with it; the first has the trade right (as xbus.scenario opens them).
    logins: tuple[str, ...]
    currency: str = "AUD"


@dataclass(frozen=True)
class TradingScenario:
    deposits: tuple[Outgoing, ...]
    orders: tuple[Outgoing, ...]
    cancels: tuple[Outgoing, ...]

    def order_ids(self) -> list[str]:
        return [outgoing.event.order_id for outgoing in self.orders if isinstance(outgoing.event, OrderPlaced)]


def build_trading(
    accounts: Sequence[TradingAccount],
    prices: Mapping[str, Decimal],
    orders: int,
    *,
    deposit: Decimal | None = Decimal("20000"),
    seed: int = 7,
) -> TradingScenario:
    """``orders`` orders over ``accounts`` on the instruments of ``prices`` (reference prices),
    after a deposit of ``deposit`` into each account (none when None).

    Limit prices fall within ±8 % of the reference (so most pass the ±10 % band while the last
    price wanders); one order in twenty comes from a login without the trade right.
    """
    chance = random.Random(seed)
    deposits = tuple(
        seeded(
            FundsDeposited(
                account_id=account.account_id,
                amount=PositiveMoney(amount=deposit, currency=account.currency),
                reference=f"bank-{seed}-{n}",
            ),
            seed,
        )
        for n, account in enumerate(accounts)
        if deposit is not None
    )
    instruments = sorted(prices)
    placed: list[Outgoing] = []
    for n in range(orders):
        account = chance.choice(accounts)
        trader = account.logins[0] if chance.random() >= 0.05 or len(account.logins) == 1 else account.logins[-1]
        instrument = chance.choice(instruments)
        market = chance.random() < 0.3
        price = (prices[instrument] * Decimal(1 + chance.uniform(-0.08, 0.08))).quantize(CENT, ROUND_HALF_UP)
        placed.append(
            seeded(
                OrderPlaced(
                    order_id=f"ord-{seed}-{n:06d}",
                    account_id=account.account_id,
                    login_id=trader,
                    instrument=instrument,
                    side=OrderSide.BUY if chance.random() < 0.6 else OrderSide.SELL,
                    order_type=OrderType.MARKET if market else OrderType.LIMIT,
                    quantity=chance.randint(1, 40),
                    limit_price=None if market else max(price, CENT),
                    lifetime=chance.choice(_LIFETIMES),
                ),
                seed,
            )
        )
    cancels = tuple(
        seeded(
            OrderCancelRequested(
                order_id=order.event.order_id,
                account_id=order.event.account_id,
                login_id=order.event.login_id,
                reason="end of the scenario",
            ),
            seed,
        )
        for order in placed
        if isinstance(order.event, OrderPlaced) and order.event.lifetime in _RESTING
    )
    return TradingScenario(deposits, tuple(placed), cancels)


def prodigy_exchange(
    code: str,
    *,
    markets: int = 2,
    symbols: int | Sequence[str] = 3,
    currency: str = "AUD",
    plugin: str = "prodigy",
    adapter: str = "prodigy",
) -> ExchangeAdded:
    """``code`` with markets ``code``, ``codeB``, ... each listing ``symbols``: those codes, or that
    many named ``XS01``, ``XS02``, ..."""
    codes = [f"XS{n:02d}" for n in range(1, symbols + 1)] if isinstance(symbols, int) else list(symbols)
    return ExchangeAdded(
        code=code,
        name=f"Prodigy test exchange {code}",
        markets=tuple(
            Market(
                code=code + ("" if index == 0 else chr(ord("A") + index)),
                currency=currency,
                time_zone="Australia/Sydney",
                trading_hours=TradingHours(open=dt.time(10, 0), close=dt.time(16, 0)),
                symbols=tuple(
                    Symbol(code=symbol, name=f"Company {symbol}", currency=currency, cfi_code="ESVUFR")
                    for symbol in codes
                ),
            )
            for index in range(markets)
        ),
        market_data_plugin=plugin,
        oms_adapter=adapter,
    )


def instruments(exchange: ExchangeAdded) -> list[str]:
    return [f"{symbol.code}.{market.code}" for market in exchange.markets for symbol in market.symbols]
