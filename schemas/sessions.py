"""Follow-up events of Session Management (``xosp.sessions.events``, key: login id)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.event import Event
from schemas.provisioning import FlowId
from schemas.types import Label, LoginId, NonEmpty


class SessionLimitsAssigned(Event):
    """The limits in force for a login: its pool's, its own overrides applied (step ``sessions.limits``)."""

    event_type = "xosp.session_limits.assigned.v1"
    aggregate_field = "login_id"

    flow_id: FlowId
    login_id: LoginId
    pool: Label
    max_sessions: Annotated[int, Field(ge=1)]
    max_connections: Annotated[int, Field(ge=1)]
    grace_period_seconds: Annotated[int, Field(ge=0)]


class SessionsEnded(Event):
    """A login's sessions are ended and its limits withdrawn (step ``sessions.end``)."""

    event_type = "xosp.sessions.ended.v1"
    aggregate_field = "login_id"

    flow_id: FlowId
    login_id: LoginId
    reason: NonEmpty
