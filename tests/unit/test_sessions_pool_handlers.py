"""Session pools defined and changed by events, on a FakeUnitOfWork over an in-memory store: what a
definition and a change keep, and how a change reaches the logins in the pool.

The reference is the platform's Session Management: ``Config/Init/sessions-init.ps1`` defines its
pools with ``Pool Set``, and ``Config/Database/Scripts/Paritech.Sessions.sql`` (both plxtra/xosp)
keeps one row per pool name (``sms.PoolCreate`` refuses a name that exists, ``sms.PoolUpdate``
changes only one that does).
"""

from __future__ import annotations

import pytest

from consumers.runtime import DomainError, FakeUnitOfWork, MissingPrerequisite
from consumers.sessions import handlers, pool_handlers
from consumers.sessions.pools import Limits
from consumers.sessions.store import SessionsStore
from schemas import Event
from schemas.session_pools import SessionPoolChanged, SessionPoolDefined
from schemas.sessions import SessionLimitsChanged
from schemas.users import SessionLimits, SessionPolicy, UserCreated, UserDisabled
from tests.support.memory_sessions import DEFAULT, GENERAL, MemorySessions

HANDLERS = {
    SessionPoolDefined: pool_handlers.session_pool_defined,
    SessionPoolChanged: pool_handlers.session_pool_changed,
    UserCreated: handlers.user_created,
    UserDisabled: handlers.user_disabled,
}
GOLD = Limits(max_sessions=3, max_connections=6, grace_period_seconds=30, resource_scoped=False)


async def _handle(event: Event, sessions: MemorySessions) -> FakeUnitOfWork[SessionsStore]:
    unit: FakeUnitOfWork[SessionsStore] = FakeUnitOfWork.handling(event, sessions, service="sessions")
    await HANDLERS[type(event)](event, unit)
    return unit


def defined(pool: str, limits: Limits) -> SessionPoolDefined:
    return SessionPoolDefined(
        pool=pool,
        max_sessions=limits.max_sessions,
        max_connections=limits.max_connections,
        grace_period_seconds=limits.grace_period_seconds,
        resource_scoped=limits.resource_scoped,
    )


def changed(pool: str, limits: Limits) -> SessionPoolChanged:
    return SessionPoolChanged(**defined(pool, limits).model_dump())


async def login_in(sessions: MemorySessions, login_id: str, policy: SessionPolicy) -> None:
    created = UserCreated(
        login_id=login_id, username=login_id, email=f"{login_id}@example.com", display_name="X", session_policy=policy
    )
    await _handle(created, sessions)


def limits_changed(login_id: str, pool: str, limits: Limits) -> SessionLimitsChanged:
    return SessionLimitsChanged(
        login_id=login_id,
        pool=pool,
        max_sessions=limits.max_sessions,
        max_connections=limits.max_connections,
        grace_period_seconds=limits.grace_period_seconds,
        resource_scoped=limits.resource_scoped,
    )


async def test_a_defined_pool_is_kept_with_its_settings_and_reports_nothing() -> None:
    sessions = MemorySessions()
    unit = await _handle(defined("Gold", GOLD), sessions)
    assert unit.events == []
    assert (sessions.pools["Gold"], sessions.pools_changed_at["Gold"]) == (GOLD, unit.cause.time)
    assert (sessions.pools["Default"], sessions.pools["General"]) == (DEFAULT, GENERAL)


async def test_a_pool_defined_without_limits_is_one_without_limits() -> None:
    """sessions-init.ps1: ``Pool Set XOSP Default`` with no ``-Sessions``, ``-Connections`` or ``-Grace``."""
    sessions = MemorySessions()
    await _handle(SessionPoolDefined(pool="Open"), sessions)
    assert sessions.pools["Open"] == Limits(None, None, None, resource_scoped=False)


@pytest.mark.parametrize("pool", ["General", "Gold"])
async def test_a_definition_of_a_pool_that_exists_with_other_settings_is_refused_for_a_person(pool: str) -> None:
    """Paritech.Sessions.sql, ``sms.PoolCreate``: ``IF EXISTS (SELECT 1 FROM sms.Pool WHERE Name =
    _poolName) THEN RETURN FALSE``. The platform's own pools exist from the start."""
    sessions = MemorySessions()
    await _handle(defined("Gold", GOLD), sessions)
    before = dict(sessions.pools)
    with pytest.raises(DomainError) as refused:
        await _handle(defined(pool, Limits(9, 9, 9, resource_scoped=True)), sessions)
    assert not isinstance(refused.value, MissingPrerequisite)
    assert f"session pool {pool!r} is defined already" in str(refused.value)
    assert "publish a SessionPoolChanged" in str(refused.value)
    assert "xbus dlq discard sessions" in str(refused.value)
    assert sessions.pools == before


