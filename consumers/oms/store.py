"""The OMS's state, kept out of the handlers so that they read as the rules of the domain.

Handlers reach it through ``unit.store``, an :class:`OmsBooks`: the accounts and rights
(``account_store``), the orders and positions (``order_store``), the exchanges
(``exchange_store``) and the cash movements of a deployment without the registry
(``funds_store``) in one object, since a handler draws on several (an order is vetted against
all three). The service runs them on :class:`PostgresBooks`, over the batch's transaction (the
service's schema is the search path, so nothing here names a schema or commits), and unit tests
on an in-memory one (tests/support/memory_oms.py), so the rules are tested without a database
and the SQL by the real-stack tests. Locks stay on the unit of work (``unit.lock``).
"""

from __future__ import annotations

from typing import Protocol

from consumers.oms.account_store import AccountRecords, PostgresAccountRecords
from consumers.oms.exchange_store import ExchangeRecords, PostgresExchangeRecords
from consumers.oms.funds_store import FundsRecords, PostgresFundsRecords
from consumers.oms.order_store import OrderRecords, PostgresOrderRecords
from consumers.runtime import UnitOfWork
from consumers.runtime.unit_of_work import DbConnection


class OmsBooks(AccountRecords, OrderRecords, ExchangeRecords, FundsRecords, Protocol):
    """Everything the OMS keeps: operators, accounts, logins' rights, orders, fills, cash and
    holdings, exchanges, their instruments, adapters and prices, and the cash movements it books."""


#: What the handlers are given.
OmsUnit = UnitOfWork[OmsBooks]


class PostgresBooks(
    PostgresAccountRecords, PostgresOrderRecords, PostgresExchangeRecords, PostgresFundsRecords, OmsBooks
):
    def __init__(self, connection: DbConnection) -> None:
        self._db = connection
