"""Session pools and the one rule of the service: the limits in force are the pool's defaults
with the login's overrides applied.

Kept free of I/O so that the arithmetic can be tested on its own and read in one place. The
pools are the reference deployment's (docs/provisioning.md); a pool added there is added here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from schemas.users import SessionPolicy


@dataclass(frozen=True)
class Limits:
    max_sessions: int
    max_connections: int
    grace_period_seconds: int


POOLS: Mapping[str, Limits] = MappingProxyType(
    {
        "Default": Limits(max_sessions=5, max_connections=20, grace_period_seconds=60),
        "General": Limits(max_sessions=10, max_connections=50, grace_period_seconds=120),
    }
)


class UnknownPool(LookupError):
    """A policy names a pool Session Management does not have: the step is refused, not retried."""

    def __init__(self, pool: str) -> None:
        super().__init__(
            f"session pool {pool!r} is unknown; known pools: {', '.join(sorted(POOLS))} "
            "(name one of them in the user's session policy)"
        )
        self.pool = pool


def limits_in_force(policy: SessionPolicy) -> Limits:
    """The pool's limits, each replaced by the login's override where it has one."""
    try:
        pool = POOLS[policy.pool]
    except KeyError:
        raise UnknownPool(policy.pool) from None
    overrides = policy.overrides
    return Limits(
        max_sessions=_first(overrides.max_sessions, pool.max_sessions),
        max_connections=_first(overrides.max_connections, pool.max_connections),
        grace_period_seconds=_first(overrides.grace_period_seconds, pool.grace_period_seconds),
    )


def _first(override: int | None, default: int) -> int:
    """An override of 0 (no grace period) is an override: only an absent one keeps the pool's."""
    return default if override is None else override
