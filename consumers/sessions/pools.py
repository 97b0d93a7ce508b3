"""The one rule of session pools: the limits in force for a login are its pool's settings, each
replaced by the login's own override where it has one.

The pools themselves are data, not code: the platform's are seeded by sql/0003_pools.sql, others
are defined and changed by events (docs/provisioning.md, "Session pools"). What is here is the
arithmetic alone, free of I/O, to be tested and read in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.users import SessionLimits


@dataclass(frozen=True)
class Limits:
    """A pool's settings, or the limits in force for a login. None: no limit of that kind (the
    platform's ``Default`` pool sets none)."""

    max_sessions: int | None
    max_connections: int | None
    grace_period_seconds: int | None
    #: The limits apply per resource rather than to the login as a whole (``Pool Set ... -Resource``).
    resource_scoped: bool


def limits_in_force(pool: Limits, overrides: SessionLimits) -> Limits:
    """The pool's limits, each replaced by the login's override where it has one; whether they
    apply per resource is the pool's to say."""
    return Limits(
        max_sessions=_first(overrides.max_sessions, pool.max_sessions),
        max_connections=_first(overrides.max_connections, pool.max_connections),
        grace_period_seconds=_first(overrides.grace_period_seconds, pool.grace_period_seconds),
        resource_scoped=pool.resource_scoped,
    )


def _first(override: int | None, default: int | None) -> int | None:
    """An override of 0 (no grace period) is an override: only an absent one keeps the pool's."""
    return default if override is None else override
