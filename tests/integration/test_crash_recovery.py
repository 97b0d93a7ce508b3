"""Kill -9 a service process at random moments while events flow: effects stay exactly-once."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from infrastructure.settings import Settings
from producers import open_publisher
from schemas.users import UserCreated
from tests.conftest import Stack
from tests.integration.test_publisher import read_all
from tests.support.service_process import ServiceProcess, scalar, wait_for

pytestmark = pytest.mark.integration

#: The soak script (scripts/soak.py) raises this to 20 and more.
KILLS = int(os.environ.get("XBUS_TEST_KILLS", "5"))
#: At least the issue's 10,000, and enough that every kill strikes while events still flow: each
#: life applies events until it is killed, and a fast runner gets through about a thousand.
EVENTS = max(10_000, 2_000 * KILLS)


async def test_kill_9_at_random_moments_loses_and_doubles_nothing(
    topics: Settings, stack: Stack, tmp_path: Path
) -> None:
    settings = topics.model_copy(update={"db_schema_prefix": f"k{uuid.uuid4().hex[:8]}_"})
    logins_schema, downstream_schema = settings.db_schema("authentication"), settings.db_schema("provisioning")
    events = [
        UserCreated(login_id=f"login-{i:05d}", username=f"user{i}", email=f"u{i}@example.com", display_name=f"U {i}")
        for i in range(EVENTS)
    ]
    async with open_publisher(settings) as publisher:
        assert all(hasattr(r, "offset") for r in await publisher.publish_many(events))

    logins = ServiceProcess("tests.support.logins_service:LOGINS", settings, tmp_path / "logins.log")
    downstream = ServiceProcess("tests.support.downstream_service:DOWNSTREAM", settings, tmp_path / "downstream.log")
    downstream.start()
    chance = random.Random(os.environ.get("XBUS_TEST_SEED", str(time.time_ns())))
    applied_at_kill: list[int] = []
    inbox = "select count(*) from {schema}.xbus_inbox"
    try:
        for _ in range(KILLS):
            logins.start()
            before = applied_at_kill[-1] if applied_at_kill else 0
            deadline = time.monotonic() + 60
            while await scalar(settings, logins_schema, inbox) == before:  # wait until this instance works
                assert before < EVENTS, f"the flow ended before the kills did: applied when killed {applied_at_kill}"
                assert time.monotonic() < deadline, "a restarted service made no progress"
                await asyncio.sleep(0.05)
            await asyncio.sleep(chance.uniform(0.0, 0.3))  # then strike mid-flow
            logins.kill()
            applied_at_kill.append(await scalar(settings, logins_schema, inbox))
        assert all(0 < applied < EVENTS for applied in applied_at_kill), f"kills outside the flow: {applied_at_kill}"
        logins.start()
        await wait_for(settings, logins_schema, "select count(*) from {schema}.xbus_inbox", EVENTS, timeout=180)
        await wait_for(
            settings, logins_schema, "select count(*) from {schema}.xbus_outbox where sent_at is null", 0, 60
        )
        await wait_for(settings, downstream_schema, "select count(*) from {schema}.provisioned", EVENTS, timeout=120)
        assert logins.stop() == 0
        assert downstream.stop() == 0
    finally:
        for service in (logins, downstream):
            if service.process and service.process.poll() is None:
                service.process.kill()

    connection = await asyncpg.connect(settings.database_url or "")
    try:
        rows = await connection.fetch(f"select login_id, username, display_name, status from {logins_schema}.logins")
        assert {(r["login_id"], r["username"], r["display_name"], r["status"]) for r in rows} == {
            (e.login_id, e.username, e.display_name, "active") for e in events
        }
        assert await connection.fetchval(f"select count(*) from {logins_schema}.xbus_dead_letters") == 0
        times = await connection.fetch(
            f"select times, count(*) as n from {downstream_schema}.provisioned group by times"
        )
        assert {r["times"]: r["n"] for r in times} == {1: EVENTS}
    finally:
        await connection.close()
    print(f"applied when killed: {applied_at_kill}")
    follow_ups = await read_all(settings, "xosp.authentication.events")
    assert len({f.envelope.id for f in follow_ups}) == EVENTS  # every follow-up published (some perhaps twice)
