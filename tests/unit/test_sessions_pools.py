"""The limits in force: the pool's settings with the login's overrides applied.

The pools are the platform's, from the reference deployment's ``Config/Init/sessions-init.ps1``
(plxtra/xosp)::

    & dotnet $SessionsControl Pool Set XOSP Default | Out-Null
    & dotnet $SessionsControl Pool Set XOSP General -Sessions 1 -Connections 5 -Grace '00:00:04' -Resource | Out-Null
"""

from __future__ import annotations

from consumers.sessions.pools import Limits, limits_in_force
from schemas.users import SessionLimits
from tests.support.memory_sessions import DEFAULT, GENERAL


def test_a_login_without_overrides_gets_its_pools_settings_as_they_are() -> None:
    """sessions-init.ps1: ``General -Sessions 1 -Connections 5 -Grace '00:00:04' -Resource``."""
    assert limits_in_force(GENERAL, SessionLimits()) == GENERAL


def test_the_default_pool_sets_no_limit_and_an_override_sets_only_its_own() -> None:
    """sessions-init.ps1: ``Pool Set XOSP Default`` names no limit: a login in it has none but
    those it overrides."""
    assert limits_in_force(DEFAULT, SessionLimits()) == DEFAULT
    assert limits_in_force(DEFAULT, SessionLimits(max_sessions=3)) == Limits(3, None, None, resource_scoped=False)


def test_each_override_replaces_only_its_own_limit_and_the_scope_stays_the_pools() -> None:
    overrides = SessionLimits(max_connections=7)
    assert limits_in_force(GENERAL, overrides) == Limits(1, 7, 4, resource_scoped=True)
    overrides = SessionLimits(max_sessions=2, grace_period_seconds=30)
    assert limits_in_force(GENERAL, overrides) == Limits(2, 5, 30, resource_scoped=True)


def test_an_override_of_zero_grace_is_kept() -> None:
    """An override of 0 s is an override (no grace), not an absent one."""
    assert limits_in_force(GENERAL, SessionLimits(grace_period_seconds=0)) == Limits(1, 5, 0, resource_scoped=True)
