"""Consumer lag on the real stack: lag and status follow a service stopped and restarted, time lag
is the age of the first unconsumed record, a reset to earliest is a REWIND, business lag is the
oldest open provisioning flow's age, and `xbus lag --json` shows it all."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import TopicPartition

from consumers.provisioning.service import SERVICE as TRACKER
from consumers.runtime.migrations import load_migrations, migrate
from infrastructure.brokers import BrokerKind
from infrastructure.groups import commit_offsets
from infrastructure.kafka_clients import topic_reader
from infrastructure.reader import read_topic
from infrastructure.settings import Settings
from producers import Published, open_publisher
from schemas.users import UserCreated
from tests.conftest import ROOT, Stack, XbusCli
from tests.support.logins_service import LOGINS
from tests.support.service_under_test import ServiceUnderTest, module_settings
from xbus.lag.model import GroupReport, Status
from xbus.lag.watch import LagOptions, LagWatcher

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

USERS = "xosp.users"
#: Seconds between samples: a window of 3 spans under a second.
INTERVAL = 0.3


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(stack: Stack) -> Settings:
    return await module_settings(stack)


def user(login: str) -> UserCreated:
    return UserCreated(login_id=login, username=login, email=f"{login}@example.com", display_name=login)


async def publish(settings: Settings, *events: UserCreated) -> list[Published]:
    async with open_publisher(settings) as publisher:
        results = await publisher.publish_many(list(events))
    assert all(isinstance(r, Published) for r in results), results
    return [r for r in results if isinstance(r, Published)]


async def report_until(
    watcher: LagWatcher, group: str, wanted: Callable[[GroupReport], bool], timeout: float = 30.0
) -> GroupReport:
    deadline = time.monotonic() + timeout
    while True:
        report = await watcher.report()
        found = next((g for g in report.groups if g.group == group), None)
        if found is not None and wanted(found):
            return found
        assert time.monotonic() < deadline, f"{group} never got there: {found}"
        await asyncio.sleep(INTERVAL)


def users_lag(group: GroupReport, settings: Settings) -> int:
    return sum(p.lag.lag for p in group.partitions if p.lag.topic == settings.topic(USERS))


@pytest_asyncio.fixture(loop_scope="module")
async def watcher(world: Settings, stack: Stack) -> AsyncIterator[LagWatcher]:
    async with LagWatcher(world, stack.endpoints, LagOptions(window=3)) as made:
        yield made


async def test_lag_rises_while_a_service_is_stopped_and_clears_after_restart(
    world: Settings, watcher: LagWatcher
) -> None:
    group = world.group(LOGINS.group_id)
    async with ServiceUnderTest(LOGINS, world) as service:
        await service.handle(user(f"before-{uuid.uuid4().hex[:6]}"))
        ok = await report_until(watcher, group, lambda g: g.status is Status.OK and g.lag == 0)
    assert any(p.lag.topic == world.topic(USERS) and p.lag.committed for p in ok.partitions)

    waiting = [user(f"while-stopped-{i}-{uuid.uuid4().hex[:6]}") for i in range(6)]
    await publish(world, *waiting)
    stuck = await report_until(watcher, group, lambda g: g.status in (Status.STALL, Status.STOP))
    assert users_lag(stuck, world) == len(waiting)
    assert stuck.lag_seconds > 0
    lagging = [p for p in stuck.partitions if p.lag.lag]
    assert {p.status for p in lagging} <= {Status.STALL, Status.STOP}

    async with ServiceUnderTest(LOGINS, world):
        back = await report_until(watcher, group, lambda g: g.status is Status.OK and g.lag == 0)
    assert users_lag(back, world) == 0
    assert back.lag_seconds == 0


async def test_time_lag_is_the_age_of_the_first_unconsumed_record(world: Settings, watcher: LagWatcher) -> None:
    group = world.group(f"lagtest.timed.{uuid.uuid4().hex[:6]}")
    login = f"timed-{uuid.uuid4().hex[:6]}"
    [older] = await publish(world, user(login))
    await asyncio.sleep(1.0)
    [first_unconsumed] = await publish(world, user(login))  # same key: same partition, one second later
    tp = TopicPartition(first_unconsumed.topic, first_unconsumed.partition)
    await commit_offsets(world, world.kafka_bootstrap or "", group, {tp: first_unconsumed.offset})
    await asyncio.sleep(2.0)

    report = await watcher.report()
    [partition] = [p for g in report.groups if g.group == group for p in g.partitions]
    timestamps = await record_timestamps(world, tp)
    expected = report.taken_at - timestamps[first_unconsumed.offset] / 1000
    assert partition.lag.lag == 1
    assert partition.lag.lag_seconds == pytest.approx(expected, abs=1.0)
    assert expected >= 2.0
    assert report.taken_at - timestamps[older.offset] / 1000 - partition.lag.lag_seconds >= 0.9  # not the older one


async def record_timestamps(settings: Settings, tp: TopicPartition) -> dict[int, int]:
    async with topic_reader(settings, settings.kafka_bootstrap or "") as (_admin, consumer):
        return {event.offset: event.timestamp_ms async for event in read_topic(consumer, [tp])}


async def test_a_reset_to_the_log_start_is_a_rewind(world: Settings, stack: Stack) -> None:
    group = world.group(f"lagtest.rewound.{uuid.uuid4().hex[:6]}")
    published = await publish(world, *(user(f"rewind-{uuid.uuid4().hex[:6]}") for _ in range(3)))
    tp = TopicPartition(published[0].topic, published[0].partition)
    end = max(p.offset for p in published if p.partition == tp.partition) + 1
    async with LagWatcher(world, stack.endpoints, LagOptions(groups=(group,), window=3)) as watcher:
        await commit_offsets(world, world.kafka_bootstrap or "", group, {tp: end})
        before = await report_until(watcher, group, lambda g: g.lag == 0, timeout=10)
        assert before.status is Status.OK
        start = before.partitions[0].lag.log_start
        await commit_offsets(world, world.kafka_bootstrap or "", group, {tp: start})
        after = (await watcher.report()).groups
    [rewound] = after
    assert rewound.status is Status.REWIND
    [partition] = rewound.partitions
    assert partition.lag.committed == start
    assert partition.lag.lag == end - start
    assert f"from {end} to {start}" in partition.reason


async def test_business_lag_is_the_age_of_the_oldest_open_flow_per_kind(world: Settings, stack: Stack) -> None:
    settings = world.model_copy(update={"db_schema_prefix": f"b{uuid.uuid4().hex[:8]}_"})
    async with LagWatcher(settings, stack.endpoints, LagOptions(groups=("none-such",))) as watcher:
        assert (await watcher.report()).business == {}  # no tracker schema yet
        schema = settings.db_schema(TRACKER.name)
        connection = await asyncpg.connect(settings.database_url or "")
        try:
            await migrate(connection, schema, load_migrations(TRACKER.migrations))
            await connection.executemany(
                f'insert into "{schema}".flows (flow_id, kind, entity_id, started_by, correlation_id, state, '
                "started_at) values ($1, $2, $3, 'xosp.user.created.v1', $1, $4, now() - make_interval(secs => $5))",
                [
                    ("f-open-old", "user", "u1", "open", 90.0),
                    ("f-open-new", "user", "u2", "open", 10.0),
                    ("f-done-older", "user", "u3", "completed", 500.0),
                    ("f-account", "account", "o:a", "open", 30.0),
                ],
            )
            report = await watcher.report()
        finally:
            await connection.execute(f'drop schema "{schema}" cascade')
            await connection.close()
    assert report.business.keys() == {"user", "operator", "account", "exchange"}
    assert report.business["user"] == pytest.approx(90, abs=2)
    assert report.business["account"] == pytest.approx(30, abs=2)
    assert report.business["operator"] is None and report.business["exchange"] is None


async def test_xbus_lag_json_shows_the_groups(world: Settings, stack: Stack, xbus: XbusCli) -> None:
    group = world.group(f"lagtest.cli.{uuid.uuid4().hex[:6]}")
    [published] = await publish(world, user(f"cli-{uuid.uuid4().hex[:6]}"))
    tp = TopicPartition(published.topic, published.partition)
    await commit_offsets(world, world.kafka_bootstrap or "", group, {tp: published.offset})
    env = {  # the session's embedded stack (XBUS_DATA_DIR), this module's topics and schemas
        "XBUS_TOPIC_PREFIX": world.topic_prefix,
        "XBUS_DB_SCHEMA_PREFIX": world.db_schema_prefix,
    }
    done = await asyncio.to_thread(
        xbus, "lag", "--json", "--group", group, "--samples", "2", "--interval", "0.2", env=env
    )
    assert done.code == 0, done.stderr
    document = json.loads(done.stdout)
    [shown] = document["groups"]
    assert shown["group"] == group
    assert shown["status"] == Status.STOP.name  # nobody consumes it, nothing committed
    [partition] = shown["partitions"]
    assert (partition["topic"], partition["partition"]) == (tp.topic, tp.partition)
    assert partition["committed"] == published.offset
    assert partition["lag"] == 1
    assert document["retention_enforced"] is (stack.endpoints.broker is BrokerKind.APACHE_KAFKA)


async def test_xbus_lag_watch_refreshes_until_interrupted(world: Settings, xbus: XbusCli) -> None:
    group = world.group(f"lagtest.watch.{uuid.uuid4().hex[:6]}")
    [published] = await publish(world, user(f"watch-{uuid.uuid4().hex[:6]}"))
    tp = TopicPartition(published.topic, published.partition)
    await commit_offsets(world, world.kafka_bootstrap or "", group, {tp: published.offset})
    env = {**xbus.env, "XBUS_TOPIC_PREFIX": world.topic_prefix, "XBUS_DB_SCHEMA_PREFIX": world.db_schema_prefix}
    watching = subprocess.Popen(
        [sys.executable, "-m", "xbus", "lag", "--watch", "--group", group, "--interval", "0.2", "--window", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    await asyncio.sleep(12)  # start-up, then a refresh every 0.2 s: the status becomes STOP once judged
    watching.send_signal(signal.SIGINT)  # how --watch ends
    stdout, stderr = await asyncio.to_thread(watching.communicate, timeout=30)
    assert watching.returncode == 0, stderr
    assert group in stdout
    assert "STOP" in stdout  # judged over more than one sample: it refreshed
