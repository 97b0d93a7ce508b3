"""`xbus replay` on the real broker and database: plans, the refusal of an active group, a replay
to a point in time, and replay-aware handlers after a rebuild and into live state."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.runtime.replay_marks import read_replay_marks
from infrastructure.errors import XbusError
from infrastructure.groups import GroupActive, commit_offsets, committed_offsets, describe_group, partitions_of_topics
from infrastructure.kafka_clients import admin_client, client_options, plain_consumer
from infrastructure.offsets import log_end_offsets
from infrastructure.settings import Settings
from producers import Published
from tests.conftest import Stack, XbusCli
from tests.integration.test_groups import joined, publish, users
from tests.support.replay_aware_service import REPLAY_AWARE
from tests.support.service_under_test import ServiceUnderTest
from xbus.replay.execute import execute_replay, plan_replay
from xbus.replay.plan import Mode, ModeKind, parse_mode, parse_selection

pytestmark = pytest.mark.integration

EARLIEST = Mode(ModeKind.TO_EARLIEST)


async def users_partitions(settings: Settings) -> list[TopicPartition]:
    async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
        return await partitions_of_topics(admin, [settings.topic("xosp.users")])


async def commit_at_end(settings: Settings, group: str) -> dict[TopicPartition, int]:
    """The group has read everything in xosp.users so far (as a consumer that is caught up)."""
    async with plain_consumer(settings, settings.kafka_bootstrap or "") as consumer:
        ends = await log_end_offsets(consumer, await users_partitions(settings))
    await commit_offsets(settings, settings.kafka_bootstrap or "", group, ends)
    return ends


async def committed(settings: Settings, group: str) -> dict[TopicPartition, int | None]:
    async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
        return await committed_offsets(admin, group, await users_partitions(settings))


async def read_as(settings: Settings, group: str) -> list[str]:
    """Event ids a consumer of ``group`` reads from the group's committed offsets to the log end."""
    partitions = await users_partitions(settings)
    async with plain_consumer(settings, settings.kafka_bootstrap or "") as probe:
        ends = await log_end_offsets(probe, partitions)
    consumer = AIOKafkaConsumer(
        **client_options(settings, settings.kafka_bootstrap or ""), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(partitions)  # positions start at the group's committed offsets
        ids: list[str] = []
        deadline = time.monotonic() + 20
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "the group's events were not read within 20 s"
            for records in (await consumer.getmany(timeout_ms=200)).values():
                ids += [
                    dict(r.headers)["ce_id"].decode()
                    for r in records
                    if r.offset < ends[TopicPartition(r.topic, r.partition)]
                ]
        return ids
    finally:
        await consumer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.1)


def per_partition(published: Iterable[Published]) -> Counter[int]:
    return Counter(p.partition for p in published)


async def test_replay_to_a_datetime_re_reads_exactly_the_events_after_it(topics: Settings, stack: Stack) -> None:
    settings = topics
    group = settings.group("xbus.reporting")
    await publish(settings, users(30))
    await asyncio.sleep(0.05)
    at = dt.datetime.now(dt.UTC)
    await asyncio.sleep(0.05)
    second = await publish(settings, users(20))
    await commit_at_end(settings, group)
    mode = parse_mode(to_datetime=at.replace(tzinfo=None).isoformat())  # naive: UTC

    plan = await plan_replay(settings, stack.endpoints, group, mode)
    assert {p.tp.partition: p.re_read for p in plan.partitions if p.re_read} == per_partition(second)
    assert (plan.re_read, plan.skipped, plan.service) == (20, 0, None)

    done = await execute_replay(settings, stack.endpoints, group, mode)
    assert done.marks == {}  # no xbus service reads with this group: nobody to tell
    assert sorted(await read_as(settings, group)) == sorted(p.event_id for p in second)


