"""What an asset's associations add up to (consumers/authorisation/reach.py): a login's rights per
account through its own association and its groups', and what a change of associations changes
for the logins it reaches. The walk itself is the store's (tests/support/memory_authorisation.py,
the ``reach`` function of migration 0002)."""

from __future__ import annotations

import dataclasses

import pytest

from consumers.authorisation.reach import (
    AccessChange,
    AccountRights,
    Asset,
    Association,
    access_changes,
    account_rights,
    codes,
)
from consumers.authorisation.reach import given_only as through_others_only
from schemas.accounts import AccountLogin
from schemas.groups import AssetType
from schemas.types import AccountRight

VIEW, TRADE, ADMIN = AccountRight.VIEW, AccountRight.TRADE, AccountRight.ADMIN
USER = Asset.user("8e63acec-adc8-4c4f-b9a2-814931cb7c46")
SUPER_USERS = Asset(AssetType.GROUP, "SuperUsers")


def account(code: str) -> Asset:
    return Asset(AssetType.TRADING_ACCOUNT, code)


def test_an_asset_is_named_type_colon_code_and_an_accounts_code_keeps_its_colon() -> None:
    """DOMAIN.md: asset codes ``User:<id>``, ``TradingAccount:XS:0001``, ``Market:XSX``."""
    assert Asset.named("TradingAccount:XS:0001") == Asset(AssetType.TRADING_ACCOUNT, "XS:0001")
    assert str(Asset.named("TradingAccount:XS:0001")) == "TradingAccount:XS:0001"
    assert str(Asset.user("abc")) == "User:abc"
    with pytest.raises(ValueError, match="asset type must be one of"):
        Asset.named("Account:XS:0001")


def test_the_reference_example_reaches_an_account_twice_and_the_rights_add_up() -> None:
    """authority-api, concepts/permissions.md: "`User`:`8e63acec-...` is directly associated with
    `Market`:`XSX`, `TradingAccount`:`XS:XS01`, `Group`:`SuperUsers`. `Group`:`SuperUsers` is
    directly associated with `TradingAccount`:`XS:XS01`, `TradingAccount`:`XS:XS02`" and the
    transitive permissions hold "`TradingAccount`:`XS:XS01` (from the User Association)" and
    "(from the Group Association)". "Applications will need to handle the scenario where multiple
    Associations can be returned for a single Asset, especially in the case where those
    associations describe different levels of access": here they add up, the login's own first."""
    reached = [
        Association(USER, Asset(AssetType.MARKET, "XSX")),
        Association(USER, account("XS:XS01"), (TRADE,)),
        Association(USER, SUPER_USERS),
        Association(SUPER_USERS, account("XS:XS01"), (ADMIN, VIEW)),
        Association(SUPER_USERS, account("XS:XS02"), (VIEW,)),
    ]
    assert account_rights(USER, reached) == {"XS:XS01": (TRADE, VIEW, ADMIN), "XS:XS02": (VIEW,)}
    assert codes(reached, AssetType.MARKET) == ("XSX",)
    assert codes(reached, AssetType.GROUP) == ("SuperUsers",)
    assert through_others_only(USER, reached) == {"XS:XS02"}


def test_a_logins_own_rights_keep_their_order_and_a_groups_follow_in_the_enums() -> None:
    reached = [
        Association(USER, account("XS:1"), (TRADE, VIEW)),
        Association(SUPER_USERS, account("XS:1"), (ADMIN, TRADE)),
        Association(Asset(AssetType.GROUP, "B"), account("XS:1"), (VIEW,)),
    ]
    assert account_rights(USER, reached) == {"XS:1": (TRADE, VIEW, ADMIN)}
    only_groups = [Association(SUPER_USERS, account("XS:1"), (ADMIN, TRADE, VIEW))]
    assert account_rights(USER, only_groups) == {"XS:1": (VIEW, TRADE, ADMIN)}


def test_markets_and_groups_reached_give_no_account_rights() -> None:
    reached = [Association(USER, SUPER_USERS), Association(SUPER_USERS, Asset(AssetType.MARKET, "XSX"))]
    assert account_rights(USER, reached) == {}
    assert through_others_only(USER, reached) == set()
    assert codes(reached, AssetType.TRADING_ACCOUNT) == ()


def test_a_change_announces_new_and_different_rights_per_account_and_who_lost_them() -> None:
    before: dict[str, AccountRights] = {"a": {"XS:1": (VIEW,), "XS:2": (VIEW,)}, "b": {"XS:1": (VIEW,)}}
    after: dict[str, AccountRights] = {
        "a": {"XS:1": (VIEW, TRADE), "XS:3": (ADMIN,)},
        "b": {"XS:1": (VIEW,)},
        "c": {"XS:2": (VIEW,)},
    }
    assert access_changes(before, after) == [
        AccessChange("XS:1", (AccountLogin(login_id="a", rights=(VIEW, TRADE)),), ()),
        AccessChange("XS:2", (AccountLogin(login_id="c", rights=(VIEW,)),), ("a",)),
        AccessChange("XS:3", (AccountLogin(login_id="a", rights=(ADMIN,)),), ()),
    ]


def test_no_change_announces_nothing() -> None:
    same = {"a": {"XS:1": (VIEW,)}}
    assert access_changes(same, same) == []
    assert access_changes({}, {}) == []
    assert access_changes({"gone": {"XS:1": (VIEW,)}}, {}) == [AccessChange("XS:1", (), ("gone",))]


def test_what_the_rules_hand_on_cannot_change_under_the_events_built_from_it() -> None:
    association = Association(USER, account("XS:1"), (VIEW,))
    change = AccessChange("XS:1", (AccountLogin(login_id="a", rights=(VIEW,)),), ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        association.rights = (TRADE,)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.revoked = ("a",)  # type: ignore[misc]
