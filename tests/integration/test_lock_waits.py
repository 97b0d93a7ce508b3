"""A group batch waiting for another batch's locks is split only when that batch is stuck (issue 18).

Every event of this logins service takes one lock, so the batches that follow a held one all wait
for it. While the holder completes statements, the wait is its turn coming: no rollback, no redo.
When the holder is stuck in its handler, a group batch behind it goes solo as before, so that a
stuck event holds back no partition it does not share an entity with."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from prometheus_client import REGISTRY

from consumers.runtime import Service, UnitOfWork
from consumers.runtime.lock_waits import waiting_on_progress
from consumers.runtime.runner import ServiceRunner
from infrastructure.endpoints import load_catalogue
from infrastructure.settings import Settings
from schemas.users import UserCreated
from tests.integration.test_health import _applied
from tests.integration.test_runtime import eventually, publish, user
from tests.support.logins_service import LOGINS

pytestmark = pytest.mark.integration

SPLIT_SECONDS = 0.5
NO_PROGRESS = {"service": LOGINS.name, "reason": "no_progress"}


def one_lock_logins(hold: Callable[[UnitOfWork], Awaitable[None]], entered: asyncio.Event) -> Service:
    """The logins service with one lock for every event; the user named "first" runs ``hold``
    before it is applied."""

    async def user_created(event: UserCreated, unit: UnitOfWork) -> None:
        if event.username == "first":
            entered.set()
            await hold(unit)
        await LOGINS.handlers[UserCreated](event, unit)

    return Service(
        name=LOGINS.name,
        handlers={UserCreated: user_created},
        migrations=LOGINS.migrations,
        locks=lambda event, envelope: ["everyone"],
    )


def redone() -> float:
    return REGISTRY.get_sample_value("xbus_batches_redone_total", NO_PROGRESS) or 0.0


async def run_behind_first(
    settings: Settings, service: Service, entered: asyncio.Event, while_held: Callable[[], Awaitable[None]]
) -> float:
    """Publish "first", then, once its handler holds the lock, 40 others over the topic's
    partitions (those beside first's partition start as one group batch, which waits for the
    lock); run ``while_held``, wait until all are applied, and return the batches redone."""
    settings = settings.model_copy(update={"batch_split_seconds": SPLIT_SECONDS})
    runner = ServiceRunner(
        service, settings, load_catalogue(settings), settings.kafka_bootstrap or "", settings.database_url or ""
    )
    await runner.migrate()
    before = redone()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await publish(settings, [user("first")])
        await asyncio.wait_for(entered.wait(), timeout=60)
        await publish(settings, [user(f"w{i:02d}") for i in range(40)])
        await while_held()
        await eventually(lambda: _applied(settings, 41))
    finally:
        stop.set()
        await task
    return redone() - before


async def test_a_batch_waiting_for_the_locks_of_a_progressing_batch_is_not_rolled_back(
    service_settings: Settings,
) -> None:
    entered = asyncio.Event()

    async def progress_for_three_seconds(unit: UnitOfWork) -> None:
        for _ in range(30):  # six times the split limit, a statement every 0.1 s
            await unit.connection.execute("select 1")
            await asyncio.sleep(0.1)

    async def nothing() -> None:
        return None

    service = one_lock_logins(progress_for_three_seconds, entered)
    assert await run_behind_first(service_settings, service, entered, nothing) == 0


async def test_a_batch_waiting_for_the_locks_of_a_stuck_batch_goes_solo(service_settings: Settings) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def stuck(unit: UnitOfWork) -> None:
        await release.wait()

    async def release_after_a_split() -> None:
        await asyncio.sleep(SPLIT_SECONDS * 6)
        release.set()

    service = one_lock_logins(stuck, entered)
    assert await run_behind_first(service_settings, service, entered, release_after_a_split) >= 1


async def test_a_batch_whose_statement_runs_is_progressing_until_it_has_been_quiet_for_the_limit(
    service_settings: Settings,
) -> None:
    """A batch's watch wakes late when Python work no statement interrupted held the event loop
    (a batch of thousands of records parsed on a busy core); by then the batch has sent its next
    statement. PostgreSQL says it started: that is progress, though no lock is waited for. Once
    the batch has been quiet for the limit, it is not."""
    url = service_settings.database_url or ""
    watching = await asyncpg.create_pool(url, min_size=0, max_size=1)
    batch = await asyncpg.connect(url)
    try:
        running = asyncio.create_task(batch.execute("select pg_sleep($1)", SPLIT_SECONDS * 2))
        await asyncio.sleep(SPLIT_SECONDS / 2)
        assert await waiting_on_progress(watching, batch.get_server_pid(), SPLIT_SECONDS)
        await running
        await asyncio.sleep(SPLIT_SECONDS * 1.5)
        assert not await waiting_on_progress(watching, batch.get_server_pid(), SPLIT_SECONDS)
    finally:
        await batch.close()
        await watching.close()
