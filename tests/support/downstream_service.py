"""A downstream service for the runtime's tests: it consumes the logins service's follow-ups."""

from __future__ import annotations

from pathlib import Path

from consumers.runtime import Service, UnitOfWork
from schemas.authentication import LoginProvisioned


async def login_provisioned(event: LoginProvisioned, unit: UnitOfWork) -> None:
    await unit.execute(
        "insert into provisioned (login_id, times) values ($1, 1) "
        "on conflict (login_id) do update set times = provisioned.times + 1",
        event.login_id,
    )


DOWNSTREAM = Service(
    name="provisioning",
    handlers={LoginProvisioned: login_provisioned},
    migrations=Path(__file__).parent / "downstream_sql",
)