async def test_plans_of_each_mode_change_nothing(topics: Settings, stack: Stack, xbus: XbusCli) -> None:
    settings = topics
    group = settings.group("xbus.reporting")
    published = await publish(settings, users(40))
    ends = per_partition(published)  # a new topic: each partition holds what we published
    halfway = {tp: ends[tp.partition] // 2 for tp in await users_partitions(settings)}
    await commit_offsets(settings, settings.kafka_bootstrap or "", group, halfway)

    async def plan(mode: Mode, *selections: str) -> dict[int, tuple[int | None, int, int, int]]:
        made = await plan_replay(settings, stack.endpoints, group, mode, [parse_selection(s) for s in selections])
        return {p.tp.partition: (p.new, p.re_read, p.skipped, p.log_end) for p in made.partitions}

    at = {tp.partition: offset for tp, offset in halfway.items()}
    assert await plan(EARLIEST) == {p: (0, at[p], 0, ends[p]) for p in at}
    assert await plan(Mode(ModeKind.TO_LATEST)) == {p: (ends[p], 0, ends[p] - at[p], ends[p]) for p in at}
    assert await plan(Mode(ModeKind.SHIFT_BY, -2)) == {p: (max(at[p] - 2, 0), min(at[p], 2), 0, ends[p]) for p in at}
    assert await plan(Mode(ModeKind.SHIFT_BY, 1000)) == {p: (ends[p], 0, ends[p] - at[p], ends[p]) for p in at}
    to_one = await plan(Mode(ModeKind.TO_OFFSET, 1))
    assert to_one == {p: (min(1, ends[p]), max(at[p] - 1, 0), max(min(1, ends[p]) - at[p], 0), ends[p]) for p in at}
    assert set(await plan(EARLIEST, "xosp.users:0,3")) == {0, 3}
    with pytest.raises(XbusError, match=rf"no such topic: {settings.topic('xosp.nope')}"):
        await plan(EARLIEST, "xosp.nope")
    with pytest.raises(XbusError, match="has no partition 12"):
        await plan(EARLIEST, "xosp.users:12")

    shown = await asyncio.to_thread(xbus, "replay", group, "--to-earliest")
    assert shown.code == 0, shown.stderr
    assert f"{sum(at.values())} events re-read, 0 skipped, on 12 partitions" in shown.stdout
    assert "Nothing was changed (dry run)" in shown.stdout
    two_modes = await asyncio.to_thread(xbus, "replay", group, "--to-earliest", "--to-latest")
    assert two_modes.code == 2
    assert "give exactly one of --to-earliest" in two_modes.stderr
    assert await committed(settings, group) == halfway


async def test_replay_refuses_an_active_group_naming_its_member(topics: Settings, stack: Stack, xbus: XbusCli) -> None:
    settings = topics
    group = settings.group("xbus.reporting")
    await publish(settings, users(5))
    before = await commit_at_end(settings, group)

    async with joined(settings, group, [settings.topic("xosp.users")]):
        async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
            [member] = (await describe_group(admin, group)).members
        with pytest.raises(GroupActive, match=member.member_id):
            await execute_replay(settings, stack.endpoints, group, EARLIEST)
        refused = await asyncio.to_thread(xbus, "replay", group, "--to-earliest", "--execute")

    assert refused.code == 1
    assert member.member_id in refused.stderr
    assert "active member" in refused.stderr
    assert await committed(settings, group) == before


async def test_replay_aware_handlers_rebuild_state_without_repeating_side_effects(
    service_settings: Settings, stack: Stack
) -> None:
    # a short session: the group settles quickly when the service joins and leaves
    settings = service_settings.model_copy(
        update={"consumer_session_timeout_ms": 3000, "consumer_heartbeat_interval_ms": 1000}
    )
    group = settings.group(REPLAY_AWARE.group_id)
    schema = settings.db_schema(REPLAY_AWARE.name)
    events = users(20)
    db = await asyncpg.connect(settings.database_url or "", server_settings={"search_path": schema})

    async def count(table: str) -> int:
        return int(await db.fetchval(f"select count(*) from {table}"))

    async def stopped() -> bool:
        async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
            return not (await describe_group(admin, group)).active

    async def replay() -> dict[TopicPartition, int]:
        await eventually(stopped, "the stopped service leaves its group", timeout=10)
        done = await execute_replay(settings, stack.endpoints, group, EARLIEST, extra_services=[REPLAY_AWARE])
        assert done.plan.service == REPLAY_AWARE.name
        return done.marks

    try:
        async with ServiceUnderTest(REPLAY_AWARE, settings) as service:
            await service.handle(*events)
        assert (await count("logins"), await count("side_effects")) == (20, 20)

        await db.execute("truncate logins, xbus_inbox")  # a rebuild from scratch
        marks = await replay()
        assert sum(marks.values()) == 20  # up to where each partition had been read, from offset 0
        assert await read_replay_marks(db) == {(tp.topic, tp.partition): until for tp, until in marks.items()}
        async with ServiceUnderTest(REPLAY_AWARE, settings):
            await eventually(lambda: _all_read(db, 20), "the replay rebuilds the logins and clears the marks")
        assert await count("side_effects") == 20  # none repeated

        await replay()  # into live state: the inbox knows every event
        async with ServiceUnderTest(REPLAY_AWARE, settings) as service:
            await eventually(lambda: _true(service.runner.stats.duplicates == 20), "the replay reads every event")
            await eventually(lambda: _all_read(db, 20), "the marks are cleared")
            assert service.runner.stats.applied == 0
        assert (await count("logins"), await count("side_effects")) == (20, 20)
    finally:
        await db.close()


async def _all_read(db: asyncpg.Connection, logins: int) -> bool:
    return await db.fetchval("select count(*) from logins") == logins and not await read_replay_marks(db)


async def _true(value: bool) -> bool:
    return value
