"""A replay-aware service for the replay tests: its state is rebuilt by a replay, and its "external
side effect" (a row standing for a mail sent) happens only for events it has not read before.
"""

from __future__ import annotations

from pathlib import Path

from consumers.runtime import Service, UnitOfWork
from schemas.users import UserCreated


async def user_created(event: UserCreated, unit: UnitOfWork) -> None:
    await unit.execute("insert into logins (login_id, username) values ($1, $2)", event.login_id, event.username)
    if not unit.replayed:
        await unit.execute(
            "insert into side_effects (event_id, login_id) values ($1, $2)", unit.cause.id, event.login_id
        )


REPLAY_AWARE = Service(
    # the name of a service that owns a follow-up topic in topics.yaml; tests give it a schema of its own
    name="authentication",
    handlers={UserCreated: user_created},
    migrations=Path(__file__).parent / "replay_aware_sql",
)
