"""Rebuilding a service's state in place, into a shadow beside it, and swapping the shadow in
(the package's docstring says how each goes)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from consumers.runtime.checksum import state_checksum
from consumers.runtime.projection import Projection
from consumers.runtime.runner import ServiceRunner
from consumers.runtime.service import Service
from infrastructure.brokers import TRAITS
from infrastructure.endpoints import Endpoints, load_catalogue
from infrastructure.errors import XbusError
from infrastructure.groups import (
    GroupActive,
    commit_offsets,
    committed_offsets,
    delete_group,
    partitions_of_topics,
    require_inactive,
)
from infrastructure.kafka_clients import admin_client, plain_consumer
from infrastructure.offsets import log_end_offsets
from infrastructure.settings import Settings
from xbus.rebuild.catchup import Progress, Span, log_progress, run_to
from xbus.rebuild.diff import diff_states
from xbus.rebuild.reports import RebuildReport, ShadowReport, SwapReport
from xbus.rebuild.state import (
    empty_schema,
    finish_rebuild,
    mark_published,
    published_in,
    schema_exists,
    table_states,
)

SHADOW = "shadow"


class RebuildRefused(XbusError):
    """A rebuild, shadow or swap that cannot go ahead as asked; the message says what to do."""


def shadow_settings(settings: Settings) -> Settings:
    """Where a shadow lives: schema ``<prefix>shadow_<service>``, group ``<group prefix>shadow.xbus.<service>``
    (under the deployment's group prefix, so lag tools see it)."""
    return settings.model_copy(
        update={
            "db_schema_prefix": f"{settings.db_schema_prefix}{SHADOW}_",
            "group_prefix": settings.group(f"{SHADOW}."),
        }
    )


async def rebuild(
    service: Service, settings: Settings, endpoints: Endpoints, progress: Progress | None = None
) -> RebuildReport:
    """Rebuild ``service``'s state in place from its topics (the service must be stopped)."""
    _refuse_projections(service)
    group = settings.group(service.group_id)
    why = f"{service.name} must be stopped to be rebuilt"
    return await _rebuild(service, settings, endpoints, group, why, progress or log_progress(service.name))


async def rebuild_shadow(
    service: Service, settings: Settings, endpoints: Endpoints, progress: Progress | None = None
) -> ShadowReport:
    """Rebuild ``service``'s state into its shadow schema while the live service runs, and compare."""
    _refuse_projections(service)
    shadow = shadow_settings(settings)
    live_schema, shadow_schema = settings.db_schema(service.name), shadow.db_schema(service.name)
    async with _database(endpoints) as connection:
        if await schema_exists(connection, shadow_schema):
            raise RebuildRefused(
                f"a shadow of {service.name} exists already (schema {shadow_schema}): swap it in with "
                f'`xbus rebuild {service.name} --swap`, or drop it (drop schema "{shadow_schema}" cascade) first'
            )
    live_group = settings.group(service.group_id)
    why = f"the shadow group of {service.name} must be empty (is another shadow rebuild running?)"
    report = await _rebuild(service, shadow, endpoints, live_group, why, progress or log_progress(service.name))
    async with _database(endpoints) as connection:
        diff = await diff_states(connection, live_schema, shadow_schema)
        live_checksum = await state_checksum(connection, live_schema)
    return ShadowReport(report, live_schema, live_checksum, diff)


async def swap_shadow(
    service: Service, settings: Settings, endpoints: Endpoints, progress: Progress | None = None
) -> SwapReport:
    """Put ``service``'s shadow in place of its live state (the service must be stopped)."""
    shadow = shadow_settings(settings)
    schema, shadow_schema = settings.db_schema(service.name), shadow.db_schema(service.name)
    group, shadow_group = settings.group(service.group_id), shadow.group(service.group_id)
    async with _database(endpoints) as connection:
        if not await schema_exists(connection, shadow_schema):
            raise RebuildRefused(
                f"{service.name} has no shadow to swap in (schema {shadow_schema}): "
                f"build one with `xbus rebuild {service.name} --shadow`"
            )
        if not await schema_exists(connection, schema):
            raise RebuildRefused(f"{service.name} has no live schema {schema} to swap the shadow with")
    runner = _runner(service, shadow, endpoints)
    async with admin_client(settings, endpoints.kafka_bootstrap) as admin:
        await _require_stopped(admin, group, f"the swap needs {service.name} stopped")
        await _require_stopped(admin, shadow_group, f"the shadow group of {service.name} must be empty")
        partitions = await _partitions(admin, runner)
        before = await committed_offsets(admin, group, partitions)
        start = {tp: offset or 0 for tp, offset in (await committed_offsets(admin, shadow_group, partitions)).items()}
        span = Span(start, await _log_ends(settings, endpoints, partitions))
        await run_to(runner, admin, shadow_group, span, progress or log_progress(service.name))
        after = {tp: offset or 0 for tp, offset in (await committed_offsets(admin, shadow_group, partitions)).items()}
    backup = f"{schema[:40]}_backup_{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}"
    async with _database(endpoints) as connection, connection.transaction():
        await connection.execute(f'alter schema "{schema}" rename to "{backup}"')
        await connection.execute(f'alter schema "{shadow_schema}" rename to "{schema}"')
        marked, left = await mark_published(connection, schema, published_in(backup))
        checksum = await state_checksum(connection, schema)
    # After the schemas: should this fail, the group re-reads from its older offsets into the
    # swapped-in state, whose inbox skips what it holds.
    await _commit(settings, endpoints, group, after)
    async with admin_client(settings, endpoints.kafka_bootstrap) as admin:
        await delete_group(admin, shadow_group)  # its offsets are the live group's now
    return SwapReport(
        service.name,
        schema,
        backup,
        shadow_schema,
        group,
        shadow_group,
        span.done(after),
        before,
        after,
        marked,
        left,
        checksum,
        settings.topic_prefix,
    )


async def _rebuild(
    service: Service, settings: Settings, endpoints: Endpoints, marks_from: str, why: str, progress: Progress
) -> RebuildReport:
    """Empty ``service``'s schema under ``settings`` and read its topics into it from the start,
    marking as replayed what group ``marks_from`` had read; refused (``why``) while its group has members."""
    started = time.perf_counter()
    runner = _runner(service, settings, endpoints)
    group = settings.group(service.group_id)
    async with admin_client(settings, endpoints.kafka_bootstrap) as admin:
        await _require_stopped(admin, group, why)
        partitions = await _partitions(admin, runner)
        previous = await committed_offsets(admin, marks_from, partitions)
        async with plain_consumer(settings, endpoints.kafka_bootstrap) as consumer:
            ends = await log_end_offsets(consumer, partitions, trusted_ends=TRAITS[endpoints.broker].true_end_offsets)
            span = Span(await consumer.beginning_offsets(partitions), ends)
        # Offsets before state: should emptying fail, the group re-reads into the state it had,
        # whose inbox skips everything.
        await _commit(settings, endpoints, group, span.start)
        await runner.migrate()
        async with _database(endpoints) as connection:
            marks = {tp: offset for tp, offset in previous.items() if offset and offset > span.start[tp]}
            await empty_schema(connection, runner.schema, marks)
        await run_to(runner, admin, group, span, progress)
    async with _database(endpoints) as connection:
        marked, left = await finish_rebuild(connection, runner.schema)
        tables = await table_states(connection, runner.schema)
        checksum = await state_checksum(connection, runner.schema)
    stats = runner.stats
    return RebuildReport(
        service=service.name,
        schema=runner.schema,
        group=group,
        target=dict(span.target),
        events=span.total,
        applied=stats.applied,
        duplicates=stats.duplicates,
        dead_lettered=stats.dead_lettered,
        parked=stats.parked,
        seconds=time.perf_counter() - started,
        checksum=checksum,
        tables=tables,
        marked_sent=marked,
        to_publish=left,
    )


def _refuse_projections(service: Service) -> None:
    projections = [task.name for task in service.background if isinstance(task, Projection)]
    if projections:
        raise RebuildRefused(
            f"{service.name} keeps state in projection(s) {', '.join(projections)}, which a rebuild does not "
            "replay (a projection is a background task, and a rebuild runs the consumer alone); "
            "xbus rebuild rebuilds services whose state comes from their handlers"
        )


async def _require_stopped(admin: AIOKafkaAdminClient, group: str, why: str) -> None:
    try:
        await require_inactive(admin, group)
    except GroupActive as active:
        raise RebuildRefused(f"{why}: {active}") from None


def _runner(service: Service, settings: Settings, endpoints: Endpoints) -> ServiceRunner:
    catalogue = load_catalogue(settings)
    return ServiceRunner(
        service, settings, catalogue, endpoints.kafka_bootstrap, endpoints.database_url, consume_only=True
    )


async def _partitions(admin: AIOKafkaAdminClient, runner: ServiceRunner) -> list[TopicPartition]:
    partitions = await partitions_of_topics(admin, runner.topics)
    missing = sorted(set(runner.topics) - {tp.topic for tp in partitions})
    if missing:
        raise RebuildRefused(
            f"topics of {runner.service.name} do not exist: {', '.join(missing)}; run `xbus topics apply`"
        )
    return partitions


async def _log_ends(
    settings: Settings, endpoints: Endpoints, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    async with plain_consumer(settings, endpoints.kafka_bootstrap) as consumer:
        return await log_end_offsets(consumer, partitions, trusted_ends=TRAITS[endpoints.broker].true_end_offsets)


async def _commit(settings: Settings, endpoints: Endpoints, group: str, offsets: Mapping[TopicPartition, int]) -> None:
    try:
        await commit_offsets(settings, endpoints.kafka_bootstrap, group, offsets)
    except KafkaError as error:
        raise RebuildRefused(
            f"could not move group {group}'s offsets ({error!r}): did a member join it meanwhile?"
        ) from None


@asynccontextmanager
async def _database(endpoints: Endpoints) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(endpoints.database_url)
    try:
        yield connection
    finally:
        await connection.close()
