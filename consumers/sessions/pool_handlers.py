"""Handlers of ``xosp.session_pools``: pools defined and changed, and a change carried to the logins
in the pool.

The platform keeps one pool per name (the reference's Paritech.Sessions.sql: ``sms.PoolCreate``
refuses a name in use, ``sms.PoolUpdate`` changes only a pool that exists). Here a definition of a
name in use is refused for a person unless it says what the pool already is (an init script run
again), and a change of a pool not defined waits for its definition. Neither is a provisioning
flow: a refusal is a dead letter, and what a change does to each login is told by
``SessionLimitsChanged``, which no flow waits for.
"""

from __future__ import annotations

from dataclasses import asdict

from consumers.runtime import DomainError, MissingPrerequisite
from consumers.sessions.pools import Limits, limits_in_force
from consumers.sessions.store import SessionsUnit
from schemas.session_pools import SessionPoolChanged, SessionPoolDefined
from schemas.sessions import SessionLimitsChanged


async def session_pool_defined(event: SessionPoolDefined, unit: SessionsUnit) -> None:
    settings = _settings(event)
    existing = await unit.store.pool(event.pool)
    if existing == settings:
        return  # defined again as it is: nothing changes
    if existing is not None:
        raise DomainError(
            f"session pool {event.pool!r} is defined already, as {existing}: a pool is defined once; "
            f"publish a SessionPoolChanged of {event.pool!r} to change it, and discard this event "
            "(`xbus dlq discard sessions --id ... --reason ...`)"
        )
    await _save(event.pool, settings, unit)


async def session_pool_changed(event: SessionPoolChanged, unit: SessionsUnit) -> None:
    if await unit.store.pool(event.pool) is None:
        raise MissingPrerequisite(
            f"session pool {event.pool!r} is not defined: a change follows its SessionPoolDefined",
            waits_for=event.pool,
            needs="the pool's SessionPoolDefined",
            service="sessions",
        )
    await _save(event.pool, _settings(event), unit)


async def _save(pool: str, settings: Limits, unit: SessionsUnit) -> None:
    """Keep the pool's settings and give every login in it the limits they now put in force; a
    login's whose limits change is told, unless it is disabled (they come into force when it is
    enabled). A definition finds logins in the pool only when an earlier release refused it."""
    await unit.store.save_pool(pool, settings, unit.cause.time)
    changed = {
        member.login_id: limits
        for member in await unit.store.logins_in_pool(pool)
        if (limits := limits_in_force(settings, member.overrides)) != member.limits
    }
    for login_id in await unit.store.save_limits(pool, changed, unit.cause.time):
        unit.record(SessionLimitsChanged(login_id=login_id, pool=pool, **asdict(changed[login_id])))


def _settings(event: SessionPoolDefined | SessionPoolChanged) -> Limits:
    return Limits(event.max_sessions, event.max_connections, event.grace_period_seconds, event.resource_scoped)
