"""Handlers of ``xosp.users``: assign a login's session limits, end them, restore them, remove them.

Steps (docs/provisioning.md): ``sessions.limits`` of a user's creation or enabling, only when the
user has a session policy, and ``sessions.end`` of every disabling, which is reported even for a
login Session Management never knew, because the tracker expects it for each one.

Every created login is remembered, with a policy or without one, and a deleted one stays, marked
deleted, as in authentication and authorisation: a login created twice fails ``sessions.limits``
and changes nothing; an update (or a removal of its policy) of a login not created yet waits for
its creation (same topic and key, so it is an upstream inconsistency only if the creation never
comes); an update of a deleted login is dead-lettered for a person, never taken as one that comes
before the creation.

A policy naming a pool not defined waits for the pool's ``SessionPoolDefined``: pools come on
``xosp.session_pools``, which is not ordered against ``xosp.users``.
"""

from __future__ import annotations

from dataclasses import asdict

from consumers.runtime import DomainError, MissingPrerequisite
from consumers.sessions.pools import Limits, limits_in_force
from consumers.sessions.store import SessionsUnit
from schemas.sessions import SessionLimitsAssigned, SessionLimitsRemoved, SessionsEnded
from schemas.users import (
    SessionPolicy,
    UserCreated,
    UserDeleted,
    UserDisabled,
    UserEnabled,
    UserSessionPolicyRemoved,
    UserUpdated,
)

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
    limits = await _limits_of(event.session_policy, unit)
    if not await unit.store.create(event.login_id, event.session_policy, limits, unit.cause.time):
        _assigned(unit, event.login_id, event.session_policy.pool, limits)


async def user_updated(event: UserUpdated, unit: SessionsUnit) -> None:
    """A new policy replaces the old one; one that waits for its pool leaves the old limits in force."""
    if event.session_policy is None:
        return  # a partial update that leaves the policy as it is
    await _require_created(event.login_id, unit)
    limits = await _limits_of(event.session_policy, unit)
    disabled = await unit.store.save_policy(event.login_id, event.session_policy, limits, unit.cause.time)
    if not disabled:  # a disabled login's new limits come into force when it is enabled
        _assigned(unit, event.login_id, event.session_policy.pool, limits)


async def user_session_policy_removed(event: UserSessionPolicyRemoved, unit: SessionsUnit) -> None:
    """The login keeps no pool and no limits (Session Management is optional per user); said even
    while it is disabled, since what it would get back when enabled changes. A login without a
    policy has nothing removed, and nothing is said."""
    await _require_created(event.login_id, unit)
    pool = await unit.store.remove_policy(event.login_id, unit.cause.time)
    if pool is not None:
        unit.record(SessionLimitsRemoved(flow_id=unit.flow_id, login_id=event.login_id, pool=pool))


async def user_disabled(event: UserDisabled, unit: SessionsUnit) -> None:
    await unit.store.end_sessions(event.login_id, event.reason, unit.cause.time)
    unit.record(SessionsEnded(flow_id=unit.flow_id, login_id=event.login_id, reason=event.reason))


async def user_enabled(event: UserEnabled, unit: SessionsUnit) -> None:
    policy = await unit.store.enable(event.login_id, unit.cause.time)
    if policy is None:
        return  # no policy: the enabling flow expects no sessions step
    limits = await _limits_of(policy, unit)
    await unit.store.save_policy(event.login_id, policy, limits, unit.cause.time)
    _assigned(unit, event.login_id, policy.pool, limits)


async def user_deleted(event: UserDeleted, unit: SessionsUnit) -> None:
    """A deleted login's policy and limits go with it, its row stays marked deleted (not a tracked
    flow: nothing to report). Deleting a login never created changes nothing."""
    if await unit.store.status(event.login_id) == "created":
        await unit.store.delete(event.login_id, unit.cause.time)


async def _require_created(login_id: str, unit: SessionsUnit) -> None:
    """Raise unless the login is created: a change before its creation waits for it, one after
    its deletion is for a person."""
    status = await unit.store.status(login_id)
    if status in (None, "not_created"):
        raise MissingPrerequisite(
            f"login {login_id} is unknown: an update follows its UserCreated",
            waits_for=login_id,
            needs="the login's UserCreated",
            service="sessions",
        )
    if status == "deleted":
        raise DomainError(
            f"login {login_id} is deleted: no update follows its UserDeleted; fix the upstream identity "
            "system and discard this event (`xbus dlq discard sessions --id ... --reason ...`)"
        )


async def _limits_of(policy: SessionPolicy, unit: SessionsUnit) -> Limits:
    """The limits ``policy`` puts in force; the event waits if its pool is not defined (yet)."""
    pool = await unit.store.pool(policy.pool)
    if pool is None:
        known = ", ".join(await unit.store.pool_names())
        raise MissingPrerequisite(
            f"session pool {policy.pool!r} is not defined (known pools: {known})",
            waits_for=policy.pool,
            needs=f"a SessionPoolDefined of pool {policy.pool!r} on xosp.session_pools",
            service="sessions",
        )
    return limits_in_force(pool, policy.overrides)


def _assigned(unit: SessionsUnit, login_id: str, pool: str, limits: Limits) -> None:
    unit.record(SessionLimitsAssigned(flow_id=unit.flow_id, login_id=login_id, pool=pool, **asdict(limits)))
