"""Follow-up events of the authentication service (``xosp.authentication.events``, key: login id)."""

from __future__ import annotations

from enum import StrEnum

from schemas.event import Event
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
