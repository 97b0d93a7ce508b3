"""Session Management's rules, on a FakeUnitOfWork over an in-memory store: the limits a login's
policy puts in force, when they are reported, and what disabling, enabling and deleting do (the
arithmetic of limits alone is in test_sessions_pools.py; the SQL is proven on the real stack)."""

from __future__ import annotations

import pytest

from consumers.runtime import DomainError, FakeUnitOfWork, MissingPrerequisite
from consumers.sessions import handlers
from consumers.sessions.pools import Limits
from consumers.sessions.store import SessionsStore
from schemas import Event
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
from tests.support.memory_sessions import MemorySessions

HANDLERS = {
    UserCreated: handlers.user_created,
    UserUpdated: handlers.user_updated,
    UserDisabled: handlers.user_disabled,
    UserEnabled: handlers.user_enabled,
    UserDeleted: handlers.user_deleted,
}
DEFAULT = Limits(max_sessions=5, max_connections=20, grace_period_seconds=60)
GENERAL = Limits(max_sessions=10, max_connections=50, grace_period_seconds=120)


async def _handle(event: Event, sessions: MemorySessions) -> FakeUnitOfWork[SessionsStore]:
    unit: FakeUnitOfWork[SessionsStore] = FakeUnitOfWork.handling(event, sessions, service="sessions")
    await HANDLERS[type(event)](event, unit)
    return unit


def created(policy: SessionPolicy | None) -> UserCreated:
    return UserCreated(
        login_id="pk-1", username="pk", email="pk@example.com", display_name="P K", session_policy=policy
    )


def assigned(unit: FakeUnitOfWork[SessionsStore], pool: str, limits: Limits) -> SessionLimitsAssigned:
    return SessionLimitsAssigned(
        flow_id=unit.cause.id,
        login_id="pk-1",
        pool=pool,
        max_sessions=limits.max_sessions,
        max_connections=limits.max_connections,
        grace_period_seconds=limits.grace_period_seconds,
    )


async def test_a_login_without_a_policy_gets_no_limits_and_no_step_but_is_known() -> None:
    sessions = MemorySessions()
    unit = await _handle(created(None), sessions)
    assert unit.events == []
    row = sessions.rows["pk-1"]  # known, so that an update giving it a policy later is applied
    assert (row.status, row.policy, row.limits, row.changed_at) == ("created", None, None, unit.cause.time)


async def test_a_policy_given_by_an_update_to_a_login_created_without_one_is_put_in_force() -> None:
    sessions = MemorySessions()
    await _handle(created(None), sessions)
    unit = await _handle(UserUpdated(login_id="pk-1", session_policy=SessionPolicy(pool="General")), sessions)
    assert unit.events == [assigned(unit, "General", GENERAL)]
    assert (sessions.rows["pk-1"].policy, sessions.rows["pk-1"].limits) == (SessionPolicy(pool="General"), GENERAL)


@pytest.mark.parametrize("first", [SessionPolicy(), None])
@pytest.mark.parametrize("again", [SessionPolicy(pool="General"), SessionPolicy(pool="Gold"), None])
async def test_a_login_created_twice_fails_the_step_and_keeps_the_first_policy(
    first: SessionPolicy | None, again: SessionPolicy | None
) -> None:
    sessions = MemorySessions()
    first_unit = await _handle(created(first), sessions)
    unit = await _handle(created(again), sessions)
    assert unit.events == [
        StepFailed(
            flow_id=unit.cause.id,
            service="sessions",
            step="sessions.limits",
            reason="login pk-1 already exists (created); a login id is created once, "
            "change an existing login with UserUpdated",
        )
    ]
    row = sessions.rows["pk-1"]
    kept = None if first is None else DEFAULT
    assert (row.status, row.policy, row.limits, row.changed_at) == ("created", first, kept, first_unit.cause.time)


async def test_a_deleted_login_created_again_fails_the_step_and_stays_deleted() -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy()), sessions)
    deleted = await _handle(UserDeleted(login_id="pk-1"), sessions)
    unit = await _handle(created(SessionPolicy(pool="General")), sessions)
    [failed] = unit.events
    assert isinstance(failed, StepFailed) and failed.step == "sessions.limits"
    assert "login pk-1 already exists (deleted)" in failed.reason
    row = sessions.rows["pk-1"]
    assert (row.status, row.policy, row.limits, row.changed_at) == ("deleted", None, None, deleted.cause.time)


