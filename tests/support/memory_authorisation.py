"""An in-memory :class:`Entitlements`, for unit tests of Resource Authorisation's rules on a
FakeUnitOfWork. It keeps exactly what the rules read back (no times: none is read back); the SQL,
its constraints and the ``login_permissions`` view are proven by the real-stack tests
(tests/integration/test_authorisation.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from consumers.authorisation.queries import Account
from consumers.authorisation.store import Entitlements, Pending
from schemas.accounts import AccountLogin
from schemas.types import AccountRight


@dataclass
class StoredLogin:
    #: active, disabled or deleted
    status: str
    roles: list[str]
    markets: list[str]
    created_flow_id: str


@dataclass
class StoredAccess:
    rights: tuple[AccountRight, ...]
    #: the flow that granted it
    flow_id: str
    #: login, account_login, account, or None: in force
    revoked_by: str | None


@dataclass
class StoredPending:
    account_id: str
    #: in the order the event named them
    logins: list[AccountLogin]


@dataclass
class MemoryEntitlements(Entitlements):
    logins: dict[str, StoredLogin] = field(default_factory=dict)
    #: (login id, permission) -> whether it is revoked
    permissions: dict[tuple[str, str], bool] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    #: (account id, login id) -> the association
    access: dict[tuple[str, str], StoredAccess] = field(default_factory=dict)
    #: flow id -> the association waiting for its logins, oldest first (the table's ``seq``)
    pending: dict[str, StoredPending] = field(default_factory=dict)
    #: flow id -> why it failed before its opening was applied
    failed_flows: dict[str, str] = field(default_factory=dict)

    # --- logins and their permissions -----------------------------------------------------------

    async def login_status(self, login_id: str) -> str | None:
        login = self.logins.get(login_id)
        return None if login is None else login.status

    async def insert_login(
        self, login_id: str, roles: Sequence[str], markets: Sequence[str], flow_id: str, at: dt.datetime
    ) -> None:
        assert login_id not in self.logins, "the table's primary key refuses a second row"
        self.logins[login_id] = StoredLogin("active", list(roles), list(markets), flow_id)

    async def update_roles_and_markets(
        self, login_id: str, roles: Sequence[str] | None, markets: Sequence[str] | None, at: dt.datetime
    ) -> tuple[list[str], list[str]]:
        login = self.logins[login_id]
        login.roles = login.roles if roles is None else list(roles)
        login.markets = login.markets if markets is None else list(markets)
        return list(login.roles), list(login.markets)

    async def set_login_status(self, login_id: str, status: str, at: dt.datetime) -> None:
        login = self.logins.get(login_id)
        if login is not None:
            login.status = status

    async def replace_permissions(self, login_id: str, permissions: Sequence[str], at: dt.datetime) -> None:
        for key in [key for key in self.permissions if key[0] == login_id and key[1] not in permissions]:
            del self.permissions[key]
        login = self.logins.get(login_id)
        if login is not None:
            for permission in permissions:
                self.permissions.setdefault((login_id, permission), login.status != "active")

    async def effective_permissions(self, login_id: str) -> tuple[str, ...]:
        own = [
            permission for (login, permission), revoked in self.permissions.items() if login == login_id and not revoked
        ]
        trade = [
            f"trade:{account_id}"
            for (account_id, login), access in self.access.items()
            if login == login_id and access.revoked_by is None and AccountRight.TRADE in access.rights
        ]
        return tuple(sorted(own + trade))

    async def revoke_login(self, login_id: str, at: dt.datetime) -> None:
        for key in self.permissions:
            if key[0] == login_id:
                self.permissions[key] = True
        for (_, login), access in self.access.items():
            if login == login_id and access.revoked_by is None:
                access.revoked_by = "login"

    async def restore_login(self, login_id: str) -> list[tuple[str, AccountLogin]]:
        for key in self.permissions:
            if key[0] == login_id:
                self.permissions[key] = False
        restored = []
        for (account_id, login), access in sorted(self.access.items()):
            if login == login_id and access.revoked_by == "login":
                access.revoked_by = None
                restored.append((account_id, AccountLogin(login_id=login_id, rights=access.rights)))
        return restored

    async def unknown_logins(self, login_ids: Sequence[str]) -> list[str]:
        return [login_id for login_id in login_ids if login_id not in self.logins]

    # --- accounts and access --------------------------------------------------------------------

    async def account(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    async def account_opened_by(self, flow_id: str) -> str | None:
        return next((a.account_id for a in self.accounts.values() if a.opened_flow_id == flow_id), None)

    async def open_account(self, account_id: str, flow_id: str, at: dt.datetime) -> None:
        known = self.accounts.get(account_id, Account(account_id, "open", None, None))
        self.accounts[account_id] = dataclasses.replace(known, opened_flow_id=flow_id)

    async def close_account(self, account_id: str, flow_id: str, at: dt.datetime) -> None:
        known = self.accounts.get(account_id, Account(account_id, "closed", None, None))
        self.accounts[account_id] = dataclasses.replace(known, state="closed", closed_flow_id=flow_id)

    async def grant(self, account_id: str, login: AccountLogin, flow_id: str, at: dt.datetime) -> bool:
        account, known = self.accounts.get(account_id), self.logins.get(login.login_id)
        if account is None or known is None:
            return False
        revoked_by = "account" if account.state == "closed" else None if known.status == "active" else "login"
        self.access[(account_id, login.login_id)] = StoredAccess(login.rights, flow_id, revoked_by)
        return revoked_by is None

    async def revoke_account(self, account_id: str, at: dt.datetime) -> list[str]:
        had = sorted(login for (a, login), x in self.access.items() if a == account_id and x.revoked_by is None)
        for (a, _), access in self.access.items():
            if a == account_id:
                access.revoked_by = "account"
        return had

    async def revoke_account_login(self, account_id: str, login_id: str, at: dt.datetime) -> None:
        access = self.access.get((account_id, login_id))
        if access is not None and access.revoked_by != "account":
            access.revoked_by = "account_login"

    # --- pending associations -------------------------------------------------------------------

    async def add_pending(self, flow_id: str, account_id: str, logins: Sequence[AccountLogin], at: dt.datetime) -> None:
        assert flow_id not in self.pending, "the table's primary key refuses a second row"
        assert account_id in self.accounts, "a pending association references its account"
        self.pending[flow_id] = StoredPending(account_id, list(logins))

    async def ready_for_login(self, login_id: str) -> list[Pending]:
        return [
            Pending(flow_id, pending.account_id)
            for flow_id, pending in self.pending.items()
            if any(login.login_id == login_id for login in pending.logins) and self._all_known(pending)
        ]

    async def ready_for_account(self, account_id: str) -> list[Pending]:
        return [
            Pending(flow_id, pending.account_id)
            for flow_id, pending in self.pending.items()
            if pending.account_id == account_id and self._all_known(pending)
        ]

    async def pending_logins(self, flow_id: str) -> list[AccountLogin]:
        pending = self.pending.get(flow_id)
        return [] if pending is None else list(pending.logins)

    async def drop_pending(self, flow_id: str) -> None:
        self.pending.pop(flow_id, None)

    async def drop_pending_of_account(self, account_id: str) -> list[str]:
        dropped = [flow_id for flow_id, pending in self.pending.items() if pending.account_id == account_id]
        for flow_id in dropped:
            del self.pending[flow_id]
        return dropped

    async def drop_pending_login(self, account_id: str, login_id: str) -> None:
        for pending in self.pending.values():
            if pending.account_id == account_id:
                pending.logins = [login for login in pending.logins if login.login_id != login_id]

    def _all_known(self, pending: StoredPending) -> bool:
        return all(login.login_id in self.logins for login in pending.logins)

    # --- failed flows ---------------------------------------------------------------------------

    async def remember_failed_flow(self, flow_id: str, account_id: str, reason: str, at: dt.datetime) -> None:
        self.failed_flows.setdefault(flow_id, reason)

    async def failed_flow_reason(self, flow_id: str) -> str | None:
        return self.failed_flows.get(flow_id)
