"""Consumer groups seen from outside (infrastructure/groups.py) on the real broker: members, committed
offsets, offsets moved without joining, and which partitions a group reads."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic

from infrastructure.embedded.broker import start_broker
from infrastructure.embedded.processes import free_port, stop_process
from infrastructure.groups import (
    GroupActive,
    commit_offsets,
    committed_offsets,
    describe_group,
    group_partitions,
    leave_group,
    membership,
    partitions_of_topics,
    require_inactive,
    stop_and_leave,
)
from infrastructure.kafka_clients import admin_client, client_options
from infrastructure.settings import Settings
from producers import Published, open_publisher
from schemas.users import UserCreated
from tests.conftest import Stack

pytestmark = pytest.mark.integration


def users(count: int) -> list[UserCreated]:
    logins = [str(uuid.uuid4()) for _ in range(count)]
    return [UserCreated(login_id=x, username=x, email=f"{x}@example.com", display_name=x) for x in logins]


async def publish(settings: Settings, events: Sequence[UserCreated]) -> list[Published]:
    async with open_publisher(settings) as publisher:
        results = await publisher.publish_many(events)
    published = [result for result in results if isinstance(result, Published)]
    assert len(published) == len(events), results
    return published


@asynccontextmanager
async def joined(settings: Settings, group: str, topics: Sequence[str]) -> AsyncIterator[AIOKafkaConsumer]:
    """A member of ``group`` subscribed to ``topics``, inside once it has its assignment. A short
    session: the embedded broker makes a joining member wait half of it, and keeps a member
    stopped in its first generation until it expires (docs/brokers.md)."""
    consumer = AIOKafkaConsumer(
        *topics,
        **client_options(settings, settings.kafka_bootstrap or ""),
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=3000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment():
            assert time.monotonic() < deadline, f"no assignment in {group} within 30 s"
            await consumer.getmany(timeout_ms=200)
        yield consumer
    finally:
        await consumer.stop()


def partitions(settings: Settings, topic: str, count: int) -> list[TopicPartition]:
    return [TopicPartition(settings.topic(topic), p) for p in range(count)]


async def test_offsets_committed_without_joining_are_read_back(topics: Settings) -> None:
    settings = topics
    group = settings.group(f"g-{uuid.uuid4().hex[:6]}")
    published = await publish(settings, users(30))
    used = sorted({TopicPartition(p.topic, p.partition) for p in published})
    chosen = {used[0]: 1, used[1]: 0}
    await commit_offsets(settings, settings.kafka_bootstrap or "", group, chosen)

    async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
        read = await committed_offsets(admin, group, partitions(settings, "xosp.users", 12))
        description = await require_inactive(admin, group)  # nobody joined: the group is empty

    assert read == {tp: chosen.get(tp) for tp in partitions(settings, "xosp.users", 12)}
    assert not description.active


async def test_an_active_group_names_its_member_and_is_refused(topics: Settings) -> None:
    settings = topics
    group = settings.group(f"g-{uuid.uuid4().hex[:6]}")
    operators = settings.topic("xosp.operators")
    async with (
        joined(settings, group, [operators]) as consumer,
        admin_client(settings, settings.kafka_bootstrap or "") as admin,
    ):
        description = await describe_group(admin, group)
        with pytest.raises(GroupActive) as refused:
            await require_inactive(admin, group)
        reads = await group_partitions(admin, description, candidates=[])
        assignment = consumer.assignment()

    [member] = description.members
    assert member.member_id
    assert member.member_id in str(refused.value)
    assert f"group {group} has 1 active member(s)" in str(refused.value)
    # the member has committed nothing: it reads the partitions it is assigned, where the broker says
    # which (Apache Kafka does; the embedded broker reports no assignments)
    assert reads == ({tp: None for tp in assignment} if description.assignment_known else {})


async def test_a_group_reads_what_it_committed_on_and_what_its_service_declares(topics: Settings) -> None:
    settings = topics
    group = settings.group(f"g-{uuid.uuid4().hex[:6]}")
    published = await publish(settings, users(5))
    committed_on = TopicPartition(published[0].topic, published[0].partition)
    await commit_offsets(settings, settings.kafka_bootstrap or "", group, {committed_on: 1})

    async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
        accounts = await partitions_of_topics(admin, [settings.topic("xosp.accounts")])
        candidates = await partitions_of_topics(admin, [settings.topic("xosp.users"), settings.topic("xosp.accounts")])
        description = await describe_group(admin, group)
        reads = await group_partitions(admin, description, candidates, declared=accounts)

    assert accounts
    assert reads == {committed_on: 1, **{tp: None for tp in accounts}}


async def test_committed_offsets_of_an_unknown_group_are_none(topics: Settings) -> None:
    settings = topics
    async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
        asked = partitions(settings, "xosp.users", 3)
        read = await committed_offsets(admin, settings.group("never-seen"), asked)
        description = await describe_group(admin, settings.group("never-seen"))
    assert read == dict.fromkeys(asked)
    assert not description.active


async def test_a_member_stopped_in_its_first_generation_leaves_the_group(topics: Settings) -> None:
    """aiokafka leaves only from generation 1; the embedded broker's first generation is 0, and
    without leaving from outside such a member stays listed until another one joins."""
    settings = topics
    bootstrap = settings.kafka_bootstrap or ""
    group = settings.group(f"g-{uuid.uuid4().hex[:6]}")
    async with joined(settings, group, [settings.topic("xosp.users")]) as consumer:
        member = membership(consumer)
    assert member is not None
    if member.generation == 0:  # the embedded broker: aiokafka's stop() left nothing
        async with admin_client(settings, bootstrap) as admin:
            assert (await describe_group(admin, group)).active
        await leave_group(settings, bootstrap, member)
    async with admin_client(settings, bootstrap) as admin:
        deadline = time.monotonic() + 5  # far below the 40 s and more such a member stayed
        while (description := await describe_group(admin, group)).active:
            assert time.monotonic() < deadline, f"still a member: {description.members}"
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("generation", ["first", "later"])
async def test_a_stop_the_broker_does_not_answer_ends_within_three_session_timeouts(
    topics: Settings, stack: Stack, tmp_path: Path, generation: str
) -> None:
    """SIGTERM must end a service even when its group's coordinator answers nothing (a join held
    by a rebalance, a frozen broker): stop_and_leave gives up after bounded waits, whether it
    leaves from outside (the embedded broker's generation 0) or aiokafka's stop() does (later
    generations, and every generation on Kafka). A broker of the test's own is frozen
    (SIGSTOP), so that the suite's broker is left alone."""
    broker = start_broker(stack.endpoints.broker, tmp_path, free_port(), free_port())
    settings = topics.model_copy(update={"kafka_bootstrap": broker.bootstrap, "consumer_session_timeout_ms": 3000})
    group, topic = settings.group("frozen"), ["frozen-topic"]
    try:
        async with admin_client(settings, broker.bootstrap) as admin:  # no broker of ours creates topics on demand
            await admin.create_topics([NewTopic("frozen-topic", 4, 1)])  # a partition for each member
        async with joined(settings, group, topic) as consumer:
            if generation == "later":  # a second member joins and leaves: two rebalances
                async with joined(settings, group, topic):
                    pass
                deadline = time.monotonic() + 30
                while not (consumer.assignment() and (member := membership(consumer)) and member.generation > 0):
                    assert time.monotonic() < deadline, "no later generation in 30 s"
                    await consumer.getmany(timeout_ms=200)
            os.kill(broker.pid, signal.SIGSTOP)
            started = time.monotonic()
            await stop_and_leave(consumer, settings, broker.bootstrap)
            took = time.monotonic() - started
            assert consumer._closed
        # Not the 30 s request timeout. (It may take no time at all: on Apache Kafka, a member whose
        # coordinator was marked unavailable before the freeze has no LeaveGroup to wait for.)
        assert took < 3 * 3 + 3, f"stop took {took:.1f} s"
    finally:
        os.kill(broker.pid, signal.SIGCONT)
        stop_process(broker.pid)