@pytest.mark.parametrize("disabled_first", [False, True])
async def test_an_update_of_a_login_never_created_waits_for_its_creation(disabled_first: bool) -> None:
    sessions = MemorySessions()
    if disabled_first:  # a disable of a login never created is answered, but it does not create it
        await _handle(UserDisabled(login_id="pk-1", reason="on leave"), sessions)
    before = {login: (row.policy, row.limits) for login, row in sessions.rows.items()}
    with pytest.raises(MissingPrerequisite) as waiting:
        await _handle(UserUpdated(login_id="pk-1", session_policy=SessionPolicy(pool="General")), sessions)
    assert waiting.value.waits_for == "pk-1"
    assert "login pk-1 is unknown: an update follows its UserCreated" in str(waiting.value)
    assert "publish the login's UserCreated" in str(waiting.value)
    assert "xbus dlq redrive sessions" in str(waiting.value)
    assert {login: (row.policy, row.limits) for login, row in sessions.rows.items()} == before


async def test_an_update_of_a_deleted_login_is_refused_for_a_person_and_recreates_nothing() -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy()), sessions)
    await _handle(UserDeleted(login_id="pk-1"), sessions)
    with pytest.raises(DomainError, match="login pk-1 is deleted: no update follows its UserDeleted") as refused:
        await _handle(UserUpdated(login_id="pk-1", session_policy=SessionPolicy(pool="General")), sessions)
    assert not isinstance(refused.value, MissingPrerequisite)
    assert "xbus dlq discard sessions" in str(refused.value)
    row = sessions.rows["pk-1"]
    assert (row.status, row.policy, row.limits) == ("deleted", None, None)


async def test_a_policy_puts_its_pools_limits_with_the_overrides_in_force_and_reports_them() -> None:
    sessions = MemorySessions()
    policy = SessionPolicy(pool="Default", overrides=SessionLimits(max_sessions=2, grace_period_seconds=0))
    unit = await _handle(created(policy), sessions)
    limits = Limits(max_sessions=2, max_connections=20, grace_period_seconds=0)
    assert unit.events == [assigned(unit, "Default", limits)]
    row = sessions.rows["pk-1"]
    assert (row.policy, row.limits, row.changed_at) == (policy, limits, unit.cause.time)


async def test_an_unknown_pool_fails_the_step_and_keeps_the_policy_for_a_later_enabling() -> None:
    sessions = MemorySessions()
    unit = await _handle(created(SessionPolicy(pool="Gold")), sessions)
    [failed] = unit.events
    assert isinstance(failed, StepFailed)
    assert (failed.step, failed.flow_id) == ("sessions.limits", unit.cause.id)
    assert "session pool 'Gold' is unknown" in failed.reason
    assert (sessions.rows["pk-1"].policy, sessions.rows["pk-1"].limits) == (SessionPolicy(pool="Gold"), None)


async def test_a_policy_given_to_a_disabled_login_is_kept_and_not_put_in_force() -> None:
    sessions = MemorySessions()
    await _handle(UserDisabled(login_id="pk-1", reason="on leave"), sessions)
    unit = await _handle(created(SessionPolicy(pool="General")), sessions)
    assert unit.events == []
    assert (sessions.rows["pk-1"].limits, sessions.rows["pk-1"].disabled) == (GENERAL, True)


async def test_an_update_without_a_policy_leaves_the_limits_as_they_are() -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy()), sessions)
    unit = await _handle(UserUpdated(login_id="pk-1", display_name="Pat"), sessions)
    assert unit.events == []
    assert sessions.rows["pk-1"].limits == DEFAULT


async def test_an_update_to_another_pool_replaces_the_limits_and_reports_them() -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy()), sessions)
    unit = await _handle(UserUpdated(login_id="pk-1", session_policy=SessionPolicy(pool="General")), sessions)
    assert unit.events == [assigned(unit, "General", GENERAL)]
    assert sessions.rows["pk-1"].limits == GENERAL


async def test_a_refused_update_leaves_the_old_limits_in_force() -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy()), sessions)
    unit = await _handle(UserUpdated(login_id="pk-1", session_policy=SessionPolicy(pool="Gold")), sessions)
    assert [type(e) for e in unit.events] == [StepFailed]
    assert (sessions.rows["pk-1"].policy, sessions.rows["pk-1"].limits) == (SessionPolicy(), DEFAULT)


