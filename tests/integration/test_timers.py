"""Service timers on the real stack: periodic work in its own transaction, with follow-ups whose ids
depend on their subject only."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from consumers.runtime import Service, Timer, TimerUnit, UnitOfWork
from consumers.runtime.records import headers_from_json
from consumers.runtime.runner import ServiceRunner
from infrastructure.endpoints import load_catalogue
from infrastructure.settings import Settings
from schemas.authentication import LoginProvisioned
from schemas.users import UserCreated
from tests.integration.test_publisher import read_all
from tests.integration.test_runtime import count, eventually, publish, user
from tests.support.logins_service import LOGINS

pytestmark = pytest.mark.integration


async def login_created(event: UserCreated, unit: UnitOfWork) -> None:
    """Stores the login and records nothing: the timer announces it."""
    await unit.execute(
        "insert into logins (login_id, username, display_name, status) values ($1, $2, $3, 'new')",
        event.login_id,
        event.username,
        event.display_name,
    )


async def announce(unit: TimerUnit) -> None:
    """Announces each new login once; the status change commits with the outbox rows."""
    for row in await unit.fetch(
        "update logins set status = 'active' where status = 'new' returning login_id, username"
    ):
        unit.record_about(row["login_id"], LoginProvisioned(login_id=row["login_id"], username=row["username"]))


ANNOUNCE = Timer("announce", 0.1, announce)
ANNOUNCING = Service(
    name=LOGINS.name,
    handlers={UserCreated: login_created},
    migrations=LOGINS.migrations,
    timers=(ANNOUNCE,),
)


async def test_timer_records_each_follow_up_once_with_an_id_from_its_subject(service_settings: Settings) -> None:
    settings = service_settings
    runner = ServiceRunner(
        ANNOUNCING, settings, load_catalogue(settings), settings.kafka_bootstrap or "", settings.database_url or ""
    )
    await runner.migrate()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await publish(settings, [user("a1"), user("a2")])
        await eventually(lambda: _settled(settings, 2))
        ticks = runner.timers.ticks
        await eventually(lambda: _true(runner.timers.ticks >= ticks + 3))  # later ticks find nothing new
    finally:
        stop.set()
        await task
    assert task.done() and runner.timers.failures == 0
    announced = await read_all(settings, "xosp.authentication.events")
    assert sorted(event.key for event in announced) == ["a1", "a2"]
    first_ids = {event.key: event.envelope.id for event in announced}
    assert all(event.envelope.type == LoginProvisioned.event_type for event in announced)

    # The same work done again (a tick rolled back and run anew, or a rebuilt schema) gives the same ids.
    await _execute(settings, "update logins set status = 'new'")
    pool = await asyncpg.create_pool(
        settings.database_url or "", server_settings={"search_path": settings.db_schema(LOGINS.name)}
    )
    try:
        assert await runner.timers.tick(ANNOUNCE, pool) == 2
        rows = await pool.fetch("select key, headers from xbus_outbox where sent_at is null")
    finally:
        await pool.close()
    again = {bytes(row["key"]).decode(): _header(row["headers"], "ce_id") for row in rows}
    assert again == first_ids
    assert all(uuid.UUID(event_id).version == 5 for event_id in again.values())


async def _settled(settings: Settings, logins: int) -> bool:
    announced = await count(settings, "select count(*) from logins where status = 'active'")
    unsent = await count(settings, "select count(*) from xbus_outbox where sent_at is null")
    return announced == logins and unsent == 0


async def _true(value: bool) -> bool:
    return value


async def _execute(settings: Settings, query: str) -> None:
    connection = await asyncpg.connect(settings.database_url or "")
    try:
        await connection.execute(f"set search_path to {settings.db_schema(LOGINS.name)}")
        await connection.execute(query)
    finally:
        await connection.close()


def _header(headers: str, name: str) -> str:
    return dict(headers_from_json(headers))[name].decode()
