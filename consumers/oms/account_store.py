"""The OMS's operators, trading accounts and logins' rights on them: one concern of its store
(``consumers.oms.store``), the protocol the handlers see and its SQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import asyncpg

from consumers.oms.vetting import Account
from consumers.runtime.unit_of_work import DbConnection
from schemas.accounts import AccountLogin, TradingAccountOpened, TradingAccountUpdated, VettingLimits
from schemas.authorisation import AccessRevoked, RevokedScope
from schemas.oms import AccountState
from schemas.operators import OperatorRegistered
from schemas.types import AccountRight, PositiveMoney


class ClosureCause(StrEnum):
    REGISTRY_CLOSED = "registry_closed"
    OPENING_FAILED = "opening_failed"


@dataclass(frozen=True)
class Standing:
    """What the handlers decide on: an account's state and the flows behind it."""

    state: AccountState
    state_flow_id: str
    opened_by_flow: str


@dataclass(frozen=True)
class PendingClosure:
    flow_id: str
    cause: ClosureCause
    reason: str | None


class AccountRecords(Protocol):
    async def register_operator(self, event: OperatorRegistered, at: dt.datetime) -> None:
        """Register the operator, or register it again with what the new event says."""

    async def deregister_operator(self, operator_id: str, reason: str | None, at: dt.datetime) -> None:
        """Mark the operator deregistered; one the OMS never registered is nothing to do."""

    async def standing(self, account_id: str) -> Standing | None:
        """The account's state and flows; None for an account the OMS has not opened."""

    async def open_account(self, event: TradingAccountOpened, flow_id: str, at: dt.datetime) -> None:
        """The account, active, its state set by ``flow_id``, the flow that opened it."""

    async def update_account(self, event: TradingAccountUpdated, at: dt.datetime) -> bool:
        """Change the fields the event carries (vetting limits as a whole: an absent limit is
        lifted); False for an account the OMS does not have."""

    async def set_account_state(
        self, account_id: str, state: AccountState, flow_id: str, reason: str | None, at: dt.datetime
    ) -> bool:
        """Put the account in ``state`` for ``flow_id``; False if that flow has already done so
        (a change requested twice is reported once) or the account is unknown."""

    async def keep_pending_closure(
        self, account_id: str, flow_id: str, cause: ClosureCause, reason: str | None, at: dt.datetime
    ) -> None:
        """Keep the closure of an account not opened here yet (once per flow and cause)."""

    async def take_pending_closures(self, account_id: str) -> list[PendingClosure]:
        """The closures kept for ``account_id``, in arrival order, removed as they are acted on."""

    async def vetting_account(self, account_id: str) -> Account | None:
        """The account as vetting needs it: state, allowed exchanges and limits."""

    async def grant_rights(self, account_id: str, logins: Sequence[AccountLogin], flow_id: str) -> None:
        """Each login's rights on the account become those granted (as Resource Authorisation
        replaces them); in force only while the login is not disabled."""

    async def revoke_rights(self, revoked: AccessRevoked) -> None:
        """Scope ``login``: the login is disabled, and its rights, kept, stop being in force (an
        account's grants come on another partition: deleting them here would not outlast a grant
        read after the disable); ``account_login``: the logins' rights on the account go;
        ``account``: every login's rights on the account go."""

    async def enable_login(self, login_id: str) -> None:
        """The login's granted rights are in force again."""

    async def rights(self, account_id: str, login_id: str) -> frozenset[AccountRight]:
        """The login's rights in force on the account: none while the login is disabled."""


