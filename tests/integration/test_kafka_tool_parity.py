"""Our operations tools agree with Kafka's own on the same broker: `xbus lag --json` with
`kafka-consumer-groups --describe`, and `xbus replay ... --execute` in every reset mode with
`kafka-consumer-groups --reset-offsets ... --execute` on a twin group, offsets outside the log
included (both clamp them to the log, and say so).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from infrastructure.groups import commit_offsets, committed_offsets, partitions_of_topics
from infrastructure.kafka_clients import admin_client, client_options, plain_consumer
from infrastructure.offsets import log_end_offsets
from infrastructure.settings import Settings
from producers import open_publisher
from schemas.users import UserCreated
from tests.conftest import ROOT, Stack
from tests.support.kafka_tools import consumer_groups, describe
from tests.support.service_process import process_env
from tests.support.service_under_test import module_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.broker("kafka", reason="kafka-consumer-groups is Apache Kafka's own tool, run on its broker"),
]

TOPIC = "xosp.users"  # 12 partitions
WAVES = 3
PER_WAVE = 48
#: Between two waves of records, so that a time between them is unambiguous on every partition.
GAP_SECONDS = 1.5


@dataclass(frozen=True)
class Log:
    """The topic as published: three waves of records, and a moment between each two."""

    settings: Settings
    partitions: list[TopicPartition]
    ends: dict[TopicPartition, int]
    #: Just after wave n, before wave n + 1.
    between: list[dt.datetime]

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap or ""

    @property
    def topic(self) -> str:
        return self.settings.topic(TOPIC)

    def halfway(self) -> dict[TopicPartition, int]:
        """A committed offset with lag on every partition (and 0 where a partition holds one record)."""
        return {tp: end // 2 for tp, end in self.ends.items()}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def log(stack: Stack) -> Log:
    settings = await module_settings(stack)  # topics of this module's own: every test reads the same waves
    between = []
    async with open_publisher(settings) as publisher:
        for wave in range(WAVES):
            events = [
                UserCreated(login_id=f"w{wave}-{n}", username=f"w{wave}n{n}", email="p@example.com", display_name="P")
                for n in range(PER_WAVE)
            ]
            assert all(hasattr(result, "offset") for result in await publisher.publish_many(events))
            await asyncio.sleep(GAP_SECONDS / 2)
            between.append(dt.datetime.now(dt.UTC))
            await asyncio.sleep(GAP_SECONDS / 2)
    async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
        partitions = await partitions_of_topics(admin, [settings.topic(TOPIC)])
    async with plain_consumer(settings, settings.kafka_bootstrap or "") as consumer:
        ends = await log_end_offsets(consumer, partitions)
    assert sum(ends.values()) == WAVES * PER_WAVE
    return Log(settings, partitions, ends, between)


def xbus(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xbus", *args],
        env={**process_env(settings), "COLUMNS": "200"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def committed(log: Log, group: str) -> dict[TopicPartition, int | None]:
    async with admin_client(log.settings, log.bootstrap) as admin:
        return await committed_offsets(admin, group, log.partitions)


@pytest_asyncio.fixture(loop_scope="module")
async def member(log: Log) -> AsyncIterator[tuple[str, AIOKafkaConsumer]]:
    """A group with lag on every partition and one live member holding them all, reading nothing."""
    group = log.settings.group(f"parity.lag.{uuid.uuid4().hex[:6]}")
    await commit_offsets(log.settings, log.bootstrap, group, log.halfway())
    consumer = AIOKafkaConsumer(
        log.topic, **client_options(log.settings, log.bootstrap), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            consumer.pause(*consumer.assignment())
            await consumer.getmany(timeout_ms=100)
        consumer.pause(*consumer.assignment())  # it holds its partitions and reads nothing: the lag stays
        yield group, consumer
    finally:
        await consumer.stop()


async def test_xbus_lag_agrees_with_kafka_consumer_groups_describe(
    log: Log, member: tuple[str, AIOKafkaConsumer]
) -> None:
    group, _ = member
    kafka = await asyncio.to_thread(describe, log.bootstrap, group)
    done = await asyncio.to_thread(xbus, log.settings, "lag", "--json", "--group", group, "--samples", "1")
    assert done.returncode == 0, done.stderr
    [ours] = json.loads(done.stdout)["groups"]

    theirs = {(row.topic, row.partition): (row.current, row.log_end, row.lag) for row in kafka}
    mine = {(p["topic"], p["partition"]): (p["committed"], p["log_end"], p["lag"]) for p in ours["partitions"]}
    assert mine == theirs
    assert sum(lag for _, _, lag in mine.values()) > 0  # real lag, not two zeros agreeing
    assert {m["member_id"] for m in ours["members"]} == {row.consumer_id for row in kafka}
    owners = {(p["topic"], p["partition"]): p["owner"].split(" (")[0] for p in ours["partitions"]}  # id (client@host)
    assert owners == {(row.topic, row.partition): row.consumer_id for row in kafka}


def kafka_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


#: Each reset mode as (ours, Kafka's), built from the published log; out-of-range cases included.
MODES: dict[str, Callable[[Log], tuple[list[str], list[str]]]] = {
    "to-earliest": lambda _: (["--to-earliest"], ["--to-earliest"]),
    "to-latest": lambda _: (["--to-latest"], ["--to-latest"]),
    "to-offset": lambda _: (["--to-offset", "3"], ["--to-offset", "3"]),
    "to-offset past the end": lambda _: (["--to-offset", "100000"], ["--to-offset", "100000"]),
    "shift-by back": lambda _: (["--shift-by", "-2"], ["--shift-by", "-2"]),
    "shift-by forward": lambda _: (["--shift-by", "1"], ["--shift-by", "1"]),
    "shift-by before the start": lambda _: (["--shift-by", "-100000"], ["--shift-by", "-100000"]),
    "shift-by past the end": lambda _: (["--shift-by", "100000"], ["--shift-by", "100000"]),
    "to-datetime between waves": lambda log: (
        ["--to-datetime", log.between[1].isoformat()],
        ["--to-datetime", kafka_time(log.between[1])],
    ),
    "to-datetime before every record": lambda log: (
        ["--to-datetime", (log.between[0] - dt.timedelta(hours=1)).isoformat()],
        ["--to-datetime", kafka_time(log.between[0] - dt.timedelta(hours=1))],
    ),
    "to-datetime in the future": lambda log: (
        ["--to-datetime", (log.between[-1] + dt.timedelta(days=1)).isoformat()],
        ["--to-datetime", kafka_time(log.between[-1] + dt.timedelta(days=1))],
    ),
    "by-duration covering every record": lambda _: (["--by-duration", "1h"], ["--by-duration", "PT1H"]),
    "by-duration after every record": lambda _: (["--by-duration", "0s"], ["--by-duration", "PT0S"]),
}


#: Modes that point outside the log on every partition: each is clamped, and both tools say so.
OUTSIDE_THE_LOG = {"to-offset past the end", "shift-by before the start", "shift-by past the end"}


@pytest.mark.parametrize("mode", MODES)
async def test_xbus_replay_moves_offsets_as_kafka_consumer_groups_reset_offsets(log: Log, mode: str) -> None:
    ours, theirs = MODES[mode](log)
    tag = uuid.uuid4().hex[:6]
    mine, twin = log.settings.group(f"parity.ours.{tag}"), log.settings.group(f"parity.kafka.{tag}")
    for group in (mine, twin):
        await commit_offsets(log.settings, log.bootstrap, group, log.halfway())

    done = await asyncio.to_thread(xbus, log.settings, "replay", mine, *ours, "--execute")
    kafka = await asyncio.to_thread(
        consumer_groups, log.bootstrap, "--reset-offsets", "--group", twin, "--topic", log.topic, *theirs, "--execute"
    )

    assert done.returncode == 0, done.stderr
    after = await committed(log, mine)
    assert after == await committed(log, twin), f"ours: {done.stdout}\nKafka's: {kafka}"
    # both say which partitions were clamped to the log
    said = clamped(done.stderr, "")
    assert said == clamped(kafka, "topic partition "), (done.stderr, kafka)
    if mode in OUTSIDE_THE_LOG:
        assert len(said) == len(log.partitions)


def clamped(output: str, before_partition: str) -> set[str]:
    """The partitions a reset's output says were clamped: "New offset (N) is higher than latest
    offset for [topic partition ]T-P..." (Kafka's tool, and ours in the same words)."""
    found = re.findall(
        r"New offset \(-?\d+\) is (?:higher|lower) than \w+ offset for "
        + re.escape(before_partition)
        + r"(\S+?)[.:]?\s",
        output,
    )
    return set(found)
