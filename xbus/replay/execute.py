"""Planning a replay against the broker and carrying it out safely.

Executing moves the group's offsets without joining it (infrastructure/groups.py), which Kafka allows only
while the group has no members, so an active group is refused, and looked at again right before
committing. For an xbus service's group, replay marks go into its schema first: a crash in
between leaves marks that nothing reads below (harmless), never moved offsets without marks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from consumers.runtime.dead_letters import schema_connection
from consumers.runtime.discovery import services_by_group
from consumers.runtime.replay_marks import write_replay_marks
from consumers.runtime.service import Service
from infrastructure.brokers import TRAITS, BrokerTraits
from infrastructure.endpoints import Endpoints, load_catalogue
from infrastructure.errors import XbusError
from infrastructure.groups import (
    GroupDescription,
    commit_offsets,
    describe_group,
    group_partitions,
    partitions_of_topics,
    require_inactive,
    topics_under,
)
from infrastructure.kafka_clients import topic_reader
from infrastructure.offsets import log_end_offsets
from infrastructure.settings import Settings
from xbus.replay.plan import Mode, ReplayPlan, TopicSelection, merge_selections, plan_partitions
from xbus.replay.timesearch import broker_offsets_at_time, consumer_first_records, offsets_at_time

log = structlog.get_logger("xbus.replay")


@dataclass(frozen=True)
class ReplayDone:
    plan: ReplayPlan
    #: The offsets committed.
    committed: dict[TopicPartition, int]
    #: The replay marks written into the service's schema (empty for a group of no xbus service).
    marks: dict[TopicPartition, int]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.plan.to_json(),
            "executed": True,
            "committed": [
                {"topic": tp.topic, "partition": tp.partition, "offset": o} for tp, o in sorted(self.committed.items())
            ],
            "marks": [
                {"topic": tp.topic, "partition": tp.partition, "until": o} for tp, o in sorted(self.marks.items())
            ],
        }


async def plan_replay(
    settings: Settings,
    endpoints: Endpoints,
    group: str,
    mode: Mode,
    selections: Sequence[TopicSelection] = (),
    extra_services: Iterable[Service] = (),
) -> ReplayPlan:
    """The plan of a replay of ``group`` (a physical group id); changes nothing."""
    broker = TRAITS[endpoints.broker]
    async with topic_reader(settings, endpoints.kafka_bootstrap) as (admin, consumer):
        description = await describe_group(admin, group)
        return await _plan(settings, broker, admin, consumer, description, mode, selections, extra_services)


async def execute_replay(
    settings: Settings,
    endpoints: Endpoints,
    group: str,
    mode: Mode,
    selections: Sequence[TopicSelection] = (),
    extra_services: Iterable[Service] = (),
) -> ReplayDone:
    """Plan and carry out a replay of ``group``: refused (:class:`infrastructure.groups.GroupActive`) while
    it has members; replay marks first when it is an xbus service's group, then the offsets."""
    broker = TRAITS[endpoints.broker]
    async with topic_reader(settings, endpoints.kafka_bootstrap) as (admin, consumer):
        description = await require_inactive(admin, group)
        plan = await _plan(settings, broker, admin, consumer, description, mode, selections, extra_services)
        marks = plan.marks if plan.schema is not None else {}
        if plan.schema is not None and marks:
            await _write_marks(endpoints.database_url, plan.schema, marks)
        await require_inactive(admin, group)  # a member may have joined while we planned
        await commit_offsets(settings, endpoints.kafka_bootstrap, group, plan.offsets)
    log.info("replay executed", group=group, mode=str(mode.kind), moved=len(plan.offsets), marks=len(marks))
    return ReplayDone(plan, plan.offsets, marks)


async def _plan(
    settings: Settings,
    broker: BrokerTraits,
    admin: AIOKafkaAdminClient,
    consumer: AIOKafkaConsumer,
    description: GroupDescription,
    mode: Mode,
    selections: Sequence[TopicSelection],
    extra_services: Iterable[Service],
) -> ReplayPlan:
    now_ms = int(time.time() * 1000)
    service = services_by_group(settings, extra_services).get(description.group)
    selected = {settings.topic(topic): partitions for topic, partitions in merge_selections(selections).items()}
    declared: list[TopicPartition] = []
    if service is not None:
        declared = await partitions_of_topics(
            admin, [settings.topic(t) for t in service.topics(load_catalogue(settings))]
        )
    if selected:
        candidates = await _selected_partitions(admin, selected)
        declared = [*declared, *candidates]  # named on the command line: planned even if never committed
    else:
        candidates = await partitions_of_topics(admin, await topics_under(admin, settings.topic("")))
    current = await group_partitions(admin, description, candidates, declared)
    if selected:
        current = {tp: o for tp, o in current.items() if _is_selected(tp, selected)}
    if not current:
        raise XbusError(
            f"group {description.group} has no committed offset on any topic under "
            f"{settings.topic('') or 'the cluster'!r} and no xbus service reads with it: name topics with --topic"
        )
    partitions = sorted(current)
    log_end = await log_end_offsets(consumer, partitions, trusted_ends=broker.true_end_offsets)
    log_start = await consumer.beginning_offsets(partitions)
    at_ms = mode.at_ms(now_ms) if mode.by_time else None
    found = None
    if at_ms is not None and broker.true_offsets_for_times:
        found = await broker_offsets_at_time(consumer, log_end, at_ms)
    elif at_ms is not None:
        bounds = {tp: (log_start[tp], log_end[tp]) for tp in partitions}
        found = await offsets_at_time(consumer_first_records(consumer), bounds, at_ms)
    return ReplayPlan(
        group=description.group,
        mode=mode,
        at_ms=at_ms,
        service=service.name if service is not None else None,
        schema=settings.db_schema(service.name) if service is not None else None,
        description=description,
        partitions=plan_partitions(mode, current, log_start, log_end, found),
    )


async def _selected_partitions(
    admin: AIOKafkaAdminClient, selected: Mapping[str, frozenset[int] | None]
) -> list[TopicPartition]:
    """Every selected partition; an unknown topic or partition is an error naming it."""
    existing = await partitions_of_topics(admin, selected)
    known_topics = {tp.topic for tp in existing}
    missing = sorted(set(selected) - known_topics)
    if missing:
        raise XbusError(f"no such topic: {', '.join(missing)}; `xbus topics list` shows the topics")
    for topic, numbers in selected.items():
        absent = sorted((numbers or frozenset()) - {tp.partition for tp in existing if tp.topic == topic})
        if absent:
            count = sum(1 for tp in existing if tp.topic == topic)
            raise XbusError(
                f"topic {topic} has no partition {', '.join(map(str, absent))} (it has {count}: 0 to {count - 1})"
            )
    return [tp for tp in existing if _is_selected(tp, selected)]


def _is_selected(tp: TopicPartition, selected: Mapping[str, frozenset[int] | None]) -> bool:
    if tp.topic not in selected:
        return False
    numbers = selected[tp.topic]
    return numbers is None or tp.partition in numbers


async def _write_marks(database_url: str, schema: str, marks: Mapping[TopicPartition, int]) -> None:
    async with schema_connection(database_url, schema) as connection:
        try:
            async with connection.transaction():
                await write_replay_marks(connection, marks)
        except asyncpg.UndefinedTableError:
            raise XbusError(
                f"schema {schema} has no replay-marks table yet: run `xbus db migrate SERVICE` (or start the "
                "service once) before replaying it"
            ) from None
