"""Prodigy, the simulated exchange shipped with xosp-bus: a matching engine and a public feed.

What is simulated
    *Orders* (:class:`ProdigyOmsAdapter`): one order book per instrument
    (:mod:`~exchanges.prodigy.book`) matching LIMIT and MARKET orders (MARKET_TO_LIMIT taken
    as MARKET) by price-time priority, with partial fills; DAY and GOOD_TILL_CANCEL remainders
    rest (a DAY one expires when the gateway tells the book that its market has closed),
    IMMEDIATE_OR_CANCEL and FILL_OR_KILL ones are cancelled, and a market order never trades
    beyond its protection price nor rests. STOP, STOP_LIMIT, GOOD_TILL_DATE and SHORTSELL
    are rejected. A market maker (:mod:`~exchanges.prodigy.market_maker`) quotes a few
    levels a side, first around the instrument's reference price, then, after every
    instruction, afresh around the last trade price, so an order always finds liquidity. It has
    no account: trades with it are reported for the platform's order only, while a platform buy
    that meets a platform sell gets both orders filled.

    *Market data* (:class:`ProdigyMarketData`): per instrument a random walk of prices, told as
    quotes five levels deep, trades and trading statuses (pre-open, open, now and then halted,
    closed when a feed with a ``limit`` ends) (:mod:`~exchanges.prodigy.simulation`).

How it stays deterministic
    Reference prices and quote sizes are SHA-256 digests of the exchange and instrument codes
    (:mod:`~exchanges.prodigy.pricing`), never Python's salted ``hash()``. The book reads
    no clock (the close of its market comes from the gateway, like an instruction) and draws no
    random numbers: its state is JSON the gateway stores with the reports, and the same
    instructions (closes included) in the same order give byte-identical reports and states,
    which is how a replay rebuilds the same book. The feed draws from ``random.Random`` seeded with the
    exchange code, so the same exchange gives the same events; only their ``at`` is the wall
    clock, because the feed is live.

What the two share
    The reference prices, and nothing else: the feed's walk starts where the books are seeded,
    but the feed runs on its own clock and the books move only when orders arrive. The feed's
    trades and quotes are not the books', and the books do not follow the feed's prices.
"""

from exchanges.prodigy.plugins import ProdigyMarketData, ProdigyOmsAdapter

__all__ = ["ProdigyMarketData", "ProdigyOmsAdapter"]
