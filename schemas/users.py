"""Events of ``xosp.users`` (key: login id): the life of a login."""

from __future__ import annotations

from pydantic import field_validator

from schemas.event import Event
from schemas.session_pools import GracePeriodSeconds, MaxConnections, MaxSessions
from schemas.types import (
    Email,
    Frozen,
    Label,
    LoginId,
    MarketCode,
    NonEmpty,
    Role,
    unique,
)


class SessionLimits(Frozen):
    """Per-login overrides of a session pool's limits; an absent value keeps the pool's."""

    max_sessions: MaxSessions | None = None
    max_connections: MaxConnections | None = None
    grace_period_seconds: GracePeriodSeconds | None = None


class SessionPolicy(Frozen):
    """Session Management settings of a login: the pool it belongs to and its own overrides."""

    pool: Label = "Default"
    overrides: SessionLimits = SessionLimits()


class UserCreated(Event):
    event_type = "xosp.user.created.v1"
    aggregate_field = "login_id"

    login_id: LoginId
    username: NonEmpty
    email: Email
    display_name: NonEmpty
    roles: tuple[Role, ...] = ()
    #: Markets whose data the login may see (``market-data:<exchange>`` permissions).
    markets: tuple[MarketCode, ...] = ()
    #: Absent: the login gets no Session Management limits (the step is optional).
    session_policy: SessionPolicy | None = None
    #: Reference to the credential held by the authentication server; never a password.
    credential_ref: NonEmpty | None = None

    _unique_roles = field_validator("roles")(lambda v: unique(v, "role"))
    _unique_markets = field_validator("markets")(lambda v: unique(v, "market"))


class UserUpdated(Event):
    """A partial update: only the fields present change."""

    event_type = "xosp.user.updated.v1"
    aggregate_field = "login_id"

    login_id: LoginId
    username: NonEmpty | None = None
    email: Email | None = None
    display_name: NonEmpty | None = None
    roles: tuple[Role, ...] | None = None
    markets: tuple[MarketCode, ...] | None = None
    session_policy: SessionPolicy | None = None


class UserDisabled(Event):
    event_type = "xosp.user.disabled.v1"
    aggregate_field = "login_id"

    login_id: LoginId
    reason: NonEmpty


class UserEnabled(Event):
    event_type = "xosp.user.enabled.v1"
    aggregate_field = "login_id"

    login_id: LoginId


class UserSessionPolicyRemoved(Event):
    """The login leaves Session Management: no pool, no limits (Session Management is optional per
    user). ``UserUpdated`` cannot say it: there an absent policy leaves the policy as it is."""

    event_type = "xosp.user.session_policy_removed.v1"
    aggregate_field = "login_id"

    login_id: LoginId


class UserDeleted(Event):
    event_type = "xosp.user.deleted.v1"
    aggregate_field = "login_id"

    login_id: LoginId
    reason: NonEmpty | None = None
