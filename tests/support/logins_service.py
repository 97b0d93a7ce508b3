"""A small service for the runtime's tests: logins from `xosp.users`, with `LoginProvisioned` follow-ups.

Its handlers cover each path of the runtime: state changes with a follow-up event, a domain
refusal (disabling an unknown login), and a handler bug (a display name of "boom") that is
retried and then dead-lettered.
"""

from __future__ import annotations

from pathlib import Path

from consumers.runtime import DomainError, Service, UnitOfWork
from schemas.authentication import LoginProvisioned
from schemas.users import UserCreated, UserDisabled, UserUpdated


async def user_created(event: UserCreated, unit: UnitOfWork) -> None:
    await unit.execute(
        "insert into logins (login_id, username, display_name, status) values ($1, $2, $3, 'active')",
        event.login_id,
        event.username,
        event.display_name,
    )
    unit.record(LoginProvisioned(login_id=event.login_id, username=event.username, flow_id=unit.flow_id))


async def user_updated(event: UserUpdated, unit: UnitOfWork) -> None:
    if event.display_name == "boom":
        raise RuntimeError("a bug in the handler")
    changed = await unit.execute(
        "update logins set display_name = coalesce($2, display_name), changes = changes + 1 where login_id = $1",
        event.login_id,
        event.display_name,
    )
    if changed == "UPDATE 0":
        raise DomainError(f"login {event.login_id} is unknown")


async def user_disabled(event: UserDisabled, unit: UnitOfWork) -> None:
    changed = await unit.execute(
        "update logins set status = 'disabled', changes = changes + 1 where login_id = $1", event.login_id
    )
    if changed == "UPDATE 0":
        raise DomainError(f"login {event.login_id} is unknown")


LOGINS = Service(
    name="authentication",
    handlers={
        UserCreated: user_created,
        UserUpdated: user_updated,
        UserDisabled: user_disabled,
    },
    migrations=Path(__file__).parent / "logins_sql",
)
