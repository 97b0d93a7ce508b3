"""Handlers of ``xosp.users``: assign a login's session limits, end them, restore them.

Steps (docs/provisioning.md): ``sessions.limits`` of a user's creation or enabling, only when the
user has a session policy, and ``sessions.end`` of every disabling, which is reported even for a
login Session Management never knew, because the tracker expects it for each one.

Every created login is remembered, with a policy or without one, and a deleted one stays, marked
deleted, as in authentication and authorisation: a login created twice fails ``sessions.limits``
and changes nothing; an update of a login not created yet waits for its creation (same topic and
key, so it is an upstream inconsistency only if the creation never comes); an update of a deleted
login is dead-lettered for a person, never taken as one that comes before the creation.
"""

from __future__ import annotations

from consumers.runtime import DomainError, MissingPrerequisite
from consumers.sessions.pools import Limits, UnknownPool, limits_in_force
from consumers.sessions.store import SessionsUnit
from schemas.sessions import SessionLimitsAssigned, SessionsEnded
from schemas.users import SessionPolicy, UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated

STEP_LIMITS = "sessions.limits"
STEP_END = "sessions.end"


async def user_created(event: UserCreated, unit: SessionsUnit) -> None:
    status = await unit.store.status(event.login_id)
    if status in ("created", "deleted"):
        unit.step_failed(
            unit.flow_id,
            STEP_LIMITS,
            f"login {event.login_id} already exists ({status}); a login id is created once, "
            "change an existing login with UserUpdated",
        )
        return
    if event.session_policy is None:
        # Session Management is optional per user: no policy, no limits, no step; the login is
        # remembered all the same, for an update that gives it a policy later.
        await unit.store.create(event.login_id, None, None, unit.cause.time)
        return
    limits = _limits_or_refuse(event.session_policy, unit)
    # A refused policy is kept too: enabling the login later refuses it the same way.
    disabled = await unit.store.create(event.login_id, event.session_policy, limits, unit.cause.time)
    if limits is not None and not disabled:
        _assigned(unit, event.login_id, event.session_policy.pool, limits)


async def user_updated(event: UserUpdated, unit: SessionsUnit) -> None:
    """A new policy replaces the old one; a refused one leaves the old limits in force."""
    if event.session_policy is None:
        return  # a partial update that leaves the policy as it is
    status = await unit.store.status(event.login_id)
    if status in (None, "not_created"):
        raise MissingPrerequisite(
            f"login {event.login_id} is unknown: an update follows its UserCreated",
            waits_for=event.login_id,
            needs="the login's UserCreated",
            service="sessions",
        )
    if status == "deleted":
        raise DomainError(
            f"login {event.login_id} is deleted: no update follows its UserDeleted; fix the upstream identity "
            "system and discard this event (`xbus dlq discard sessions --id ... --reason ...`)"
        )
    limits = _limits_or_refuse(event.session_policy, unit)
    if limits is None:
        return
    disabled = await unit.store.save_policy(event.login_id, event.session_policy, limits, unit.cause.time)
    if not disabled:  # a disabled login's new limits come into force when it is enabled
        _assigned(unit, event.login_id, event.session_policy.pool, limits)


async def user_disabled(event: UserDisabled, unit: SessionsUnit) -> None:
    await unit.store.end_sessions(event.login_id, event.reason, unit.cause.time)
    unit.record(SessionsEnded(flow_id=unit.flow_id, login_id=event.login_id, reason=event.reason))


async def user_enabled(event: UserEnabled, unit: SessionsUnit) -> None:
    policy = await unit.store.enable(event.login_id, unit.cause.time)
    if policy is None:
        return  # no policy: the enabling flow expects no sessions step
    limits = _limits_or_refuse(policy, unit)
    if limits is not None:
        await unit.store.save_policy(event.login_id, policy, limits, unit.cause.time)
        _assigned(unit, event.login_id, policy.pool, limits)


async def user_deleted(event: UserDeleted, unit: SessionsUnit) -> None:
    """A deleted login's policy and limits go with it, its row stays marked deleted (not a tracked
    flow: nothing to report). Deleting a login never created changes nothing."""
    if await unit.store.status(event.login_id) == "created":
        await unit.store.delete(event.login_id, unit.cause.time)


def _limits_or_refuse(policy: SessionPolicy, unit: SessionsUnit) -> Limits | None:
    """The limits in force, or None after refusing the step of the event's flow (unknown pool)."""
    try:
        return limits_in_force(policy)
    except UnknownPool as unknown:
        unit.step_failed(unit.flow_id, STEP_LIMITS, str(unknown))
        return None


def _assigned(unit: SessionsUnit, login_id: str, pool: str, limits: Limits) -> None:
    unit.record(
        SessionLimitsAssigned(
            flow_id=unit.flow_id,
            login_id=login_id,
            pool=pool,
            max_sessions=limits.max_sessions,
            max_connections=limits.max_connections,
            grace_period_seconds=limits.grace_period_seconds,
        )
    )
