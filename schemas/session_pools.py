"""Events of ``xosp.session_pools`` (key: pool name): Session Management's pools, defined and
changed upstream.

A pool's settings are stated whole, as the platform's ``Pool Set`` states them (the reference
deployment's ``Config/Init/sessions-init.ps1``): an absent limit is no limit of that kind, never
"keep the one it had". The platform's own pools, ``Default`` and ``General``, are there from the
start (docs/provisioning.md, "Session pools"); these events add pools and change any of them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.event import Event
from schemas.types import Label

#: The bounds of a session limit, for a pool's settings, a login's overrides and the limits in force.
MaxSessions = Annotated[int, Field(ge=1, le=10_000)]
MaxConnections = Annotated[int, Field(ge=1, le=100_000)]
GracePeriodSeconds = Annotated[int, Field(ge=0, le=86_400)]


class _SessionPoolEvent(Event):
    """A pool's name and its whole settings (not registered: it declares no event type)."""

    aggregate_field = "pool"

    pool: Label
    #: Sessions a login of the pool may hold at once (``-Sessions``); absent: no limit.
    max_sessions: MaxSessions | None = None
    #: Connections a login of the pool may hold at once (``-Connections``); absent: no limit.
    max_connections: MaxConnections | None = None
    #: How long a session over the limit lives on before it is ended (``-Grace``); absent: none set.
    grace_period_seconds: GracePeriodSeconds | None = None
    #: The limits apply per resource rather than to the login as a whole (``-Resource``).
    resource_scoped: bool = False


class SessionPoolDefined(_SessionPoolEvent):
    """A new pool. A name already in use is refused unless the settings are the same."""

    event_type = "xosp.session_pool.defined.v1"


class SessionPoolChanged(_SessionPoolEvent):
    """New settings for a pool that exists; the logins in it get them, each with its own overrides."""

    event_type = "xosp.session_pool.changed.v1"
