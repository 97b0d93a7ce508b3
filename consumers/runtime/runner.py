"""Runs one service: a consumer group member whose partitions are processed concurrently, each
partition's batch in one PostgreSQL transaction, its offset committed only after that commits.

The consumer keeps fetching while batches are applied: polled records join their partition's
queue, and a worker per partition with records applies its queue a batch at a time (everything
queued, up to ``max_records``), committing each batch's offset before it takes the next. So a
partition's events stay in order, a slow partition holds back no other, and records that arrive
during a batch are already here when it commits: pausing the partition instead would drop what
the consumer had prefetched and wait a whole fetch for it again (bench/README.md measures what
that cost). A partition is paused only when
its queue is full, and resumed when its worker takes the queue. Offsets of partitions that finish
together go out in one commit (committer.py). Before partitions are given up in a rebalance,
their queues are dropped and their workers finish the batch under way and commit; records polled
for a partition no longer assigned are dropped, never processed. Errors of
PostgreSQL or Kafka are retried with backoff, the batch as a whole, so nothing is skipped or
reordered; anything else is a bug in the runtime and stops the runner. A watchdog beside the
loop reports partitions that have lag and commit nothing (stuck but alive); the service's timers
(timers.py) tick beside it too, and its background tasks (``Service.background``) run beside it
until the runner stops. With ``consume_only`` (``xbus rebuild``) the runner applies its topics and
nothing else: no outbox relay, no timers, no background tasks, so it publishes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from consumers.runtime import metrics
from consumers.runtime.committer import GroupCommitter
from consumers.runtime.migrations import load_migrations, migrate
from consumers.runtime.processor import BatchOutcome, PartitionProcessor, Routing
from consumers.runtime.records import StoredRecord
from consumers.runtime.relay import OutboxRelay
from consumers.runtime.service import BackgroundContext, Service
from consumers.runtime.timers import TimerLoop
from consumers.runtime.transient import TRANSIENT_ERRORS
from consumers.runtime.waits import unless_stopped
from consumers.runtime.watchdog import ServiceHealth, Watchdog
from xbus.catalogue import Catalogue
from xbus.groups import stop_and_leave
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
        consume_only: bool = False,
    ) -> None:
        self.service = service
        #: Apply the service's topics only: its relay, timers and background tasks do not run.
        self.consume_only = consume_only
        self.settings = settings
        self.schema = settings.db_schema(service.name)
        self.topics = [settings.topic(name) for name in service.topics(catalogue)]
        routing = Routing(
            follow_up_topic=settings.topic(service.follow_up_topic(catalogue)),
            dead_letter_topic=settings.topic(service.dead_letter_topic(catalogue)),
            source=f"xbus/{service.name}",
        )
        self.routing = routing
        self.processor = PartitionProcessor(service, routing)
        self.relay = OutboxRelay(service.name, settings, bootstrap, database_url)
        self.stats = RunnerStats()
        self.watchdog = Watchdog(service.name, settings, bootstrap)
        self.timers = TimerLoop(service, settings, routing)
        self._committed: dict[TopicPartition, int] = {}
        self._bootstrap = bootstrap
        self._catalogue = catalogue
        self._database_url = database_url
        self._max_records = max_records
        self._workers: dict[TopicPartition, asyncio.Task[None]] = {}
        #: Records polled and not yet taken by their partition's worker, in offset order.
        self._queued: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        self._failure: BaseException | None = None

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
            self._database_url,
            min_size=1,
            max_size=8,
            server_settings={"search_path": self.schema},
            reset=_nothing_to_reset,
        )
        consumer = AIOKafkaConsumer(
            **client_options(self.settings, self._bootstrap),
            group_id=self.settings.group(self.service.group_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=self.settings.consumer_heartbeat_interval_ms,
            fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms,
            max_poll_records=self._max_records,
        )
        consumer.subscribe(self.topics, listener=_FinishBeforeRevoke(self))
        companions: list[asyncio.Task[None]] = []
        if not self.consume_only:
            relay = asyncio.create_task(self.relay.run(stop), name=f"relay-{self.service.name}")
            relay.add_done_callback(lambda done: self._fail_on_error(done, stop))
            companions.append(relay)
        await consumer.start()
        committer = GroupCommitter(consumer)
        watchdog = asyncio.create_task(
            self.watchdog.run(consumer, self._committed, pool, stop), name=f"watchdog-{self.service.name}"
        )
        watchdog.add_done_callback(lambda done: self._fail_on_error(done, stop))
        if not self.consume_only:
            timers = self.timers.start(pool, stop)
            for timer in timers:
                timer.add_done_callback(lambda done: self._fail_on_error(done, stop))
            companions += [*timers, *self._start_background(pool, stop)]
        log.info(
            "service started",
            service=self.service.name,
            group=self.settings.group(self.service.group_id),
            topics=self.topics,
            schema=self.schema,
        )
        try:
            while (
                batches := await unless_stopped(stop, consumer.getmany(timeout_ms=200, max_records=self._max_records))
            ) is not None:
                if self._failure is not None:
                    raise self._failure
                assigned = consumer.assignment()
                for tp, records in batches.items():
                    if records and tp in assigned:
                        self._committed.setdefault(tp, records[0].offset)  # where the group's offset put us
                        queue = self._queued.setdefault(tp, [])
                        queue += records
                        if len(queue) >= self._max_records:
                            consumer.pause(tp)  # until its worker takes the queue
                        if tp not in self._workers:
                            self._start_worker(tp, self._drain(consumer, committer, pool, tp, stop), stop)
        finally:
            stop.set()
            log.info("service stopping", service=self.service.name, batches_under_way=len(self._workers))
            await self._finish_or_abandon()
            await stop_and_leave(consumer, self.settings, self._bootstrap)  # its partitions move at once
            await asyncio.gather(watchdog, *companions, return_exceptions=True)
            await pool.close()
            log.info(
                "service stopped",
                service=self.service.name,
                applied=self.stats.applied,
                duplicates=self.stats.duplicates,
                dead_lettered=self.stats.dead_lettered,
            )
        if self._failure is not None:
            raise self._failure

    def health(self) -> ServiceHealth:
        return self.watchdog.health()

    async def finish(self, partitions: set[TopicPartition]) -> None:
        """Drop what is queued for ``partitions`` and wait for their workers: the batches under way
        are applied and committed, or abandoned; the next owner reads the rest from the group's offsets."""
        for tp in partitions:
            self._queued.pop(tp, None)
        workers = [self._workers[tp] for tp in partitions if tp in self._workers]
        await asyncio.gather(*workers, return_exceptions=True)
        for tp in partitions:
            self._committed.pop(tp, None)

    async def _finish_or_abandon(self) -> None:
        """On stop, batches under way get ``stop_grace_seconds`` to apply and commit before the group is
        left; a batch stuck longer (a handler waiting forever) is cancelled: its transaction rolls
        back and the partition's next owner re-reads it."""
        workers = list(self._workers.values())
        if not workers:
            return
        _, stuck = await asyncio.wait(workers, timeout=self.settings.stop_grace_seconds)
        for worker in stuck:
            worker.cancel()
        if stuck:
            log.warning("batches abandoned at stop; they will be re-read", service=self.service.name, count=len(stuck))
            await asyncio.gather(*stuck, return_exceptions=True)

    def _start_worker(self, tp: TopicPartition, drain: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
        worker = asyncio.create_task(drain)
        self._workers[tp] = worker
        worker.add_done_callback(lambda done: self._fail_on_error(done, stop))

    def _start_background(self, pool: asyncpg.Pool, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        context = BackgroundContext(
            self.service, self.settings, self._catalogue, self._bootstrap, self._database_url, pool, self.routing, stop
        )
        tasks: list[asyncio.Task[None]] = []
        for run in self.service.background:
            name = f"background-{self.service.name}-{getattr(run, '__name__', type(run).__name__)}"
            task = asyncio.create_task(run(context), name=name)
            task.add_done_callback(lambda done: self._fail_unless_stopping(done, stop))
            tasks.append(task)
        return tasks

    def _fail_unless_stopping(self, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        """A background task that returned while the service still runs has stopped doing its job."""
        if not task.cancelled() and task.exception() is None and not stop.is_set() and self._failure is None:
            self._failure = RuntimeError(f"{task.get_name()} returned before the service was asked to stop")
            log.error("background task ended; stopping", service=self.service.name, task=task.get_name())
            stop.set()
        self._fail_on_error(task, stop)

    def _fail_on_error(self, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        """A background task that died of an unexpected error stops the runner, which then raises it:
        a service without its relay or watchdog must not look healthy while its outbox grows."""
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            log.error(
                "runner task failed; stopping",
                service=self.service.name,
                task=task.get_name(),
                error=repr(self._failure),
            )
            stop.set()

    async def _drain(
        self,
        consumer: AIOKafkaConsumer,
        committer: GroupCommitter,
        pool: asyncpg.Pool,
        tp: TopicPartition,
        stop: asyncio.Event,
    ) -> None:
        """Apply ``tp``'s queue a batch at a time until it is empty, the partition is given up or
        the runner stops (the batch under way is finished either way)."""
        try:
            while not stop.is_set() and (records := self._take(consumer, tp)):
                await self._work(consumer, committer, pool, tp, records, stop)
        finally:
            # At once, not in a done callback: records the poll loop queues from here on must find
            # no worker registered, or they would wait for the partition's next records to start one.
            if self._workers.get(tp) is asyncio.current_task():
                del self._workers[tp]

    def _take(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> list[ConsumerRecord[bytes, bytes]]:
        """The next batch of ``tp``: up to ``max_records`` of its queue; a partition paused for a full
        queue fetches again."""
        queue = self._queued.get(tp)
        if not queue:
            return []
        batch, self._queued[tp] = queue[: self._max_records], queue[self._max_records :]
        if tp in consumer.paused():  # paused() lists partitions of the current assignment only
            consumer.resume(tp)
        return batch

    async def _work(
        self,
        consumer: AIOKafkaConsumer,
        committer: GroupCommitter,
        pool: asyncpg.Pool,
        tp: TopicPartition,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        stop: asyncio.Event,
    ) -> None:
        try:
            self._count(await self._process_with_retry(pool, records, stop))
        except _Abandoned:
            log.warning(
                "stopped while the database was unavailable; the batch will be re-read",
                service=self.service.name,
                topic=tp.topic,
                partition=tp.partition,
            )
            return
        offset = records[-1].offset + 1
        try:
            await committer.commit(tp, offset)
            self._committed[tp] = offset
            self.watchdog.committed_now()
        except KafkaError as error:
            # The group moved on: the new owner re-reads these events, and the inbox skips them.
            log.warning(
                "offset commit failed after the transaction committed", service=self.service.name, error=repr(error)
            )

    async def _process_with_retry(
        self, pool: asyncpg.Pool, records: Sequence[ConsumerRecord[bytes, bytes]], stop: asyncio.Event
    ) -> BatchOutcome:
        stored = [StoredRecord(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or ())) for r in records]
        backoff = 0.1
        started = time.perf_counter()
        while True:
            try:
                async with pool.acquire() as connection:
                    outcome = await self.processor.process(connection, stored)
                metrics.BATCH_DURATION.labels(self.service.name).observe(time.perf_counter() - started)
                return outcome
            except TRANSIENT_ERRORS as error:
                if stop.is_set():
                    raise _Abandoned from error
                self.stats.retries += 1
                metrics.BATCH_FAILURES.labels(self.service.name, type(error).__name__).inc()
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
        for name in ("applied", "duplicates", "dead_lettered", "parked", "released", "ignored"):
            if count := getattr(outcome, name):
                metrics.EVENTS.labels(self.service.name, OUTCOME_LABELS.get(name, name)).inc(count)


#: BatchOutcome fields whose metric label differs from the field name.
OUTCOME_LABELS = {"duplicates": "duplicate"}


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """Hand a connection back to the pool without asyncpg's reset query, a round trip per batch.

    The runner's connections keep no session state to reset: everything runs in transactions
    (advisory locks included, as ``pg_advisory_xact_lock``), and the search path is a setting of
    the connection itself. asyncpg still rolls back a transaction left open before this runs.
    """


class _Abandoned(Exception):
    """Asked to stop while a batch could not be applied: leave it uncommitted, to be re-read."""


class _FinishBeforeRevoke(ConsumerRebalanceListener):
    """Give partitions up only after the batches under way on them have committed their offsets."""

    def __init__(self, runner: ServiceRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._runner.finish(revoked)
        log.info("partitions revoked", count=len(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._runner.processor.forget_replay_marks()  # a replay may have run while we were out of the group
        log.info("partitions assigned", partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))
