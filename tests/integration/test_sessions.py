"""Session Management on the real stack: limits assigned, refused, ended and restored; a login
created twice, updated before its creation or after its deletion."""

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
from schemas.users import (
    SessionLimits,
    SessionPolicy,
    UserCreated,
    UserDeleted,
    UserDisabled,
    UserEnabled,
    UserUpdated,
)
from tests.conftest import Stack
from tests.support.service_under_test import ServiceUnderTest, module_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

GENERAL = Limits(10, 50, 120)


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


async def test_user_without_policy_gets_no_limits_but_is_known(sessions: ServiceUnderTest) -> None:
    login = new_login()
    handled = await sessions.handle(created(login))

    assert handled.follow_ups == []
    stored = await queries.limits(sessions.db, login)
    assert stored is not None
    assert (stored.status, stored.pool, stored.limits, stored.in_force) == ("created", None, None, False)


async def test_second_user_created_fails_its_step_and_keeps_the_first_policy(sessions: ServiceUnderTest) -> None:
    login = new_login()
    at = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)
    await sessions.handle(Outgoing(created(login, SessionPolicy(pool="General")), time=at))
    handled = await sessions.handle(created(login, SessionPolicy(pool="Default")))

    [failed] = handled.follow_ups
    assert isinstance(failed, StepFailed)
    assert (failed.flow_id, failed.service, failed.step) == (handled.flow_id, "sessions", "sessions.limits")
    assert f"login {login} already exists (created)" in failed.reason
    assert not await sessions.dead_lettered(handled.flow_id)
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.pool, stored.limits) == ("General", Limits(10, 50, 120))
    assert stored.changed_at == at and stored.in_force


async def test_update_of_a_login_never_created_waits_for_its_create(sessions: ServiceUnderTest) -> None:
    login = new_login()
    handled = await sessions.handle(UserUpdated(login_id=login, session_policy=SessionPolicy(pool="General")))

    assert handled.follow_ups == []
    assert not await sessions.dead_lettered(handled.flow_id)  # see test_pending_prerequisites.py
    assert await sessions.db.fetchval("select 1 from xbus_pending where event_id = $1", handled.flow_id)
    assert await queries.limits(sessions.db, login) is None

    await sessions.handle(created(login))  # the update is applied right after its creation
    assert not await sessions.db.fetchval("select 1 from xbus_pending where event_id = $1", handled.flow_id)
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.status, stored.pool, stored.limits) == ("created", "General", GENERAL)


async def test_a_login_disabled_before_its_creation_is_not_created_until_it_is(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(UserDisabled(login_id=login, reason="on leave"))
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.status, stored.disabled) == ("not_created", True)

    handled = await sessions.handle(created(login, SessionPolicy(pool="General")))
    assert handled.follow_ups == []  # created disabled: the limits come into force when it is enabled
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.status, stored.limits, stored.disabled) == ("created", GENERAL, True)


async def test_deleted_login_is_kept_marked_deleted_and_an_update_is_dead_lettered(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(created(login, SessionPolicy(pool="General")))
    at = dt.datetime(2025, 3, 2, 10, 0, tzinfo=dt.UTC)
    deleted = await sessions.handle(Outgoing(UserDeleted(login_id=login, reason="left the firm"), time=at))
    assert deleted.follow_ups == []
    stored = await queries.limits(sessions.db, login)
    assert stored is not None
    assert (stored.status, stored.pool, stored.overrides, stored.limits) == ("deleted", None, SessionLimits(), None)
    assert stored.changed_at == at and not stored.in_force

    updated = await sessions.handle(UserUpdated(login_id=login, session_policy=SessionPolicy(pool="Default")))
    assert updated.follow_ups == []
    assert await sessions.dead_lettered(updated.flow_id)
    reason = await sessions.db.fetchval(
        "select error_message from xbus_dead_letters where event_id = $1", updated.flow_id
    )
    assert f"login {login} is deleted" in reason and "xbus dlq discard sessions" in reason
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.status, stored.pool, stored.limits) == ("deleted", None, None)


async def test_deleting_a_login_never_created_changes_nothing(sessions: ServiceUnderTest) -> None:
    login = new_login()
    handled = await sessions.handle(UserDeleted(login_id=login))

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