async def test_an_update_of_a_disabled_login_is_kept_for_its_enabling_and_not_reported() -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy()), sessions)
    await _handle(UserDisabled(login_id="pk-1", reason="on leave"), sessions)
    unit = await _handle(UserUpdated(login_id="pk-1", session_policy=SessionPolicy(pool="General")), sessions)
    assert unit.events == []
    assert sessions.rows["pk-1"].limits == GENERAL


@pytest.mark.parametrize("known", [True, False])
async def test_disabling_ends_the_sessions_and_reports_it_even_for_a_login_never_seen(known: bool) -> None:
    sessions = MemorySessions()
    if known:
        await _handle(created(SessionPolicy()), sessions)
    unit = await _handle(UserDisabled(login_id="pk-1", reason="left the firm"), sessions)
    assert unit.events == [SessionsEnded(flow_id=unit.cause.id, login_id="pk-1", reason="left the firm")]
    assert (sessions.rows["pk-1"].disabled, sessions.rows["pk-1"].ended_reason) == (True, "left the firm")


async def test_enabling_puts_the_kept_policy_in_force_again_and_reports_it() -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy(pool="General")), sessions)
    await _handle(UserDisabled(login_id="pk-1", reason="on leave"), sessions)
    unit = await _handle(UserEnabled(login_id="pk-1"), sessions)
    assert unit.events == [assigned(unit, "General", GENERAL)]
    assert (sessions.rows["pk-1"].disabled, sessions.rows["pk-1"].ended_reason) == (False, None)


async def test_enabling_a_login_without_a_policy_reports_nothing() -> None:
    sessions = MemorySessions()
    await _handle(UserDisabled(login_id="pk-1", reason="on leave"), sessions)
    unit = await _handle(UserEnabled(login_id="pk-1"), sessions)
    assert unit.events == []
    assert sessions.rows["pk-1"].disabled is False
    assert (await _handle(UserEnabled(login_id="pk-2"), sessions)).events == []


async def test_enabling_a_login_whose_kept_policy_is_refused_fails_the_step() -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy(pool="Gold")), sessions)
    await _handle(UserDisabled(login_id="pk-1", reason="on leave"), sessions)
    unit = await _handle(UserEnabled(login_id="pk-1"), sessions)
    [failed] = unit.events
    assert isinstance(failed, StepFailed) and failed.step == "sessions.limits"


@pytest.mark.parametrize("disabled", [False, True])
async def test_a_deleted_login_loses_its_policy_and_limits_and_is_remembered_deleted(disabled: bool) -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy()), sessions)
    if disabled:
        await _handle(UserDisabled(login_id="pk-1", reason="on leave"), sessions)
    unit = await _handle(UserDeleted(login_id="pk-1"), sessions)
    assert unit.events == []
    row = sessions.rows["pk-1"]
    assert (row.status, row.policy, row.limits, row.changed_at) == ("deleted", None, None, unit.cause.time)


async def test_enabling_a_deleted_login_puts_nothing_in_force() -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy()), sessions)
    await _handle(UserDisabled(login_id="pk-1", reason="on leave"), sessions)
    await _handle(UserDeleted(login_id="pk-1"), sessions)
    unit = await _handle(UserEnabled(login_id="pk-1"), sessions)
    assert unit.events == []
    row = sessions.rows["pk-1"]
    assert (row.status, row.policy, row.limits) == ("deleted", None, None)


async def test_deleting_a_login_never_created_changes_nothing() -> None:
    sessions = MemorySessions()
    unit = await _handle(UserDeleted(login_id="pk-1"), sessions)
    assert (unit.events, sessions.rows) == ([], {})


async def test_deleting_a_login_only_disabled_so_far_leaves_it_to_be_created() -> None:
    sessions = MemorySessions()
    await _handle(UserDisabled(login_id="pk-1", reason="on leave"), sessions)
    await _handle(UserDeleted(login_id="pk-1"), sessions)
    unit = await _handle(created(SessionPolicy()), sessions)
    assert unit.events == []  # created disabled: its limits come into force when it is enabled
    row = sessions.rows["pk-1"]
    assert (row.status, row.limits, row.disabled) == ("created", DEFAULT, True)
