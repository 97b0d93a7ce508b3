"""Follow-up events of the authentication service (``xosp.authentication.events``, key: login id)."""

from __future__ import annotations

from enum import StrEnum

from schemas.event import Event
from schemas.provisioning import FlowId
from schemas.types import LoginId, NonEmpty


class LoginStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class LoginProvisioned(Event):
    """The authentication server knows the login: it can now be identified."""

    event_type = "xosp.login.provisioned.v1"
    aggregate_field = "login_id"

    login_id: LoginId
    username: NonEmpty
    status: LoginStatus = LoginStatus.ACTIVE
    #: The flow (the ``UserCreated`` event's id) whose ``authentication.login`` step this completes.
    flow_id: FlowId | None = None


class LoginDisabled(Event):
    """The login can no longer be identified (step ``authentication.disable``)."""

    event_type = "xosp.login.disabled.v1"
    aggregate_field = "login_id"

    flow_id: FlowId
    login_id: LoginId
    reason: NonEmpty


class LoginEnabled(Event):
    """The login can be identified again (step ``authentication.enable``)."""

    event_type = "xosp.login.enabled.v1"
    aggregate_field = "login_id"

    flow_id: FlowId
    login_id: LoginId
