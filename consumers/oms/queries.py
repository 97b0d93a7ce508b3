"""Reading the OMS service's tables, for the CLI and the HTTP API.

Every function takes a connection whose ``search_path`` is the service's schema
(``settings.db_schema("oms")``), as the service's own SQL does: no query names a schema.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from consumers.runtime.unit_of_work import DbConnection
from schemas.accounts import VettingLimits
from schemas.oms import AccountState
from schemas.types import OmsFeature, PositiveMoney


@dataclass(frozen=True)
class Operator:
    operator_id: str
    login_id: str
    features: tuple[OmsFeature, ...]
    owners: tuple[str, ...]
    exchanges: tuple[str, ...]
    registered: bool
    deregistered_reason: str | None
    registered_at: dt.datetime
    changed_at: dt.datetime


@dataclass(frozen=True)
class Account:
    account_id: str
    owner: str
    name: str
    classification: str
    currency: str
    categories: tuple[str, ...]
    attributes: dict[str, str]
    allowed_exchanges: tuple[str, ...]
    vetting: VettingLimits
    state: AccountState
    state_reason: str | None
    #: The flow that set the state, and the one that opened the account.
    state_flow_id: str
    opened_by_flow: str
    opened_at: dt.datetime
    changed_at: dt.datetime


async def operator(connection: DbConnection, operator_id: str) -> Operator | None:
    """The operator as the OMS's Identity function knows it; None if never registered with the OMS."""
    row = await connection.fetchrow("select * from operators where operator_id = $1", operator_id)
    if row is None:
        return None
    return Operator(
        operator_id=row["operator_id"],
        login_id=row["login_id"],
        features=tuple(OmsFeature(feature) for feature in row["features"]),
        owners=tuple(row["owners"]),
        exchanges=tuple(row["exchanges"]),
        registered=row["status"] == "registered",
        deregistered_reason=row["deregistered_reason"],
        registered_at=row["registered_at"],
        changed_at=row["changed_at"],
    )


async def account(connection: DbConnection, account_id: str) -> Account | None:
    """The trading account's metadata, vetting settings and state; None if the OMS does not have it."""
    row = await connection.fetchrow("select * from accounts where account_id = $1", account_id)
    if row is None:
        return None
    max_order_value = (
        PositiveMoney(amount=row["max_order_value"], currency=row["max_order_value_currency"])
        if row["max_order_value"] is not None
        else None
    )
    return Account(
        account_id=row["account_id"],
        owner=row["owner"],
        name=row["name"],
        classification=row["classification"],
        currency=row["currency"],
        categories=tuple(row["categories"]),
        attributes=json.loads(row["attributes"]),
        allowed_exchanges=tuple(row["allowed_exchanges"]),
        vetting=VettingLimits(max_order_value=max_order_value, max_order_quantity=row["max_order_quantity"]),
        state=AccountState(row["state"]),
        state_reason=row["state_reason"],
        state_flow_id=row["state_flow_id"],
        opened_by_flow=row["opened_by_flow"],
        opened_at=row["opened_at"],
        changed_at=row["changed_at"],
    )
