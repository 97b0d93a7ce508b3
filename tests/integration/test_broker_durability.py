"""Apache Kafka keeps what it acknowledged: records, topics, consumer groups and committed offsets
survive `xbus stack down && xbus stack up` and a `kill -9` of the broker, and services, replay
and rebuild carry on across either.

Each test runs an embedded Apache Kafka of its own (the session's broker is shared by every
test, so it is never stopped or killed), with the session's PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from infrastructure.embedded.processes import pid_alive
from infrastructure.embedded.stack import EmbeddedStack
from infrastructure.endpoints import connect
from infrastructure.groups import committed_offsets, partitions_of_topics
from infrastructure.kafka_clients import admin_client
from infrastructure.settings import EmbeddedBrokerChoice, Settings, load_settings
from producers import open_publisher
from schemas import Event
from schemas.users import UserCreated, UserUpdated
from tests.conftest import ROOT, Stack
from tests.integration.test_publisher import read_all
from tests.support.logins_service import LOGINS
from tests.support.service_process import ServiceProcess, process_env, scalar, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.broker("kafka", reason="Tansu keeps everything in memory: a restart is a reset"),
]

SERVICE = "tests.support.logins_service:LOGINS"
LOGINS_COUNT = 40
UPDATES_PER_LOGIN = 4
INBOX = "select count(*) from {schema}.xbus_inbox"
CHANGES = "select coalesce(sum(changes), 0) from {schema}.logins"
DEAD_LETTERS = "select count(*) from {schema}.xbus_dead_letters"


@dataclass
class OwnKafka:
    """An embedded Apache Kafka of one test: ``restart`` is what any `xbus` command does when it
    finds the broker gone, ``settings`` point every client (and `xbus run`) at its fixed port."""

    base: Settings
    settings: Settings
    stack: EmbeddedStack

    async def up(self) -> str:
        return (await connect(self.base)).kafka_bootstrap

    @property
    def pid(self) -> int:
        pid = self.stack.read_state().kafka_pid
        assert pid
        return pid


@pytest.fixture
async def own_kafka(stack: Stack, tmp_path: Path, prefix: str) -> AsyncIterator[OwnKafka]:
    base = load_settings(
        data_dir=tmp_path / "xbus",
        database_url=stack.endpoints.database_url,
        embedded_broker=EmbeddedBrokerChoice.KAFKA,
        topic_prefix=prefix,
        db_schema_prefix=f"d{uuid.uuid4().hex[:8]}_",
        source="tests",
    )
    own = OwnKafka(base, base, EmbeddedStack(base.data_dir))
    own.settings = base.model_copy(update={"kafka_bootstrap": await own.up()})
    try:
        yield own
    finally:
        own.stack.down()


def updates(first_round: int, rounds: int) -> list[Event]:
    return [
        UserUpdated(login_id=f"login-{n}", display_name=f"name {round_}")
        for round_ in range(first_round, first_round + rounds)
        for n in range(LOGINS_COUNT)
    ]


def creations() -> list[Event]:
    return [
        UserCreated(login_id=f"login-{n}", username=f"user{n}", email=f"u{n}@example.com", display_name=f"U {n}")
        for n in range(LOGINS_COUNT)
    ]


async def publish(settings: Settings, events: Sequence[Event]) -> None:
    async with open_publisher(settings) as publisher:
        assert publisher.idempotent
        results = await publisher.publish_many(events)
    assert all(hasattr(result, "offset") for result in results), results


async def group_offsets(settings: Settings) -> dict[TopicPartition, int | None]:
    async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
        partitions = await partitions_of_topics(admin, [settings.topic("xosp.users")])
        return await committed_offsets(admin, settings.group(LOGINS.group_id), partitions)


async def assert_exact_effects(settings: Settings, updates_applied: int) -> None:
    """Every event applied once: one inbox row each, each update counted once, nothing dead-lettered,
    one follow-up per login on the service's topic."""
    schema = settings.db_schema(LOGINS.name)
    assert await scalar(settings, schema, INBOX) == LOGINS_COUNT + updates_applied
    assert await scalar(settings, schema, CHANGES) == updates_applied
    assert await scalar(settings, schema, DEAD_LETTERS) == 0
    follow_ups = await read_all(settings, "xosp.authentication.events")
    assert len({record.envelope.id for record in follow_ups}) == LOGINS_COUNT