async def test_a_definition_again_with_the_same_settings_changes_nothing() -> None:
    """sessions-init.ps1's ``Pool Set`` run again defines nothing new: the same definition is no error."""
    sessions = MemorySessions()
    first = await _handle(defined("Gold", GOLD), sessions)
    again = await _handle(defined("Gold", GOLD), sessions)
    general = await _handle(defined("General", GENERAL), sessions)
    assert again.events == general.events == []
    assert sessions.pools_changed_at == {"Gold": first.cause.time}


async def test_a_change_reaches_the_logins_in_the_pool_each_with_its_own_overrides() -> None:
    """sessions-init.ps1: ``Pool Set`` of a pool that exists sets its limits anew; a login's
    limits are its pool's with its own overrides applied."""
    sessions = MemorySessions()
    await _handle(defined("Gold", GOLD), sessions)
    await login_in(sessions, "a", SessionPolicy(pool="Gold"))
    await login_in(sessions, "b", SessionPolicy(pool="Gold", overrides=SessionLimits(max_connections=2)))
    await login_in(sessions, "c", SessionPolicy(pool="General"))
    new = Limits(max_sessions=4, max_connections=8, grace_period_seconds=None, resource_scoped=True)
    unit = await _handle(changed("Gold", new), sessions)
    b_limits = Limits(4, 2, None, resource_scoped=True)
    assert unit.events == [limits_changed("a", "Gold", new), limits_changed("b", "Gold", b_limits)]
    assert [sessions.rows[login].limits for login in "abc"] == [new, b_limits, GENERAL]
    assert [sessions.rows[login].changed_at for login in "ab"] == [unit.cause.time] * 2
    assert (sessions.pools["Gold"], sessions.pools_changed_at["Gold"]) == (new, unit.cause.time)


async def test_a_change_that_leaves_a_logins_limits_as_they_were_says_nothing_of_it() -> None:
    sessions = MemorySessions()
    await _handle(defined("Gold", GOLD), sessions)
    overridden = SessionLimits(max_sessions=1, max_connections=1, grace_period_seconds=1)
    await login_in(sessions, "a", SessionPolicy(pool="Gold", overrides=overridden))
    before = sessions.rows["a"].changed_at
    unit = await _handle(changed("Gold", Limits(7, 7, 7, resource_scoped=False)), sessions)
    assert unit.events == []
    assert (sessions.rows["a"].limits, sessions.rows["a"].changed_at) == (Limits(1, 1, 1, False), before)


async def test_a_change_reaches_a_disabled_login_for_its_enabling_but_is_not_reported_for_it() -> None:
    sessions = MemorySessions()
    await _handle(defined("Gold", GOLD), sessions)
    await login_in(sessions, "a", SessionPolicy(pool="Gold"))
    await _handle(UserDisabled(login_id="a", reason="on leave"), sessions)
    new = Limits(2, 2, 2, resource_scoped=False)
    unit = await _handle(changed("Gold", new), sessions)
    assert unit.events == []
    assert sessions.rows["a"].limits == new


async def test_a_change_of_a_platform_pool_reaches_its_logins() -> None:
    sessions = MemorySessions()
    await login_in(sessions, "a", SessionPolicy(pool="General"))
    new = Limits(2, 5, 4, resource_scoped=True)
    unit = await _handle(changed("General", new), sessions)
    assert unit.events == [limits_changed("a", "General", new)]
    assert sessions.pools["General"] == sessions.rows["a"].limits == new


async def test_a_change_of_a_pool_not_defined_waits_for_its_definition() -> None:
    """Paritech.Sessions.sql, ``sms.PoolUpdate``: it changes a pool that exists, none other. Pool
    events share a topic and key, so the definition comes first unless upstream skipped it."""
    sessions = MemorySessions()
    with pytest.raises(MissingPrerequisite) as waiting:
        await _handle(changed("Gold", GOLD), sessions)
    assert waiting.value.waits_for == "Gold"
    assert "session pool 'Gold' is not defined: a change follows its SessionPoolDefined" in str(waiting.value)
    assert "Gold" not in sessions.pools
