"""Session Management's rules, on a FakeUnitOfWork over an in-memory store: the limits a login's
policy puts in force, when they are reported, and what disabling, enabling, removing the policy
and deleting do (the arithmetic of limits alone is in test_sessions_pools.py, pools defined and
changed in test_sessions_pool_handlers.py; the SQL is proven on the real stack).

The pools are the platform's (``Config/Init/sessions-init.ps1`` in plxtra/xosp): ``Default``, which
sets no limit, and ``General``, 1 session, 5 connections, 4 s grace, resource-scoped."""

from __future__ import annotations

import pytest

from consumers.runtime import DomainError, FakeUnitOfWork, MissingPrerequisite
from consumers.sessions import handlers
from consumers.sessions.pools import Limits
from consumers.sessions.store import SessionsStore
from schemas import Event
from schemas.provisioning import StepFailed
from schemas.sessions import SessionLimitsAssigned, SessionLimitsRemoved, SessionsEnded
from schemas.users import (
    SessionLimits,
    SessionPolicy,
    UserCreated,
    UserDeleted,
    UserDisabled,
    UserEnabled,
    UserSessionPolicyRemoved,
    UserUpdated,
)
from tests.support.memory_sessions import DEFAULT, GENERAL, MemorySessions, SessionsRow

HANDLERS = {
    UserCreated: handlers.user_created,
    UserUpdated: handlers.user_updated,
    UserDisabled: handlers.user_disabled,
    UserEnabled: handlers.user_enabled,
    UserDeleted: handlers.user_deleted,
    UserSessionPolicyRemoved: handlers.user_session_policy_removed,
}


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
        resource_scoped=limits.resource_scoped,
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


async def test_a_login_in_the_general_pool_gets_the_platforms_general_limits() -> None:
    """sessions-init.ps1: ``Pool Set XOSP General -Sessions 1 -Connections 5 -Grace '00:00:04' -Resource``."""
    sessions = MemorySessions()
    unit = await _handle(created(SessionPolicy(pool="General")), sessions)
    assert unit.events == [assigned(unit, "General", Limits(1, 5, 4, resource_scoped=True))]
    row = sessions.rows["pk-1"]
    assert (row.policy, row.limits, row.changed_at) == (SessionPolicy(pool="General"), GENERAL, unit.cause.time)


async def test_a_login_in_the_default_pool_is_assigned_no_limits_but_its_overrides() -> None:
    """sessions-init.ps1: ``Pool Set XOSP Default`` sets no limit; the login's overrides are its only ones."""
    sessions = MemorySessions()
    policy = SessionPolicy(pool="Default", overrides=SessionLimits(max_sessions=2, grace_period_seconds=0))
    unit = await _handle(created(policy), sessions)
    limits = Limits(max_sessions=2, max_connections=None, grace_period_seconds=0, resource_scoped=False)
    assert unit.events == [assigned(unit, "Default", limits)]
    row = sessions.rows["pk-1"]
    assert (row.policy, row.limits, row.changed_at) == (policy, limits, unit.cause.time)
    plain = await _handle(created(SessionPolicy()).model_copy(update={"login_id": "pk-2"}), sessions)
    [limits_of_pk2] = plain.events
    assert isinstance(limits_of_pk2, SessionLimitsAssigned)
    assert (limits_of_pk2.max_sessions, limits_of_pk2.max_connections, limits_of_pk2.grace_period_seconds) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    "event",
    [
        created(SessionPolicy(pool="Gold")),
        UserUpdated(login_id="pk-1", session_policy=SessionPolicy(pool="Gold")),
    ],
    ids=["created", "updated"],
)
async def test_a_policy_naming_a_pool_not_defined_waits_for_the_pool_and_changes_nothing(event: Event) -> None:
    """Pools are defined by events on another topic than the logins: a policy may name one not
    read yet. The event waits for the pool's SessionPoolDefined (keyed by the pool's name), as the
    reference's ``sms.EntityCreate`` creates nothing for a pool it does not find."""
    sessions = MemorySessions()
    if isinstance(event, UserUpdated):
        await _handle(created(SessionPolicy()), sessions)
    before = {login: (row.policy, row.limits) for login, row in sessions.rows.items()}
    with pytest.raises(MissingPrerequisite) as waiting:
        await _handle(event, sessions)
    assert waiting.value.waits_for == "Gold"
    assert "session pool 'Gold' is not defined (known pools: Default, General)" in str(waiting.value)
    assert "publish a SessionPoolDefined of pool 'Gold' on xosp.session_pools" in str(waiting.value)
    assert "xbus dlq redrive sessions" in str(waiting.value)
    assert {login: (row.policy, row.limits) for login, row in sessions.rows.items()} == before


