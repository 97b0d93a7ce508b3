"""An in-memory :class:`Entitlements`, for unit tests of Resource Authorisation's rules on a
FakeUnitOfWork. It keeps exactly what the rules read back (no times: none is read back); the SQL,
its constraints, the walk of ``reach`` and the ``login_permissions`` view are proven by the
real-stack tests (tests/integration/test_authorisation.py, test_authorisation_groups.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from consumers.authorisation.permissions import in_force
from consumers.authorisation.queries import Account
from consumers.authorisation.reach import Asset, Association
from consumers.authorisation.store import Creation, Entitlements, Granted, Opening, Pending
from schemas.accounts import AccountLogin
from schemas.groups import AssetType
from schemas.types import AccountRight


@dataclass
class StoredLogin:
    #: active, disabled or deleted
    status: str
    roles: list[str]
    markets: list[str]
    created_flow_id: str


@dataclass
class StoredAssociation:
    rights: tuple[AccountRight, ...]
    #: the flow that defined it
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
    #: (login id, role permission) -> whether it is revoked
    permissions: dict[tuple[str, str], bool] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    #: (from, to) -> the association
    associations: dict[tuple[Asset, Asset], StoredAssociation] = field(default_factory=dict)
    #: Market and Group assets -> (name, the flow that defined them)
    definitions: dict[Asset, tuple[str | None, str]] = field(default_factory=dict)
    #: flow id -> the association waiting for its logins, oldest first (the table's ``seq``)
    pending: dict[str, StoredPending] = field(default_factory=dict)
    #: flow id -> why it failed before its opening was applied
    failed_flows: dict[str, str] = field(default_factory=dict)

    @property
    def access(self) -> dict[tuple[str, str], StoredAssociation]:
        """(account id, login id) -> the login's own association with the account."""
        return {
            (target.code, source.code): association
            for (source, target), association in self.associations.items()
            if source.type is AssetType.USER and target.type is AssetType.TRADING_ACCOUNT
        }

    # --- logins and their own permissions -------------------------------------------------------

    async def login_status(self, login_id: str) -> str | None:
        login = self.logins.get(login_id)
        return None if login is None else login.status

    async def create_login(
        self,
        login_id: str,
        roles: Sequence[str],
        markets: Sequence[str],
        permissions: Sequence[str],
        flow_id: str,
        at: dt.datetime,
    ) -> Creation:
        if login_id in self.logins:
            return Creation(self.logins[login_id].status, associated_before=True, awaited=True)
        associated_before = any(source == Asset.user(login_id) for source, _ in self.associations)
        awaited = any(login.login_id == login_id for pending in self.pending.values() for login in pending.logins)
        self.logins[login_id] = StoredLogin("active", list(roles), list(markets), flow_id)
        for permission in permissions:
            self.permissions[(login_id, permission)] = False
        for market in markets:
            key = (Asset.user(login_id), Asset(AssetType.MARKET, market))
            self.associations[key] = StoredAssociation((), flow_id, None)
        return Creation(None, associated_before, awaited)

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

    async def associate_markets(self, login_id: str, markets: Sequence[str], flow_id: str, at: dt.datetime) -> None:
        user = Asset.user(login_id)
        for key in [k for k in self.associations if k[0] == user and k[1].type is AssetType.MARKET]:
            if key[1].code not in markets:
                del self.associations[key]
        login = self.logins.get(login_id)
        if login is not None:
            revoked_by = None if login.status == "active" else "login"
            for market in markets:
                key = (user, Asset(AssetType.MARKET, market))
                self.associations.setdefault(key, StoredAssociation((), flow_id, revoked_by))

    async def effective_permissions(self, login_id: str) -> tuple[str, ...]:
        own = [
            permission for (login, permission), revoked in self.permissions.items() if login == login_id and not revoked
        ]
        root = Asset.user(login_id)
        return in_force(own, root, await self.reached(root))

    async def revoke_login(self, login_id: str, at: dt.datetime) -> None:
        for key in self.permissions:
            if key[0] == login_id:
                self.permissions[key] = True
        for association in self._own(login_id):
            if association.revoked_by is None:
                association.revoked_by = "login"

    async def restore_login(self, login_id: str) -> None:
        for key in self.permissions:
            if key[0] == login_id:
                self.permissions[key] = False
        for association in self._own(login_id):
            if association.revoked_by == "login":
                association.revoked_by = None

    async def unknown_logins(self, login_ids: Sequence[str]) -> list[str]:
        return [login_id for login_id in login_ids if login_id not in self.logins]

    def _own(self, login_id: str) -> Iterator[StoredAssociation]:
        user = Asset.user(login_id)
        return (association for (source, _), association in self.associations.items() if source == user)

    # --- assets and what they reach -------------------------------------------------------------

    async def define_asset(self, asset: Asset, name: str | None, flow_id: str, at: dt.datetime) -> None:
        assert asset.type in (AssetType.MARKET, AssetType.GROUP), "the table's check refuses other types"
        known_name, defined_by = self.definitions.get(asset, (None, flow_id))
        self.definitions[asset] = (name if name is not None else known_name, defined_by)

    async def define_association(
        self, source: Asset, target: Asset, rights: Sequence[AccountRight], flow_id: str, at: dt.datetime
    ) -> None:
        account = self.accounts.get(target.code) if target.type is AssetType.TRADING_ACCOUNT else None
        login = self.logins.get(source.code) if source.type is AssetType.USER else None
        revoked_by = (
            "account"
            if account is not None and account.state == "closed"
            else "login"
            if login is not None and login.status != "active"
            else None
        )
        self.associations[(source, target)] = StoredAssociation(tuple(rights), flow_id, revoked_by)

    async def undefine_association(self, source: Asset, target: Asset) -> None:
        self.associations.pop((source, target), None)

    async def reached(self, root: Asset) -> list[Association]:
        if root.type is AssetType.USER and (
            self.logins.get(root.code) is None or self.logins[root.code].status != "active"
        ):
            return []
        seen, queue, found = {root}, [root], []
        while queue:
            node = queue.pop(0)
            for (source, target), association in sorted(self._in_force(), key=lambda item: item[0]):
                if source == node:
                    found.append(Association(source, target, association.rights))
                    if target not in seen:
                        seen.add(target)
                        queue.append(target)
        return found

    async def reached_by_logins(self, login_ids: Sequence[str]) -> dict[str, list[Association]]:
        return {login_id: await self.reached(Asset.user(login_id)) for login_id in login_ids}

    async def logins_reaching(self, asset: Asset) -> list[str]:
        seen, queue = {asset}, [asset]
        while queue:
            node = queue.pop(0)
            for (source, target), _ in self._in_force():
                if target == node and source not in seen:
                    seen.add(source)
                    queue.append(source)
        return sorted(
            node.code
            for node in seen
            if node.type is AssetType.USER and node.code in self.logins and self.logins[node.code].status == "active"
        )

    def _in_force(self) -> list[tuple[tuple[Asset, Asset], StoredAssociation]]:
        return [(key, association) for key, association in self.associations.items() if association.revoked_by is None]

    # --- accounts and access --------------------------------------------------------------------

    async def account(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    async def account_opened_by(self, flow_id: str) -> str | None:
        return next((a.account_id for a in self.accounts.values() if a.opened_flow_id == flow_id), None)

    async def open_account(self, account_id: str, flow_id: str, login_ids: Sequence[str], at: dt.datetime) -> Opening:
        known = self.accounts.get(account_id, Account(account_id, "open", None, None))
        if known.opened_flow_id is None:
            self.accounts[account_id] = dataclasses.replace(known, opened_flow_id=flow_id)
        unknown = tuple(login_id for login_id in login_ids if login_id not in self.logins)
        return Opening(known.opened_flow_id, self.failed_flows.get(flow_id), unknown)

    async def close_account(self, account_id: str, flow_id: str, at: dt.datetime) -> None:
        known = self.accounts.get(account_id, Account(account_id, "closed", None, None))
        self.accounts[account_id] = dataclasses.replace(known, state="closed", closed_flow_id=flow_id)

    async def grant(
        self, account_id: str, logins: Sequence[AccountLogin], flow_id: str, at: dt.datetime
    ) -> list[Granted]:
        in_force = []
        for login in logins:
            account, known = self.accounts.get(account_id), self.logins.get(login.login_id)
            if account is None or known is None:
                continue
            revoked_by = "account" if account.state == "closed" else None if known.status == "active" else "login"
            key = (Asset.user(login.login_id), Asset(AssetType.TRADING_ACCOUNT, account_id))
            self.associations[key] = StoredAssociation(login.rights, flow_id, revoked_by)
            if revoked_by is None:
                user = Asset.user(login.login_id)
                in_group = any(
                    source == user and target.type is AssetType.GROUP and association.revoked_by is None
                    for (source, target), association in self.associations.items()
                )
                in_force.append(Granted(login.login_id, in_group))
        return in_force

    async def revoke_account(self, account_id: str, at: dt.datetime) -> list[str]:
        had = sorted(login for (a, login), x in self.access.items() if a == account_id and x.revoked_by is None)
        for (_, target), association in self.associations.items():
            if target == Asset(AssetType.TRADING_ACCOUNT, account_id):
                association.revoked_by = "account"
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

    async def take_pending(self, flow_id: str) -> list[AccountLogin]:
        pending = self.pending.pop(flow_id, None)
        return [] if pending is None else list(pending.logins)

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
