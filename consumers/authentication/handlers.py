"""Handlers of ``xosp.users`` for the authentication service: one function per event type.

``UserCreated``, ``UserDisabled`` and ``UserEnabled`` start flows (docs/provisioning.md): each
handler reports its step with ``LoginProvisioned``, ``LoginDisabled`` or ``LoginEnabled``, or
refuses it with ``StepFailed`` (a login created twice, a disable or enable of a login that was
never created or was deleted). A refusal is the event's effect, not a dead letter. ``UserUpdated``
and ``UserDeleted`` are not flows: an update of a login this service never created is an
upstream inconsistency (same topic and key as its ``UserCreated``, so it cannot be merely early)
and is dead-lettered so that someone looks at it.
"""

from __future__ import annotations

from consumers.authentication.store import LoginsUnit
from consumers.runtime import DomainError, MissingPrerequisite
from schemas.authentication import LoginDisabled, LoginEnabled, LoginProvisioned
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated

LOGIN_STEP = "authentication.login"
DISABLE_STEP = "authentication.disable"
ENABLE_STEP = "authentication.enable"


async def user_created(event: UserCreated, unit: LoginsUnit) -> None:
    status = await unit.store.login_status(event.login_id)
    if status is not None:
        unit.step_failed(
            unit.flow_id,
            LOGIN_STEP,
            f"login {event.login_id} already exists ({status}); a login id is created once, "
            "change an existing login with UserUpdated",
        )
        return
    await unit.store.insert_login(event, unit.flow_id, unit.cause.time)
    unit.record(LoginProvisioned(login_id=event.login_id, username=event.username, flow_id=unit.flow_id))


async def user_updated(event: UserUpdated, unit: LoginsUnit) -> None:
    status = await unit.store.login_status(event.login_id)
    if status is None:
        raise MissingPrerequisite(
            f"login {event.login_id} is unknown: an update follows its UserCreated",
            waits_for=event.login_id,
            needs="the login's UserCreated",
            service="authentication",
        )
    if status == "deleted":
        raise DomainError(
            f"login {event.login_id} is deleted: no update follows its UserDeleted; fix the upstream identity "
            "system and discard this event (`xbus dlq discard authentication --id ... --reason ...`)"
        )
    await unit.store.update_profile(event, unit.cause.time)


async def user_disabled(event: UserDisabled, unit: LoginsUnit) -> None:
    if await _refused(unit, event.login_id, DISABLE_STEP):
        return
    await unit.store.set_status(event.login_id, "disabled", event.reason, unit.cause.time)
    unit.record(LoginDisabled(flow_id=unit.flow_id, login_id=event.login_id, reason=event.reason))


async def user_enabled(event: UserEnabled, unit: LoginsUnit) -> None:
    if await _refused(unit, event.login_id, ENABLE_STEP):
        return
    await unit.store.set_status(event.login_id, "active", None, unit.cause.time)
    unit.record(LoginEnabled(flow_id=unit.flow_id, login_id=event.login_id))


async def user_deleted(event: UserDeleted, unit: LoginsUnit) -> None:
    """Keep the row, marked deleted: the id stays taken. Deleting an unknown login changes nothing."""
    if await unit.store.login_status(event.login_id) is not None:
        await unit.store.set_status(event.login_id, "deleted", event.reason, unit.cause.time)


async def _refused(unit: LoginsUnit, login_id: str, step: str) -> bool:
    """Report ``step`` as failed when the login cannot change status (never created, or deleted)."""
    status = await unit.store.login_status(login_id)
    if status is None:
        unit.step_failed(unit.flow_id, step, f"login {login_id} is unknown to the authentication server")
        return True
    if status == "deleted":
        unit.step_failed(unit.flow_id, step, f"login {login_id} was deleted")
        return True
    return False
