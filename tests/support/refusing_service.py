"""A logins service whose updates fail while a test says so: a cause of dead letters a test can fix.

An update of a login listed in ``refused_logins`` fails like a handler bug (retried, then
dead-lettered); deleting the row fixes the cause, in the database, so the service can stay
running (in-process or as `xbus run tests.support.refusing_service:REFUSING`). Each applied
update appends to ``login_changes``, so the order in which a login's updates were applied
can be read back.
"""

from __future__ import annotations

from pathlib import Path

from consumers.runtime import DomainError, Service, UnitOfWork
from schemas.users import UserCreated, UserUpdated


async def user_created(event: UserCreated, unit: UnitOfWork) -> None:
    await unit.execute(
        "insert into logins (login_id, display_name) values ($1, $2)", event.login_id, event.display_name
    )


async def user_updated(event: UserUpdated, unit: UnitOfWork) -> None:
    if await unit.fetchval("select 1 from refused_logins where login_id = $1", event.login_id):
        raise RuntimeError(f"updates of login {event.login_id} are refused by the test")
    name = event.display_name or ""
    changed = await unit.execute("update logins set display_name = $2 where login_id = $1", event.login_id, name)
    if changed == "UPDATE 0":
        raise DomainError(f"login {event.login_id} is unknown")
    await unit.execute("insert into login_changes (login_id, display_name) values ($1, $2)", event.login_id, name)


REFUSING = Service(
    name="authentication",
    handlers={UserCreated: user_created, UserUpdated: user_updated},
    migrations=Path(__file__).parent / "refusing_sql",
)
