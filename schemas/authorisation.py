"""Follow-up events of Resource Authorisation (``xosp.authorisation.events``).

Permissions are strings in the platform's style: ``market-data:<exchange>`` for a market whose
data a login may see, ``role:<role>`` for a role it holds, ``trade:<account id>`` for an account
it may trade. Access to a trading account is an association between ``User:<login id>`` and
``TradingAccount:<account id>`` with rights (view, trade, admin).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from schemas.accounts import AccountLogin
from schemas.event import Event
from schemas.provisioning import FlowId
from schemas.types import LoginId, NonEmpty, TradingAccountId

Permission = Annotated[str, Field(min_length=3, max_length=200, pattern=r"^[a-z][a-z\-]*:\S+$")]


class PermissionsGranted(Event):
    """A login's permissions as they now stand (steps ``authorisation.permissions``, ``authorisation.enable``)."""

    event_type = "xosp.permissions.granted.v1"
    aggregate_field = "login_id"

    flow_id: FlowId
    login_id: LoginId
    permissions: tuple[Permission, ...]
    #: Whether the login is active (not disabled). A reader that keeps its own view of logins (the
    #: OMS's trade rights) needs it: a disabled login's update also reports its permissions, all
    #: revoked. None in events written before this field existed.
    login_active: bool | None = None


class AccountAccessGranted(Event):
    """Logins given access to a trading account, with their rights (step ``authorisation.access``).

    A login associated while it is disabled, or with a closed account, is not listed: it has no
    access until it is enabled, when its access is announced by an event of its own."""

    event_type = "xosp.account_access.granted.v1"
    aggregate_field = "account_id"

    flow_id: FlowId
    account_id: TradingAccountId
    logins: tuple[AccountLogin, ...]


class RevokedScope(StrEnum):
    #: Everything the login had (it was disabled or deleted).
    LOGIN = "login"
    #: One login's access to one account (unlinked).
    ACCOUNT_LOGIN = "account_login"
    #: Every login's access to one account (the account was closed, or its opening failed).
    ACCOUNT = "account"


class AccessRevoked(Event):
    """Access taken away (step ``authorisation.revoke``; compensation of a failed account flow)."""

    event_type = "xosp.access.revoked.v1"
    aggregate_field = "subject_id"

    flow_id: FlowId
    scope: RevokedScope
    #: The login id (scope ``login``) or the trading account id (the other scopes).
    subject_id: NonEmpty
    login_ids: tuple[LoginId, ...] = ()
    account_id: TradingAccountId | None = None
    reason: NonEmpty