async def test_a_policy_naming_a_pool_defined_since_is_put_in_force() -> None:
    sessions = MemorySessions()
    gold = Limits(3, 6, 9, resource_scoped=False)
    sessions.pools["Gold"] = gold  # what SessionPoolDefined leaves (test_sessions_pool_handlers.py)
    unit = await _handle(created(SessionPolicy(pool="Gold", overrides=SessionLimits(max_sessions=1))), sessions)
    assert unit.events == [assigned(unit, "Gold", Limits(1, 6, 9, resource_scoped=False))]


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


async def test_enabling_a_login_whose_kept_policy_names_no_pool_in_force_waits_for_the_pool() -> None:
    """A row an earlier release kept with a pool it refused (no limits): enabling it waits for that pool."""
    sessions = MemorySessions()
    sessions.rows["pk-1"] = SessionsRow(status="created", policy=SessionPolicy(pool="Gold"), disabled=True)
    with pytest.raises(MissingPrerequisite) as waiting:
        await _handle(UserEnabled(login_id="pk-1"), sessions)
    assert waiting.value.waits_for == "Gold"


async def test_removing_the_policy_leaves_the_login_without_pool_or_limits_and_reports_it() -> None:
    """DOMAIN: Session Management is optional per user; the reference's ``sms.EntityDelete`` takes a
    login out of its pool."""
    sessions = MemorySessions()
    await _handle(created(SessionPolicy(pool="General", overrides=SessionLimits(max_sessions=2))), sessions)
    unit = await _handle(UserSessionPolicyRemoved(login_id="pk-1"), sessions)
    assert unit.events == [SessionLimitsRemoved(flow_id=unit.cause.id, login_id="pk-1", pool="General")]
    row = sessions.rows["pk-1"]
    assert (row.status, row.policy, row.limits, row.changed_at) == ("created", None, None, unit.cause.time)
    assert (await _handle(UserUpdated(login_id="pk-1", display_name="Pat"), sessions)).events == []
    assert sessions.rows["pk-1"].policy is None  # an update without a policy gives it none back


@pytest.mark.parametrize("disabled", [False, True])
async def test_a_login_whose_policy_was_removed_gets_no_limits_when_enabled(disabled: bool) -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy(pool="General")), sessions)
    if disabled:
        await _handle(UserDisabled(login_id="pk-1", reason="on leave"), sessions)
    removed = await _handle(UserSessionPolicyRemoved(login_id="pk-1"), sessions)
    assert [type(event) for event in removed.events] == [SessionLimitsRemoved]  # said even while disabled
    assert (await _handle(UserEnabled(login_id="pk-1"), sessions)).events == []
    assert (sessions.rows["pk-1"].policy, sessions.rows["pk-1"].limits) == (None, None)


async def test_removing_a_policy_the_login_does_not_have_changes_and_reports_nothing() -> None:
    sessions = MemorySessions()
    first = await _handle(created(None), sessions)
    unit = await _handle(UserSessionPolicyRemoved(login_id="pk-1"), sessions)
    assert unit.events == []
    assert sessions.rows["pk-1"].changed_at == first.cause.time


async def test_a_policy_given_again_after_its_removal_is_put_in_force() -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy(pool="General")), sessions)
    await _handle(UserSessionPolicyRemoved(login_id="pk-1"), sessions)
    unit = await _handle(UserUpdated(login_id="pk-1", session_policy=SessionPolicy()), sessions)
    assert unit.events == [assigned(unit, "Default", DEFAULT)]


@pytest.mark.parametrize("disabled_first", [False, True])
async def test_removing_the_policy_of_a_login_never_created_waits_for_its_creation(disabled_first: bool) -> None:
    sessions = MemorySessions()
    if disabled_first:
        await _handle(UserDisabled(login_id="pk-1", reason="on leave"), sessions)
    with pytest.raises(MissingPrerequisite) as waiting:
        await _handle(UserSessionPolicyRemoved(login_id="pk-1"), sessions)
    assert waiting.value.waits_for == "pk-1"
    assert "login pk-1 is unknown" in str(waiting.value)


async def test_removing_the_policy_of_a_deleted_login_is_refused_for_a_person() -> None:
    sessions = MemorySessions()
    await _handle(created(SessionPolicy()), sessions)
    await _handle(UserDeleted(login_id="pk-1"), sessions)
    with pytest.raises(DomainError, match="login pk-1 is deleted") as refused:
        await _handle(UserSessionPolicyRemoved(login_id="pk-1"), sessions)
    assert not isinstance(refused.value, MissingPrerequisite)
    assert "xbus dlq discard sessions" in str(refused.value)


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
