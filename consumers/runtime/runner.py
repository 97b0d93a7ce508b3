"""Runs one service: a consumer group member whose polled records are applied in PostgreSQL
transactions, each partition's records in offset order, its offsets committed only after the
transaction commits.

The consumer keeps fetching while batches are applied: polled records join their partition's
queue. After each poll, the partitions with records and no worker get one worker together, which
applies all their queues in one transaction (a partition's part of it capped at ``max_records``),
commits their offsets in one request, and goes on with whatever was queued for them meanwhile.
One transaction per poll, not one per partition: at a steady rate each poll holds an event or
two per partition, and a transaction, its offset commit and the relay's round per partition
cost the machine more than the events did (bench/README.md measured it). A worker gives a
partition up as soon as nothing is queued for it, so the next poll's records for it start a new
worker beside the running ones: groups of partitions are applied concurrently, and a partition
is never in two batches at once, so its events stay in order. A group's transaction that runs
longer than ``batch_split_seconds`` (a handler stuck on a lock, say) is rolled back and its
partitions go solo: each gets a worker of its own until its queue is empty, so a stuck event
holds back its own partition only, as the watchdog then reports. Records that arrive during a batch
are already here when it commits: pausing the partition instead would drop what the consumer had
prefetched and wait a whole fetch for it again. A partition is paused only when its queue is
full, and resumed when a worker takes the queue. Before partitions are given up in a rebalance,
their queues are dropped and the batches under way on them finish and commit; records polled for
a partition no longer assigned are dropped, never processed. Errors of PostgreSQL or Kafka are
retried with backoff, the batch as a whole, so nothing is skipped or reordered; anything else is
a bug in the runtime and stops the runner. A watchdog beside the loop reports partitions that
have lag and commit nothing (stuck but alive); the service's timers (timers.py) tick beside it
too, and its background tasks (``Service.background``) run beside it until the runner stops.
With ``consume_only`` (``xbus rebuild``) the runner applies its topics and nothing else: no
outbox relay, no timers, no background tasks, so it publishes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from consumers.runtime import metrics
from consumers.runtime.committer import GroupCommitter
from consumers.runtime.held_events import look_after_held_events
from consumers.runtime.migrations import load_migrations, migrate
from consumers.runtime.processor import BatchOutcome, BatchProcessor, Routing
from consumers.runtime.progress import NoProgress, ProgressWatch
from consumers.runtime.records import StoredRecord
from consumers.runtime.relay import OutboxRelay
from consumers.runtime.service import BackgroundContext, Service
from consumers.runtime.timers import TimerLoop
from consumers.runtime.transient import TRANSIENT_ERRORS
from consumers.runtime.waits import unless_stopped
from consumers.runtime.watchdog import ServiceHealth, Watchdog
from infrastructure.brokers import group_member_options
from infrastructure.catalogue import Catalogue
from infrastructure.groups import stop_and_leave
from infrastructure.settings import Settings

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
    pending: int = 0
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
        self.processor = BatchProcessor(service, routing)
        self.relay = OutboxRelay(service.name, settings, bootstrap, database_url)
        self.stats = RunnerStats()
        self.watchdog = Watchdog(service.name, settings, bootstrap)
        self.timers = TimerLoop(service, settings, routing)
        self._committed: dict[TopicPartition, int] = {}
        self._bootstrap = bootstrap
        self._catalogue = catalogue
        self._database_url = database_url
        self._max_records = max_records
        #: The worker applying each partition's records, while it has any.
        self._workers: dict[TopicPartition, asyncio.Task[None]] = {}
        #: Set whenever a worker gives partitions up: what a rebalance waits for.
        self._released = asyncio.Event()
        #: Partitions of a group batch that was too slow: each gets a worker of its own until its
        #: queue is empty.
        self._solo: set[TopicPartition] = set()
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
            **await group_member_options(self.settings, self._bootstrap, self.settings.group(self.service.group_id)),
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
        self.watchdog.watch(consumer, self._committed)
        watchdog = asyncio.create_task(self.watchdog.run(pool, stop), name=f"watchdog-{self.service.name}")
        watchdog.add_done_callback(lambda done: self._fail_on_error(done, stop))
        if not self.consume_only:
            held = look_after_held_events(self.processor, pool, stop, self.settings.pending_timeout_seconds)
            actions = asyncio.create_task(held, name=f"held-events-{self.service.name}")
            actions.add_done_callback(lambda done: self._fail_on_error(done, stop))
            timers = self.timers.start(pool, stop)
            for timer in timers:
                timer.add_done_callback(lambda done: self._fail_on_error(done, stop))
            companions += [actions, *timers, *self._start_background(pool, stop)]
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
                            consumer.pause(tp)  # until a worker takes the queue
                waiting = {tp for tp, queue in self._queued.items() if queue and tp not in self._workers}
                for group in [{tp} for tp in waiting & self._solo] + [waiting - self._solo]:
                    if group:
                        self._start_worker(group, consumer, committer, pool, stop)
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
        self._solo -= partitions
        while any(tp in self._workers for tp in partitions):
            self._released.clear()
            await self._released.wait()
        for tp in partitions:
            self._committed.pop(tp, None)

    async def _finish_or_abandon(self) -> None:
        """On stop, batches under way get ``stop_grace_seconds`` to apply and commit before the group is
        left; a batch stuck longer (a handler waiting forever) is cancelled: its transaction rolls
        back and the partition's next owner re-reads it."""
        workers = set(self._workers.values())
        if not workers:
            return
        _, stuck = await asyncio.wait(workers, timeout=self.settings.stop_grace_seconds)
        for worker in stuck:
            worker.cancel()
        if stuck:
            log.warning("batches abandoned at stop; they will be re-read", service=self.service.name, count=len(stuck))
            await asyncio.gather(*stuck, return_exceptions=True)

    def _start_worker(
        self,
        partitions: set[TopicPartition],
        consumer: AIOKafkaConsumer,
        committer: GroupCommitter,
        pool: asyncpg.Pool,
        stop: asyncio.Event,
    ) -> None:
        worker = asyncio.create_task(self._drain(consumer, committer, pool, partitions, stop))
        for tp in partitions:
            self._workers[tp] = worker
        worker.add_done_callback(lambda done: self._fail_on_error(done, stop))

    def _start_background(self, pool: asyncpg.Pool, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        context = BackgroundContext(
            self.service,
            self.settings,
            self._catalogue,
            self._bootstrap,
            self._database_url,
            pool,
            self.routing,
            stop,
            self.watchdog,
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
        owned: set[TopicPartition],
        stop: asyncio.Event,
    ) -> None:
        """Apply the queues of ``owned`` a batch at a time until none has records left, or the
        runner stops (the batch under way is finished either way)."""
        split: set[TopicPartition] = set()
        try:
            while not stop.is_set() and (batch := self._take(consumer, owned)):
                if not await self._work(committer, pool, batch, stop):
                    split = set(batch)
                    return
        finally:
            self._release(owned, set(owned))
            self._solo |= split  # after the release, which ends solo runs

    def _take(
        self, consumer: AIOKafkaConsumer, owned: set[TopicPartition]
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """The next batch of ``owned``: up to ``max_records`` of each queue; a partition paused for
        a full queue fetches again. Partitions with nothing queued (or no queue: given up in a
        rebalance) are released at once, not after an await: records the poll loop queues for
        them from here on must find no worker registered, or they would wait for the
        partition's next records to start one."""
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for tp in owned:
            if queue := self._queued.get(tp):
                batch[tp], self._queued[tp] = queue[: self._max_records], queue[self._max_records :]
                if tp in consumer.paused():  # paused() lists partitions of the current assignment only
                    consumer.resume(tp)
        self._release(owned, owned - batch.keys())
        return batch

    def _release(self, owned: set[TopicPartition], partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            owned.discard(tp)
            if self._workers.get(tp) is asyncio.current_task():
                del self._workers[tp]
        self._solo -= partitions
        if partitions:
            self._released.set()

    async def _work(
        self,
        committer: GroupCommitter,
        pool: asyncpg.Pool,
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        stop: asyncio.Event,
    ) -> bool:
        """Apply ``batch`` and commit its offsets; False when it held several partitions and made
        no progress for ``batch_split_seconds`` (progress.py): it was rolled back and its records
        queued again, each partition to be applied on its own."""
        records = [record for records in batch.values() for record in records]
        try:
            if len(batch) > 1:
                watch = ProgressWatch(self.settings.batch_split_seconds)
                self._count(await watch.run(self._process_with_retry(pool, records, stop, watch.progressed)))
            else:
                self._count(await self._process_with_retry(pool, records, stop))
        except NoProgress as stuck:
            # Rolled back, unless it was cancelled between COMMIT and the return: the records
            # then come back as duplicates, which the inbox skips.
            for tp, taken in batch.items():
                if tp in self._queued:  # not given up in a rebalance meanwhile
                    self._queued[tp] = taken + self._queued[tp]
            metrics.BATCH_SPLITS.labels(self.service.name).inc()
            log.warning(
                "batch of a group made no progress; applying its partitions one by one",
                service=self.service.name,
                partitions=_names(batch),
                reason=str(stuck),
            )
            return False
        except _Abandoned:
            log.warning(
                "stopped while the database was unavailable; the batch will be re-read",
                service=self.service.name,
                partitions=_names(batch),
            )
            return True
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        try:
            await committer.commit(offsets)
            self._committed.update(offsets)
            self.watchdog.committed_now()
        except KafkaError as error:
            # The group moved on: the new owner re-reads these events, and the inbox skips them.
            log.warning(
                "offset commit failed after the transaction committed", service=self.service.name, error=repr(error)
            )
        return True

    async def _process_with_retry(
        self,
        pool: asyncpg.Pool,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        stop: asyncio.Event,
        on_statement: Callable[[Any], None] | None = None,
    ) -> BatchOutcome:
        """Apply ``records`` in a transaction, retried while the infrastructure fails;
        ``on_statement`` is told of every statement the transaction's connection completes."""
        stored = [StoredRecord(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or ())) for r in records]
        backoff = 0.1
        started = time.perf_counter()
        while True:
            try:
                async with pool.acquire() as connection:
                    if on_statement is None:
                        outcome = await self.processor.process(connection, stored)
                    else:
                        connection.add_query_logger(on_statement)
                        try:
                            outcome = await self.processor.process(connection, stored)
                        finally:
                            connection.remove_query_logger(on_statement)
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
                    partitions=_names({TopicPartition(r.topic, r.partition) for r in records}),
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
        self.stats.pending += outcome.pending
        for name in ("applied", "duplicates", "dead_lettered", "parked", "pending", "released", "ignored"):
            if count := getattr(outcome, name):
                metrics.EVENTS.labels(self.service.name, OUTCOME_LABELS.get(name, name)).inc(count)


def _names(partitions: Iterable[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in sorted(partitions)]


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
        log.info("partitions assigned", partitions=_names(assigned))
