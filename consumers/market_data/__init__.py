"""Zenith market data: each exchange's feed, run from its plugin, and the latest state of every
instrument those feeds publish (docs/exchanges.md).

``service.py`` wires it (`xbus run market_data`), ``handlers.py`` decides which feeds run,
``feeds.py`` runs them (one instance per exchange, by advisory lock), ``stamping.py`` numbers
their events and dates their trades by the market's trading day, ``instruments.py`` folds
market data into an instrument's state (kept by a projection, consumers/runtime/projection.py),
``store.py`` holds its SQL and ``queries.py`` the read API.
"""
