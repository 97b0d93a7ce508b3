"""Follow-up events of Session Management (``xosp.sessions.events``, key: login id)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.event import Event
from schemas.provisioning import FlowId
from schemas.session_pools import GracePeriodSeconds, MaxConnections, MaxSessions
from schemas.types import Label, LoginId, NonEmpty


class _LimitsInForce(Event):
    """A login, its pool and the limits in force for it (not registered: it declares no event type).

    A limit that is absent is no limit: the platform's ``Default`` pool sets none."""

    aggregate_field = "login_id"

    login_id: LoginId
    pool: Label
    max_sessions: MaxSessions | None
    max_connections: MaxConnections | None
    grace_period_seconds: GracePeriodSeconds | None
    #: The limits apply per resource rather than to the login as a whole (the pool's ``-Resource``).
    resource_scoped: bool = False


class SessionLimitsAssigned(_LimitsInForce):
    """The limits in force for a login: its pool's, its own overrides applied (step ``sessions.limits``)."""

    event_type = "xosp.session_limits.assigned.v2"

    flow_id: FlowId


class SessionLimitsChanged(_LimitsInForce):
    """The limits in force for a login changed because its pool did (``SessionPoolChanged``). Not a
    step of a flow: a pool's change is not one the provisioning tracker follows."""

    event_type = "xosp.session_limits.changed.v1"


class SessionLimitsRemoved(Event):
    """A login's session policy is removed (``UserSessionPolicyRemoved``): it has no pool and no
    limits in Session Management any more. ``pool`` is the one it was in."""

    event_type = "xosp.session_limits.removed.v1"
    aggregate_field = "login_id"

    flow_id: FlowId
    login_id: LoginId
    pool: Label


class SessionsEnded(Event):
    """A login's sessions are ended and its limits withdrawn (step ``sessions.end``)."""

    event_type = "xosp.sessions.ended.v1"
    aggregate_field = "login_id"

    flow_id: FlowId
    login_id: LoginId
    reason: NonEmpty


class SessionLimitsAssignedV1(Event):
    """Retired, no longer emitted: replaced by ``SessionLimitsAssigned``
    (xosp.session_limits.assigned.v2), whose limits may be absent (the platform's ``Default`` pool
    sets none) and which says whether they apply per resource.

    Kept registered, its fields unchanged, so that the records already on
    ``xosp.sessions.events`` and in dead letters still replay and parse.
    """

    event_type = "xosp.session_limits.assigned.v1"
    aggregate_field = "login_id"

    flow_id: FlowId
    login_id: LoginId
    pool: Label
    max_sessions: Annotated[int, Field(ge=1)]
    max_connections: Annotated[int, Field(ge=1)]
    grace_period_seconds: Annotated[int, Field(ge=0)]
