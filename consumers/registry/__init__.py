"""The Foundry Registry: operators, investors, trading accounts, settled cash and holdings.

``service.py`` wires it (`xbus run registry`), ``handlers.py`` holds its rules, ``store.py`` its
SQL and ``queries.py`` the read API the CLI and the HTTP API use.
"""