class PostgresAccountRecords(AccountRecords):
    """Over the batch's connection (``consumers.oms.store.PostgresBooks`` gives it)."""

    _db: DbConnection

    async def register_operator(self, event: OperatorRegistered, at: dt.datetime) -> None:
        await self._db.execute(
            """
            insert into operators (operator_id, login_id, features, owners, exchanges, status,
                                   registered_at, changed_at)
            values ($1, $2, $3, $4, $5, 'registered', $6, $6)
            on conflict (operator_id) do update set
                login_id = excluded.login_id, features = excluded.features, owners = excluded.owners,
                exchanges = excluded.exchanges, status = 'registered', deregistered_reason = null,
                registered_at = excluded.registered_at, changed_at = excluded.changed_at
            """,
            event.operator_id,
            event.login_id,
            [str(feature) for feature in event.oms_features],
            list(event.owners),
            list(event.exchanges),
            at,
        )

    async def deregister_operator(self, operator_id: str, reason: str | None, at: dt.datetime) -> None:
        await self._db.execute(
            "update operators set status = 'deregistered', deregistered_reason = $2, changed_at = $3 "
            "where operator_id = $1",
            operator_id,
            reason,
            at,
        )

    async def standing(self, account_id: str) -> Standing | None:
        row = await self._db.fetchrow(
            "select state, state_flow_id, opened_by_flow from accounts where account_id = $1", account_id
        )
        if row is None:
            return None
        return Standing(AccountState(row["state"]), row["state_flow_id"], row["opened_by_flow"])

    async def open_account(self, event: TradingAccountOpened, flow_id: str, at: dt.datetime) -> None:
        vetting = event.vetting
        await self._db.execute(
            """
            insert into accounts (account_id, owner, name, classification, currency, categories, attributes,
                                  allowed_exchanges, max_order_value, max_order_value_currency,
                                  max_order_quantity, state, state_flow_id, opened_by_flow, opened_at,
                                  changed_at)
            values ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, 'active', $12, $12, $13, $13)
            """,
            event.account_id,
            event.owner,
            event.name,
            event.classification,
            event.default_currency,
            list(event.categories),
            json.dumps(event.attributes, sort_keys=True),
            list(event.allowed_exchanges),
            vetting.max_order_value.amount if vetting.max_order_value else None,
            vetting.max_order_value.currency if vetting.max_order_value else None,
            vetting.max_order_quantity,
            flow_id,
            at,
        )

    async def update_account(self, event: TradingAccountUpdated, at: dt.datetime) -> bool:
        vetting = event.vetting or VettingLimits()
        value = vetting.max_order_value
        changed = await self._db.execute(
            """
            update accounts set
                name = coalesce($2, name),
                classification = coalesce($3, classification),
                categories = coalesce($4, categories),
                attributes = coalesce($5::jsonb, attributes),
                allowed_exchanges = coalesce($6, allowed_exchanges),
                max_order_value = case when $7 then $8 else max_order_value end,
                max_order_value_currency = case when $7 then $9 else max_order_value_currency end,
                max_order_quantity = case when $7 then $10 else max_order_quantity end,
                changed_at = $11
            where account_id = $1
            """,
            event.account_id,
            event.name,
            event.classification,
            list(event.categories) if event.categories is not None else None,
            json.dumps(event.attributes, sort_keys=True) if event.attributes is not None else None,
            list(event.allowed_exchanges) if event.allowed_exchanges is not None else None,
            event.vetting is not None,
            value.amount if value else None,
            value.currency if value else None,
            vetting.max_order_quantity,
            at,
        )
        return changed != "UPDATE 0"

    async def set_account_state(
        self, account_id: str, state: AccountState, flow_id: str, reason: str | None, at: dt.datetime
    ) -> bool:
        changed = await self._db.execute(
            """
            update accounts set state = $2, state_flow_id = $3, state_reason = $4, changed_at = $5
            where account_id = $1 and not (state = $2 and state_flow_id = $3)
            """,
            account_id,
            str(state),
            flow_id,
            reason,
            at,
        )
        return changed != "UPDATE 0"

    async def keep_pending_closure(
        self, account_id: str, flow_id: str, cause: ClosureCause, reason: str | None, at: dt.datetime
    ) -> None:
        await self._db.execute(
            """
            insert into pending_closures (account_id, flow_id, cause, reason, received_at)
            values ($1, $2, $3, $4, $5) on conflict (account_id, flow_id, cause) do nothing
            """,
            account_id,
            flow_id,
            str(cause),
            reason,
            at,
        )

    async def take_pending_closures(self, account_id: str) -> list[PendingClosure]:
        rows = await self._db.fetch(
            """
            with taken as (delete from pending_closures where account_id = $1 returning seq, flow_id, cause, reason)
            select flow_id, cause, reason from taken order by seq
            """,
            account_id,
        )
        return [PendingClosure(row["flow_id"], ClosureCause(row["cause"]), row["reason"]) for row in rows]

    async def vetting_account(self, account_id: str) -> Account | None:
        row = await self._db.fetchrow(
            """
            select state, state_reason, allowed_exchanges, max_order_value, max_order_value_currency,
                   max_order_quantity
            from accounts where account_id = $1
            """,
            account_id,
        )
        if row is None:
            return None
        return Account(
            account_id=account_id,
            state=AccountState(row["state"]),
            state_reason=row["state_reason"],
            allowed_exchanges=tuple(row["allowed_exchanges"]),
            limits=limits_from_row(row),
        )

    # Logins' rights per account: two tables, each written from one partition only, and the view
    # ``account_rights`` of the rights in force (granted, and the login not disabled): migration
    # 0004 and docs/exchanges.md.

    async def grant_rights(self, account_id: str, logins: Sequence[AccountLogin], flow_id: str) -> None:
        for login in logins:
            await self._db.execute(
                """
                insert into granted_rights (account_id, login_id, rights, granted_by_flow) values ($1, $2, $3, $4)
                on conflict (account_id, login_id) do update set
                    rights = excluded.rights, granted_by_flow = excluded.granted_by_flow
                """,
                account_id,
                login.login_id,
                [str(right) for right in login.rights],
                flow_id,
            )

    async def revoke_rights(self, revoked: AccessRevoked) -> None:
        if revoked.scope is RevokedScope.LOGIN:
            await self._db.execute(
                """
                insert into disabled_logins (login_id, disabled_by_flow) values ($1, $2)
                on conflict (login_id) do update set disabled_by_flow = excluded.disabled_by_flow
                """,
                revoked.subject_id,
                revoked.flow_id,
            )
            return
        account_id = revoked.account_id or revoked.subject_id
        if revoked.scope is RevokedScope.ACCOUNT_LOGIN:
            await self._db.execute(
                "delete from granted_rights where account_id = $1 and login_id = any($2::text[])",
                account_id,
                list(revoked.login_ids),
            )
            return
        await self._db.execute("delete from granted_rights where account_id = $1", account_id)

    async def enable_login(self, login_id: str) -> None:
        await self._db.execute("delete from disabled_logins where login_id = $1", login_id)

    async def rights(self, account_id: str, login_id: str) -> frozenset[AccountRight]:
        granted = await self._db.fetchval(
            "select rights from account_rights where account_id = $1 and login_id = $2", account_id, login_id
        )
        return frozenset(AccountRight(right) for right in granted or ())


def limits_from_row(row: asyncpg.Record) -> VettingLimits:
    """The vetting limits of an ``accounts`` row."""
    max_order_value = (
        PositiveMoney(amount=row["max_order_value"], currency=row["max_order_value_currency"])
        if row["max_order_value"] is not None
        else None
    )
    return VettingLimits(max_order_value=max_order_value, max_order_quantity=row["max_order_quantity"])
