"""The Foundry Registry: operators, investors, trading accounts, settled cash and holdings, and
the settlement of the fills of exchanges that settle through it.

``service.py`` wires it (`xbus run registry`), ``handlers.py`` holds its rules, ``ledger.py`` the
arithmetic of cash and holdings, ``store.py`` its SQL and ``queries.py`` the read API the CLI and
the HTTP API use.
"""
