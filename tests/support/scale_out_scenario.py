"""The scale-out test's scenario and what authorisation and the OMS must hold after it.

Provisioning first (xbus/scenario.py: operators, users, accounts, shuffled across topics), then
disables of some logins and closures of some accounts, published once the first part is applied
(so that the expected inbox counts of each phase can be waited for). Everything expected is
computed here from the events, never written out.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from producers import Outgoing
from schemas.accounts import TradingAccountClosed, TradingAccountOpened
from schemas.operators import OperatorRegistered
from schemas.types import AccountRight, OperatorSystem
from schemas.users import UserCreated, UserDisabled
from xbus.scenario import Scenario, build_scenario, seeded

#: (account, login, rights sorted, revoked_by) of authorisation's User -> TradingAccount associations.
Access = tuple[str, str, tuple[str, ...], str | None]


@dataclass(frozen=True)
class ScaleOutScenario:
    provisioning: Scenario
    disables: tuple[Outgoing, ...]
    closures: tuple[Outgoing, ...]

    @property
    def users(self) -> list[UserCreated]:
        return [o.event for o in self.provisioning.users if isinstance(o.event, UserCreated)]

    @property
    def accounts(self) -> list[TradingAccountOpened]:
        return [o.event for o in self.provisioning.accounts if isinstance(o.event, TradingAccountOpened)]

    @property
    def operators(self) -> list[OperatorRegistered]:
        return [o.event for o in self.provisioning.operators if isinstance(o.event, OperatorRegistered)]

    @property
    def disabled(self) -> set[str]:
        return {o.event.aggregate_id for o in self.disables}

    @property
    def closed(self) -> set[str]:
        return {o.event.aggregate_id for o in self.closures}

    # --- what each service applies (inbox rows) and emits (outbox rows by type) --------------

    def authorisation_applies(self, *, changes: bool) -> int:
        """UserCreated, TradingAccountOpened; then UserDisabled, and the registry's
        RegistryAccountStateChanged(closed) and the OMS's OmsAccountStateChanged(closed) of each
        closure (read in every deployment, applied only without the registry)."""
        first = len(self.users) + len(self.accounts)
        return first + (len(self.disables) + 2 * len(self.closures) if changes else 0)

    def oms_applies(self, *, changes: bool) -> int:
        """OperatorRegistered, TradingAccountOpened, authorisation's AccountAccessGranted (one per
        account) and PermissionsGranted (one per login); then AccessRevoked per disable and per
        closure, the registry's closure, and the TradingAccountClosed itself (which the OMS reads
        in every deployment and applies only without the registry)."""
        first = len(self.operators) + 2 * len(self.accounts) + len(self.users)
        return first + (len(self.disables) + 3 * len(self.closures) if changes else 0)

    def authorisation_emits(self) -> Counter[str]:
        """Follow-ups by type; ``StepWaiting`` left out: how many associations waited for a login
        depends on the order the topics were read in."""
        return Counter(
            {
                "xosp.permissions.granted.v1": len(self.users),
                "xosp.account_access.granted.v1": len(self.accounts),
                "xosp.access.revoked.v1": len(self.disables) + len(self.closures),
            }
        )

    def oms_emits(self) -> Counter[str]:
        return Counter(
            {
                "xosp.oms_operator.registered.v1": sum(OperatorSystem.OMS in o.systems for o in self.operators),
                "xosp.oms_account.provisioned.v1": len(self.accounts),
                "xosp.oms_account.state_changed.v1": len(self.closures),
            }
        )

    # --- authorisation's tables ------------------------------------------------------------

    def authorisation_logins(self) -> set[tuple[str, str]]:
        return {(u.login_id, "disabled" if u.login_id in self.disabled else "active") for u in self.users}

    def authorisation_accounts(self) -> set[tuple[str, str]]:
        return {(a.account_id, "closed" if a.account_id in self.closed else "open") for a in self.accounts}

    def authorisation_access(self) -> set[Access]:
        """Every association stays on record; a close revokes it for good, a disable until an enable."""
        return {
            (a.account_id, login.login_id, _rights(login.rights), self._revoked_by(a.account_id, login.login_id))
            for a in self.accounts
            for login in a.logins
        }

    def authorisation_permissions(self) -> set[tuple[str, str]]:
        """(login, permission) in force: an active login's roles and markets, and trade:<account>
        on each open account it has the trade right on."""
        active = [u for u in self.users if u.login_id not in self.disabled]
        own = {(u.login_id, f"role:{role}") for u in active for role in u.roles}
        own |= {(u.login_id, f"market-data:{market}") for u in active for market in u.markets}
        trade = {
            (login.login_id, f"trade:{a.account_id}")
            for a in self.accounts
            for login in a.logins
            if AccountRight.TRADE in login.rights and self._revoked_by(a.account_id, login.login_id) is None
        }
        return own | trade

    # --- the OMS's tables ------------------------------------------------------------------

    def oms_operators(self) -> set[tuple[str, str]]:
        return {(o.operator_id, "registered") for o in self.operators if OperatorSystem.OMS in o.systems}

    def oms_accounts(self) -> set[tuple[str, str, str]]:
        return {
            (a.account_id, "closed" if a.account_id in self.closed else "active", a.default_currency)
            for a in self.accounts
        }

    def oms_rights(self) -> set[tuple[str, str, tuple[str, ...]]]:
        """Logins' rights per account as the OMS vets orders: granted, minus what was revoked."""
        return {
            (a.account_id, login.login_id, _rights(login.rights))
            for a in self.accounts
            for login in a.logins
            if self._revoked_by(a.account_id, login.login_id) is None
        }

    def _revoked_by(self, account_id: str, login_id: str) -> str | None:
        if account_id in self.closed:
            return "account"
        return "login" if login_id in self.disabled else None


def build_scale_out(
    operators: int, users: int, accounts: int, disables: int, closures: int, seed: int
) -> ScaleOutScenario:
    """The provisioning scenario, then ``disables`` of its logins and ``closures`` of its accounts
    (chosen by the seed; an account holding no cash, so the registry closes it)."""
    provisioning = build_scenario(operators=operators, users=users, accounts=accounts, seed=seed)
    chance = random.Random(seed)
    logins = sorted(o.event.aggregate_id for o in provisioning.users)
    account_ids = sorted(o.event.aggregate_id for o in provisioning.accounts)
    return ScaleOutScenario(
        provisioning,
        tuple(
            seeded(UserDisabled(login_id=login, reason="left the firm"), seed)
            for login in chance.sample(logins, disables)
        ),
        tuple(
            seeded(TradingAccountClosed(account_id=account, reason="closed by the investor"), seed)
            for account in chance.sample(account_ids, closures)
        ),
    )


def _rights(rights: tuple[AccountRight, ...]) -> tuple[str, ...]:
    return tuple(sorted(str(right) for right in rights))
