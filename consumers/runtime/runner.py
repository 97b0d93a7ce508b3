"""Runs one service: a consumer group member, its partitions processed concurrently, each
partition's batch in one PostgreSQL transaction, offsets committed only after that commits.

A lock covers "process the polled batch and commit its offsets". The rebalance listener takes
the same lock before giving partitions up, so a revoked partition's offsets are committed first,
and a batch polled before a rebalance is filtered by the current assignment before it is
processed. Errors of PostgreSQL or Kafka are retried with backoff, the batch as a whole, so
nothing is skipped or reordered; anything else is a bug in the runtime and stops the runner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from consumers.runtime.migrations import load_migrations, migrate
from consumers.runtime.processor import TRANSIENT_ERRORS, BatchOutcome, PartitionProcessor, Routing
from consumers.runtime.records import StoredRecord
from consumers.runtime.relay import OutboxRelay
from consumers.runtime.service import Service
from xbus.catalogue import Catalogue
from xbus.kafka import client_options
from xbus.settings import Settings

log = structlog.get_logger("xbus.runner")

MAX_BACKOFF_SECONDS = 5.0


@dataclass
class RunnerStats:
    """Totals since start: what tests and the health report read."""

    batches: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    parked: int = 0
    retries: int = 0
    last_commit: float = field(default_factory=time.monotonic)


class ServiceRunner:
    def __init__(
        self,
        service: Service,
        settings: Settings,
        catalogue: Catalogue,
        bootstrap: str,
        database_url: str,
        *,
        max_records: int = 500,
    ) -> None:
        self.service = service
        self.settings = settings
        self.schema = settings.db_schema(service.name)
        self.topics = [settings.topic(name) for name in service.topics(catalogue)]
        routing = Routing(
            follow_up_topic=settings.topic(service.follow_up_topic(catalogue)),
            dead_letter_topic=settings.topic(service.dead_letter_topic(catalogue)),
            source=f"xbus/{service.name}",
        )
        self.processor = PartitionProcessor(service, routing)
        self.relay = OutboxRelay(service.name, settings, bootstrap, database_url)
        self.stats = RunnerStats()
        self._bootstrap = bootstrap
        self._database_url = database_url
        self._max_records = max_records
        self._lock = asyncio.Lock()

    async def migrate(self) -> list[str]:
        connection = await asyncpg.connect(self._database_url)
        try:
            return await migrate(connection, self.schema, load_migrations(self.service.migrations))
        finally:
            await connection.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the batch, commit and leave the group."""
        applied = await self.migrate()
        if applied:
            log.info("migrations applied", service=self.service.name, versions=applied)
        pool = await asyncpg.create_pool(
            self._database_url, min_size=1, max_size=8, server_settings={"search_path": self.schema}
        )
        consumer = AIOKafkaConsumer(
            **client_options(self.settings, self._bootstrap),
            group_id=self.settings.group(self.service.group_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=self.settings.consumer_heartbeat_interval_ms,
            max_poll_records=self._max_records,
        )
        consumer.subscribe(self.topics, listener=_CommitBeforeRevoke(self._lock))
        relay = asyncio.create_task(self.relay.run(stop), name=f"relay-{self.service.name}")
        await consumer.start()
        log.info(
            "service started",
            service=self.service.name,
            group=self.settings.group(self.service.group_id),
            topics=self.topics,
            schema=self.schema,
        )
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=self._max_records)
                if batches:
                    async with self._lock:
                        await self._process_and_commit(consumer, pool, batches, stop)
        except _Abandoned:
            log.warning(
                "stopped while the database was unavailable; the batch will be re-read", service=self.service.name
            )
        finally:
            await consumer.stop()  # leaves the group: its partitions move at once
            stop.set()
            await relay
            await pool.close()
            log.info(
                "service stopped",
                service=self.service.name,
                applied=self.stats.applied,
                duplicates=self.stats.duplicates,
                dead_lettered=self.stats.dead_lettered,
            )

    async def _process_and_commit(
        self,
        consumer: AIOKafkaConsumer,
        pool: asyncpg.Pool,
        batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        stop: asyncio.Event,
    ) -> None:
        assigned = consumer.assignment()
        work = {tp: records for tp, records in batches.items() if tp in assigned and records}
        outcomes = await asyncio.gather(*(self._process_with_retry(pool, records, stop) for records in work.values()))
        for outcome in outcomes:
            self._count(outcome)
        offsets = {tp: records[-1].offset + 1 for tp, records in work.items()}
        try:
            await consumer.commit(offsets)
            self.stats.last_commit = time.monotonic()
        except (CommitFailedError, KafkaError) as error:
            # The group moved on: the new owner re-reads these events, and the inbox skips them.
            log.warning(
                "offset commit failed after the transaction committed", service=self.service.name, error=repr(error)
            )

    async def _process_with_retry(
        self, pool: asyncpg.Pool, records: Sequence[ConsumerRecord[bytes, bytes]], stop: asyncio.Event
    ) -> BatchOutcome:
        stored = [StoredRecord(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or ())) for r in records]
        backoff = 0.1
        while True:
            try:
                async with pool.acquire() as connection:
                    return await self.processor.process(connection, stored)
            except TRANSIENT_ERRORS as error:
                if stop.is_set():
                    raise _Abandoned from error
                self.stats.retries += 1
                log.warning(
                    "batch failed on the infrastructure; retrying",
                    service=self.service.name,
                    topic=records[0].topic,
                    partition=records[0].partition,
                    error=repr(error),
                    retry_in=backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _count(self, outcome: BatchOutcome) -> None:
        self.stats.batches += 1
        self.stats.applied += outcome.applied
        self.stats.duplicates += outcome.duplicates
        self.stats.dead_lettered += outcome.dead_lettered
        self.stats.parked += outcome.parked


class _Abandoned(Exception):
    """Asked to stop while a batch could not be applied: leave it uncommitted, to be re-read."""


class _CommitBeforeRevoke(ConsumerRebalanceListener):
    """Give partitions up only after the batch being processed has committed its offsets."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            log.info("partitions revoked", count=len(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))
