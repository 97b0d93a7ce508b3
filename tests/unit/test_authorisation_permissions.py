"""The permissions a login's roles, and the markets and trading accounts it reaches, give it."""

from __future__ import annotations

from consumers.authorisation.permissions import permissions_for, role_permissions, shorten
from schemas.authorisation import PermissionsGranted
from schemas.types import Role


def test_each_role_and_market_gives_one_permission_sorted() -> None:
    assert permissions_for((Role.ZENITH_ADMINISTRATOR, Role.MOTIF_USER), ("XSX", "ASX")) == (
        "market-data:ASX",
        "market-data:XSX",
        "role:Motif:User",
        "role:Zenith:Administrator",
    )


def test_environment_tag_is_kept_as_part_of_the_market() -> None:
    assert permissions_for((), ("XSX", "XSX[Demo]")) == ("market-data:XSX", "market-data:XSX[Demo]")


def test_no_roles_and_no_markets_give_no_permissions() -> None:
    assert permissions_for((), ()) == ()


def test_each_account_it_may_trade_gives_a_trade_permission_among_the_others() -> None:
    assert permissions_for((Role.MOTIF_USER,), ("XSX",), ("XS:0002", "XS:0001", "XS:0001")) == (
        "market-data:XSX",
        "role:Motif:User",
        "trade:XS:0001",
        "trade:XS:0002",
    )


def test_only_the_roles_are_kept_as_strings() -> None:
    """The roles are the authentication server's; markets and accounts are Authority assets."""
    assert role_permissions((Role.ZENITH_ADMINISTRATOR, Role.MOTIF_USER, Role.MOTIF_USER)) == (
        "role:Motif:User",
        "role:Zenith:Administrator",
    )


def test_every_role_gives_a_permission_the_event_accepts() -> None:
    permissions = permissions_for(tuple(Role), ("XSX[Demo]",))
    assert PermissionsGranted(flow_id="f", login_id="l", permissions=permissions).permissions == permissions


def test_long_reasons_are_shortened_to_fit_the_event() -> None:
    assert shorten("x" * 500) == "x" * 199 + "…"
    assert shorten("short") == "short"
