"""Session Management on the real stack: limits assigned, refused, ended and restored."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from consumers.sessions import queries
from consumers.sessions.pools import Limits
from consumers.sessions.service import SERVICE
from producers import Outgoing
from schemas.provisioning import StepFailed
from schemas.sessions import SessionLimitsAssigned, SessionsEnded
from schemas.users import SessionLimits, SessionPolicy, UserCreated, UserDisabled, UserEnabled, UserUpdated
from tests.conftest import Stack
from tests.support.service_under_test import ServiceUnderTest, module_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sessions(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await module_settings(stack)) as service:
        yield service


def new_login() -> str:
    return str(uuid.uuid4())


def created(login: str, policy: SessionPolicy | None = None) -> UserCreated:
    return UserCreated(
        login_id=login, username=login, email=f"{login}@example.com", display_name="Someone", session_policy=policy
    )


def assigned(flow_id: str, login: str, pool: str, limits: Limits) -> SessionLimitsAssigned:
    return SessionLimitsAssigned(
        flow_id=flow_id,
        login_id=login,
        pool=pool,
        max_sessions=limits.max_sessions,
        max_connections=limits.max_connections,
        grace_period_seconds=limits.grace_period_seconds,
    )


async def test_user_with_policy_gets_pool_limits_with_overrides(sessions: ServiceUnderTest) -> None:
    login = new_login()
    at = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)
    policy = SessionPolicy(pool="General", overrides=SessionLimits(max_sessions=3))
    handled = await sessions.handle(Outgoing(created(login, policy), time=at))

    assert handled.follow_ups == [assigned(handled.flow_id, login, "General", Limits(3, 50, 120))]
    stored = await queries.limits(sessions.db, login)
    assert stored is not None
    assert (stored.pool, stored.overrides, stored.limits) == ("General", policy.overrides, Limits(3, 50, 120))
    assert stored.in_force
    assert stored.changed_at == at  # the event's time, not the clock


async def test_user_without_policy_gets_no_limits(sessions: ServiceUnderTest) -> None:
    login = new_login()
    handled = await sessions.handle(created(login))

    assert handled.follow_ups == []
    assert await queries.limits(sessions.db, login) is None


async def test_unknown_pool_fails_the_step(sessions: ServiceUnderTest) -> None:
    login = new_login()
    handled = await sessions.handle(created(login, SessionPolicy(pool="Gold")))

    [failed] = handled.follow_ups
    assert isinstance(failed, StepFailed)
    assert (failed.flow_id, failed.service, failed.step) == (handled.flow_id, "sessions", "sessions.limits")
    assert "'Gold' is unknown" in failed.reason and "Default, General" in failed.reason
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and stored.pool == "Gold" and stored.limits is None and not stored.in_force


async def test_disable_ends_sessions_even_without_limits(sessions: ServiceUnderTest) -> None:
    login = new_login()
    handled = await sessions.handle(UserDisabled(login_id=login, reason="left the firm"))

    assert handled.follow_ups == [SessionsEnded(flow_id=handled.flow_id, login_id=login, reason="left the firm")]


async def test_disable_ends_limits_and_enable_restores_them(sessions: ServiceUnderTest) -> None:
    login = new_login()
    policy = SessionPolicy(pool="Default", overrides=SessionLimits(grace_period_seconds=0))
    await sessions.handle(created(login, policy))

    disabled = await sessions.handle(UserDisabled(login_id=login, reason="audit"))
    assert disabled.follow_ups == [SessionsEnded(flow_id=disabled.flow_id, login_id=login, reason="audit")]
    ended = await queries.limits(sessions.db, login)
    assert ended is not None and ended.disabled and not ended.in_force
    assert (ended.pool, ended.ended_reason) == ("Default", "audit")  # the policy is kept

    enabled = await sessions.handle(UserEnabled(login_id=login))
    assert enabled.follow_ups == [assigned(enabled.flow_id, login, "Default", Limits(5, 20, 0))]
    restored = await queries.limits(sessions.db, login)
    assert restored is not None and restored.in_force and restored.sessions_ended_at is None


async def test_enable_without_policy_reports_nothing(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(created(login), UserDisabled(login_id=login, reason="audit"))

    assert (await sessions.handle(UserEnabled(login_id=login))).follow_ups == []


async def test_new_policy_reassigns_the_limits(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(created(login))

    updated = await sessions.handle(UserUpdated(login_id=login, session_policy=SessionPolicy(pool="Default")))
    assert updated.follow_ups == [assigned(updated.flow_id, login, "Default", Limits(5, 20, 60))]


async def test_update_to_an_unknown_pool_keeps_the_limits_in_force(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(created(login, SessionPolicy(pool="General")))

    updated = await sessions.handle(UserUpdated(login_id=login, session_policy=SessionPolicy(pool="Gold")))
    assert [type(event) for event in updated.follow_ups] == [StepFailed]
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.pool, stored.limits) == ("General", Limits(10, 50, 120))


async def test_policy_given_while_disabled_comes_into_force_on_enable(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(created(login), UserDisabled(login_id=login, reason="audit"))

    updated = await sessions.handle(UserUpdated(login_id=login, session_policy=SessionPolicy(pool="General")))
    assert updated.follow_ups == []
    enabled = await sessions.handle(UserEnabled(login_id=login))
    assert enabled.follow_ups == [assigned(enabled.flow_id, login, "General", Limits(10, 50, 120))]