def xbus(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**process_env(settings), "XBUS_CONSUMER_SESSION_TIMEOUT_MS": "3000", "XBUS_METRICS_PORT": "0"}
    return subprocess.run(
        [sys.executable, "-m", "xbus", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )


async def test_records_groups_and_offsets_survive_stack_down_and_up(own_kafka: OwnKafka, tmp_path: Path) -> None:
    settings = own_kafka.settings
    schema = settings.db_schema(LOGINS.name)
    await publish(settings, [*creations(), *updates(0, UPDATES_PER_LOGIN)])
    service = ServiceProcess(SERVICE, settings, tmp_path / "logins.log")
    service.start()
    await wait_for(settings, schema, INBOX, LOGINS_COUNT * (1 + UPDATES_PER_LOGIN), timeout=120)
    assert service.stop() == 0
    committed = await group_offsets(settings)
    assert sum(offset or 0 for offset in committed.values()) == LOGINS_COUNT * (1 + UPDATES_PER_LOGIN)

    stopped_pid = own_kafka.pid
    assert own_kafka.stack.down() == ["kafka"]
    assert not pid_alive(stopped_pid)
    assert await own_kafka.up() == settings.kafka_bootstrap  # the same port: clients reconnect

    assert len(await read_all(settings, "xosp.users")) == LOGINS_COUNT * (1 + UPDATES_PER_LOGIN)
    assert await group_offsets(settings) == committed
    await publish(settings, updates(UPDATES_PER_LOGIN, 1))
    service.start()
    await wait_for(settings, schema, INBOX, LOGINS_COUNT * (2 + UPDATES_PER_LOGIN), timeout=120)
    assert service.stop() == 0
    await assert_exact_effects(settings, LOGINS_COUNT * (UPDATES_PER_LOGIN + 1))

    # replay and rebuild read the topics as they were before the restart
    replayed = xbus(settings, "replay", settings.group(LOGINS.group_id), "--to-earliest", "--execute", "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert {tp: 0 for tp in committed} == await group_offsets(settings)
    rebuilt = xbus(settings, "rebuild", SERVICE)
    total = LOGINS_COUNT * (2 + UPDATES_PER_LOGIN)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"{total} events read, {total} applied" in rebuilt.stdout, rebuilt.stdout
    assert await scalar(settings, schema, CHANGES) == LOGINS_COUNT * (UPDATES_PER_LOGIN + 1)


async def test_a_broker_killed_mid_flow_keeps_every_acknowledged_record_and_offset(
    own_kafka: OwnKafka, tmp_path: Path
) -> None:
    settings = own_kafka.settings
    schema = settings.db_schema(LOGINS.name)
    await publish(settings, [*creations(), *updates(0, UPDATES_PER_LOGIN)])
    total = LOGINS_COUNT * (2 + UPDATES_PER_LOGIN)
    service = ServiceProcess(SERVICE, settings, tmp_path / "logins.log")
    service.start()
    try:
        deadline = time.monotonic() + 120
        while await scalar(settings, schema, INBOX) < LOGINS_COUNT:  # the service is under way
            assert time.monotonic() < deadline, "the service applied nothing"
            await asyncio.sleep(0.05)
        killed = own_kafka.pid
        os.kill(killed, signal.SIGKILL)
        while pid_alive(killed):
            await asyncio.sleep(0.02)
        assert await own_kafka.up() == settings.kafka_bootstrap
        assert own_kafka.pid != killed
        assert len(await read_all(settings, "xosp.users")) == LOGINS_COUNT * (1 + UPDATES_PER_LOGIN)
        await publish(settings, updates(UPDATES_PER_LOGIN, 1))
        await wait_for(settings, schema, INBOX, LOGINS_COUNT * (2 + UPDATES_PER_LOGIN), timeout=180)
        # A commit refused while the group re-formed after the restart is made good: the member
        # re-reads from the last commit it made (the inbox skips what it applied) and commits again.
        deadline = time.monotonic() + 120
        while sum(offset or 0 for offset in (await group_offsets(settings)).values()) < total:
            assert time.monotonic() < deadline, f"committed {await group_offsets(settings)}"
            await asyncio.sleep(0.2)
    finally:
        assert service.stop() == 0
    await assert_exact_effects(settings, LOGINS_COUNT * (UPDATES_PER_LOGIN + 1))
