"""The runtime on the real broker and database: exactly-once effects, follow-ups, dead letters, groups."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from consumers.runtime.runner import ServiceRunner
from infrastructure.endpoints import load_catalogue
from infrastructure.kafka_clients import client_options
from infrastructure.settings import Settings
from producers import Outgoing, open_publisher
from schemas.users import UserCreated
from tests.integration.test_publisher import read_all
from tests.support.logins_service import LOGINS

pytestmark = pytest.mark.integration


async def runner(settings: Settings) -> ServiceRunner:
    """A runner whose schema is migrated, so that tests can query it before it has consumed."""
    made = ServiceRunner(
        LOGINS, settings, load_catalogue(settings), settings.kafka_bootstrap or "", settings.database_url or ""
    )
    await made.migrate()
    return made


def user(login: str) -> UserCreated:
    return UserCreated(login_id=login, username=login, email=f"{login}@example.com", display_name=login)


async def publish(settings: Settings, items: list) -> None:
    async with open_publisher(settings) as publisher:
        results = await publisher.publish_many(items)
    assert all(hasattr(r, "offset") for r in results), results


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def count(settings: Settings, query: str) -> int:
    connection = await asyncpg.connect(settings.database_url or "")
    try:
        await connection.execute(f"set search_path to {settings.db_schema(LOGINS.name)}")
        return int(await connection.fetchval(query))
    finally:
        await connection.close()


async def test_each_event_applies_once_and_each_follow_up_is_published(service_settings: Settings) -> None:
    settings = service_settings
    events = [user(f"u{i:04d}") for i in range(400)]
    ids = [str(uuid.uuid4()) for _ in events]
    # every event published twice with the same id: Kafka at-least-once, as after a producer retry
    await publish(settings, [Outgoing(e, event_id=i) for e, i in zip(events, ids, strict=True)] * 2)
    stop = asyncio.Event()
    the_runner = await runner(settings)
    task = asyncio.create_task(the_runner.run(stop))
    try:
        await eventually(lambda: _settled(settings, 400))
        await eventually(lambda: _true(the_runner.stats.duplicates >= 400))  # the second copies are read too
    finally:
        stop.set()
        await task
    assert await count(settings, "select count(*) from logins") == 400
    assert await count(settings, "select count(*) from xbus_inbox") == 400
    assert the_runner.stats.duplicates == 400
    follow_ups = await read_all(settings, "xosp.authentication.events")
    assert len(follow_ups) == 400
    assert {f.envelope.causation_id for f in follow_ups} == set(ids)
    assert {f.key for f in follow_ups} == {e.login_id for e in events}


async def test_records_polled_together_from_many_partitions_share_one_transaction(service_settings: Settings) -> None:
    """One transaction per poll, not per partition (runner.py): events waiting on every partition
    when the runner starts are applied in fewer transactions than there are partitions."""
    settings = service_settings
    events = [user(f"g{i:03d}") for i in range(48)]
    await publish(settings, events)
    stop = asyncio.Event()
    the_runner = await runner(settings)
    task = asyncio.create_task(the_runner.run(stop))
    try:
        await eventually(lambda: _settled(settings, len(events)))
    finally:
        stop.set()
        await task
    partitions = await count(settings, "select count(distinct partition) from xbus_inbox")
    transactions = await count(settings, "select count(distinct applied_at) from xbus_inbox")  # now(): its start
    assert partitions >= 6
    assert transactions == the_runner.stats.batches < partitions


async def _true(value: bool) -> bool:
    return value


async def _settled(settings: Settings, expected: int) -> bool:
    applied = await count(settings, "select count(*) from xbus_inbox")
    unsent = await count(settings, "select count(*) from xbus_outbox where sent_at is null")
    return applied == expected and unsent == 0


async def test_a_poison_record_goes_to_the_dead_letter_topic_and_the_partition_moves_on(
    service_settings: Settings,
) -> None:
    settings = service_settings
    producer = AIOKafkaProducer(**client_options(settings, settings.kafka_bootstrap or ""), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topic("xosp.users"),
            b"not json",
            key=b"u1",
            partition=0,
            headers=[("ce_type", b"xosp.user.created.v1")],
        )
    finally:
        await producer.stop()
    await publish(settings, [user("u2"), user("u3")])
    stop = asyncio.Event()
    task = asyncio.create_task((await runner(settings)).run(stop))
    try:
        await eventually(lambda: _dead_letter_sent(settings))
        await eventually(lambda: _settled(settings, 2))
    finally:
        stop.set()
        await task
    [dead] = await read_all(settings, "xosp.authentication.dlq")
    assert dead.key == "u1"
    assert dead.headers["xbus_dlq_error_type"] == "EnvelopeError"
    assert "missing CloudEvents header" in dead.headers["xbus_dlq_error_message"]
    assert dead.headers["xbus_dlq_topic"] == settings.topic("xosp.users")
    assert (dead.headers["xbus_dlq_partition"], dead.headers["xbus_dlq_offset"]) == ("0", "0")


async def _dead_letter_sent(settings: Settings) -> bool:
    return await count(settings, "select count(*) from xbus_dead_letters") == 1


async def test_three_instances_split_the_partitions_and_apply_each_event_once(service_settings: Settings) -> None:
    settings = service_settings
    stops = [asyncio.Event() for _ in range(3)]
    runners = [await runner(settings) for _ in range(3)]
    tasks = [asyncio.create_task(r.run(s)) for r, s in zip(runners, stops, strict=True)]
    try:
        await publish(settings, [user(f"a{i}") for i in range(600)])
        await eventually(lambda: _at_least(settings, 200))
        stops[0].set()  # one instance leaves: its partitions move to the others
        await tasks[0]
        await publish(settings, [user(f"b{i}") for i in range(600)])
        await eventually(lambda: _settled(settings, 1200), timeout=90)
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
    assert await count(settings, "select count(*) from logins") == 1200
    assert sum(r.stats.applied for r in runners) == 1200
    assert sum(1 for r in runners if r.stats.applied) >= 2


async def _at_least(settings: Settings, expected: int) -> bool:
    return await count(settings, "select count(*) from xbus_inbox") >= expected
