"""What an asset reaches through its associations, and what a change of them changes for logins:
pure, so that the rules are tested on their own (the walk itself, over the associations in force,
is the store's).

The platform's Authority service answers "what may this login do" by following associations
transitively: ``User`` → ``Group`` → ``TradingAccount``. It may return several associations to
one asset (the login's own and a group's), and the application decides what they add up to. Here
a login's rights on an account are the union of every reached association's rights there: its
own association's rights first, as they were granted, then those only a group gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.accounts import AccountLogin
from schemas.groups import AssetType, split_asset
from schemas.types import AccountRight

#: A login's rights on each trading account it reaches, by account id.
AccountRights = Mapping[str, tuple[AccountRight, ...]]


@dataclass(frozen=True, order=True)
class Asset:
    """One asset: a type and a code, written ``Type:Code`` as the platform writes it."""

    type: AssetType
    code: str

    @classmethod
    def named(cls, name: str) -> Asset:
        """``TradingAccount:XS:0001`` → the asset (ValueError for a name that is not one)."""
        return cls(*split_asset(name))

    @classmethod
    def user(cls, login_id: str) -> Asset:
        return cls(AssetType.USER, login_id)

    def __str__(self) -> str:
        return f"{self.type}:{self.code}"


@dataclass(frozen=True)
class Association:
    """An association in force from ``source`` to ``target``; ``rights`` only to a trading account."""

    source: Asset
    target: Asset
    rights: tuple[AccountRight, ...] = ()


def account_rights(root: Asset, reached: Iterable[Association]) -> dict[str, tuple[AccountRight, ...]]:
    """The rights ``root`` has on each account ``reached`` leads to, by account id: its own
    association's first, as granted, then those only other assets (its groups) give, in the
    order view, trade, admin."""
    own: dict[str, tuple[AccountRight, ...]] = {}
    given: dict[str, set[AccountRight]] = {}
    for association in reached:
        if association.target.type is not AssetType.TRADING_ACCOUNT:
            continue
        if association.source == root:
            own[association.target.code] = association.rights
        else:
            given.setdefault(association.target.code, set()).update(association.rights)
    rights = {}
    for account_id in sorted(own.keys() | given.keys()):
        first = own.get(account_id, ())
        extra = given.get(account_id, set()) - set(first)
        rights[account_id] = first + tuple(right for right in AccountRight if right in extra)
    return rights


def given_only(root: Asset, reached: Iterable[Association]) -> set[str]:
    """The accounts ``root`` reaches through other assets only, none of its own associations."""
    accounts = [a for a in reached if a.target.type is AssetType.TRADING_ACCOUNT]
    return {a.target.code for a in accounts} - {a.target.code for a in accounts if a.source == root}


def codes(reached: Iterable[Association], kind: AssetType) -> tuple[str, ...]:
    """The codes of the assets of type ``kind`` that ``reached`` leads to, sorted, each once."""
    return tuple(sorted({association.target.code for association in reached if association.target.type is kind}))


@dataclass(frozen=True)
class AccessChange:
    """What a change of associations changed on one account."""

    account_id: str
    #: Logins whose rights there are new or different, with their rights now.
    granted: tuple[AccountLogin, ...]
    #: Logins that reach it no longer.
    revoked: tuple[str, ...]


def access_changes(before: Mapping[str, AccountRights], after: Mapping[str, AccountRights]) -> list[AccessChange]:
    """Per account (by id), the logins (by id) whose rights ``before`` and ``after`` a change differ.

    ``before`` and ``after`` give each login's rights per account; a login missing from one
    reaches nothing there.
    """
    logins = sorted(before.keys() | after.keys())
    accounts = sorted({account for rights in (*before.values(), *after.values()) for account in rights})
    changes = []
    for account_id in accounts:
        granted, revoked = [], []
        for login_id in logins:
            was = before.get(login_id, {}).get(account_id)
            now = after.get(login_id, {}).get(account_id)
            if now is None and was is not None:
                revoked.append(login_id)
            elif now is not None and now != was:
                granted.append(AccountLogin(login_id=login_id, rights=now))
        if granted or revoked:
            changes.append(AccessChange(account_id, tuple(granted), tuple(revoked)))
    return changes
