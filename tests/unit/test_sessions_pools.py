"""The limits in force: the pool's defaults with the login's overrides applied."""

from __future__ import annotations

import pytest

from consumers.sessions.pools import Limits, UnknownPool, limits_in_force
from schemas.users import SessionLimits, SessionPolicy


def test_a_policy_without_overrides_gets_the_pool_defaults() -> None:
    assert limits_in_force(SessionPolicy(pool="Default")) == Limits(5, 20, 60)
    assert limits_in_force(SessionPolicy(pool="General")) == Limits(10, 50, 120)


def test_each_override_replaces_only_its_own_limit() -> None:
    policy = SessionPolicy(pool="General", overrides=SessionLimits(max_connections=7))
    assert limits_in_force(policy) == Limits(max_sessions=10, max_connections=7, grace_period_seconds=120)


def test_an_override_of_zero_grace_is_kept() -> None:
    policy = SessionPolicy(pool="Default", overrides=SessionLimits(max_sessions=1, grace_period_seconds=0))
    assert limits_in_force(policy) == Limits(max_sessions=1, max_connections=20, grace_period_seconds=0)


def test_an_unknown_pool_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownPool, match=r"'Gold' is unknown; known pools: Default, General"):
        limits_in_force(SessionPolicy(pool="Gold"))


def test_pool_names_are_matched_exactly() -> None:
    with pytest.raises(UnknownPool):
        limits_in_force(SessionPolicy(pool="default"))
