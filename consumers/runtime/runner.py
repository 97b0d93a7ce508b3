"""Runs one service: a consumer group member whose polled records are applied in PostgreSQL
transactions, each partition's records in offset order, its offsets committed only after the
transaction commits.

The runner is a facade over parts with one job each:

- the poller (poller.py): polled records join their partition's queue, and the partitions with
  records and no worker get one worker together;
- the worker (batch_worker.py): applies a group's queues in one transaction a batch at a time
  (processor.py), commits their offsets in one request, retries what the infrastructure fails,
  and sends a group that makes no progress solo;
- the supervisor (tasks.py) of what runs beside the consumer: the outbox relay, the
  watchdog (partitions that have lag and commit nothing), the held events' keeper, the timers
  and the service's background tasks; any that fails stops the runner.

One transaction per poll, not one per partition: at a steady rate each poll holds an event or
two per partition, and a transaction, its offset commit and the relay's round per partition
cost the machine more than the events did (bench/README.md measured it). Groups of partitions
are applied concurrently, and a partition is never in two batches at once, so its events stay
in order. Before partitions are given up in a rebalance, their queues are dropped and the
batches under way on them finish and commit; records polled for a partition no longer assigned
are dropped, never processed. With ``consume_only`` (``xbus rebuild``) the runner applies its
topics and nothing else: no outbox relay, no timers, no background tasks, so it publishes
nothing.
"""

from __future__ import annotations

import asyncio
import functools

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from consumers.runtime.batch_worker import BatchWorker, names
from consumers.runtime.committer import GroupCommitter
from consumers.runtime.counts import RunnerStats
from consumers.runtime.held_events import look_after_held_events
from consumers.runtime.migrations import load_migrations, migrate
from consumers.runtime.poller import Poller
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.relay import OutboxRelay
from consumers.runtime.service import BackgroundContext, Service
from consumers.runtime.tasks import Supervisor
from consumers.runtime.timers import TimerLoop
from consumers.runtime.watchdog import ServiceHealth, Watchdog
from infrastructure.brokers import group_member_options
from infrastructure.catalogue import Catalogue
from infrastructure.groups import stop_and_leave
from infrastructure.settings import Settings

log = structlog.get_logger("xbus.runner")


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
        self.routing = service.routing(settings, catalogue)
        self.processor = BatchProcessor(service, self.routing)
        self.relay = OutboxRelay(service.name, settings, bootstrap, database_url)
        self.watchdog = Watchdog(service.name, settings, bootstrap)
        self.timers = TimerLoop(service, settings, self.routing)
        self._poller = Poller(max_records)
        self._worker = BatchWorker(
            self.processor, self._poller, self.watchdog, split_seconds=settings.batch_split_seconds
        )
        self._supervisor: Supervisor | None = None
        self._bootstrap = bootstrap
        self._catalogue = catalogue
        self._database_url = database_url
        self._max_records = max_records

    @property
    def stats(self) -> RunnerStats:
        return self._worker.stats

    @property
    def failure(self) -> BaseException | None:
        """The error that stopped the runner (a part of it failed), if any."""
        return None if self._supervisor is None else self._supervisor.failure

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
        # lock_waits.py reads a batch's waits on it (the batches may hold every connection of ``pool``);
        # it connects only when a batch has made no progress for a while
        watching = await asyncpg.create_pool(self._database_url, min_size=0, max_size=2)
        consumer = AIOKafkaConsumer(
            **await group_member_options(self.settings, self._bootstrap, self.settings.group(self.service.group_id)),
            max_poll_records=self._max_records,
        )
        consumer.subscribe(self.topics, listener=_FinishBeforeRevoke(self))
        supervisor = self._supervisor = Supervisor(self.service.name, stop)
        if not self.consume_only:
            supervisor.start(self.relay.run(stop), f"relay-{self.service.name}")
        await consumer.start()
        committer = GroupCommitter(consumer)
        self.watchdog.watch(consumer, self._worker.committed, self._worker.in_flight)
        supervisor.start(self.watchdog.run(pool, stop), f"watchdog-{self.service.name}")
        if not self.consume_only:
            self._start_companions(supervisor, pool, stop)
        log.info(
            "service started",
            service=self.service.name,
            group=self.settings.group(self.service.group_id),
            topics=self.topics,
            schema=self.schema,
        )

        try:
            drain = functools.partial(self._worker.drain, consumer, committer, pool, stop=stop, watching=watching)
            await self._poller.run(consumer, stop, drain, self._worker.committed, supervisor)
        finally:
            stop.set()
            log.info("service stopping", service=self.service.name, batches_under_way=len(self._poller.workers()))
            await self._finish_or_abandon()
            await stop_and_leave(consumer, self.settings, self._bootstrap)  # its partitions move at once
            await supervisor.finish()
            await pool.close()
            await watching.close()
            log.info(
                "service stopped",
                service=self.service.name,
                applied=self.stats.applied,
                duplicates=self.stats.duplicates,
                dead_lettered=self.stats.dead_lettered,
            )
        if supervisor.failure is not None:
            raise supervisor.failure

    def health(self) -> ServiceHealth:
        return self.watchdog.health()

    async def finish(self, partitions: set[TopicPartition]) -> None:
        """Drop what is queued for ``partitions`` and wait for their workers: the batches under way
        are applied and committed, or abandoned; the next owner reads the rest from the group's offsets."""
        await self._poller.give_up(partitions)
        for tp in partitions:
            self._worker.committed.pop(tp, None)

    def _start_companions(self, supervisor: Supervisor, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """The held events' keeper, the timers and the background tasks, beside the consumer."""
        name = self.service.name
        held = look_after_held_events(self.processor, pool, stop, self.settings.pending_timeout_seconds)
        supervisor.start(held, f"held-events-{name}")
        for timer in self.service.timers:
            supervisor.start(self.timers.run(timer, pool, stop), f"timer-{name}-{timer.name}")
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
        for run in self.service.background:
            task = f"background-{name}-{getattr(run, '__name__', type(run).__name__)}"
            supervisor.start(run(context), task, runs_until_stop=True)

    async def _finish_or_abandon(self) -> None:
        """On stop, batches under way get ``stop_grace_seconds`` to apply and commit before the group is
        left; a batch stuck longer (a handler waiting forever) is cancelled: its transaction rolls
        back and the partition's next owner re-reads it."""
        workers = self._poller.workers()
        if not workers:
            return
        _, stuck = await asyncio.wait(workers, timeout=self.settings.stop_grace_seconds)
        for worker in stuck:
            worker.cancel()
        if stuck:
            log.warning("batches abandoned at stop; they will be re-read", service=self.service.name, count=len(stuck))
            await asyncio.gather(*stuck, return_exceptions=True)


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """Hand a connection back to the pool without asyncpg's reset query, a round trip per batch.

    The runner's connections keep no session state to reset: everything runs in transactions
    (advisory locks included, as ``pg_advisory_xact_lock``), and the search path is a setting of
    the connection itself. asyncpg still rolls back a transaction left open before this runs.
    """


class _FinishBeforeRevoke(ConsumerRebalanceListener):
    """Give partitions up only after the batches under way on them have committed their offsets."""

    def __init__(self, runner: ServiceRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._runner.finish(revoked)
        log.info("partitions revoked", count=len(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._runner.processor.forget_replay_marks()  # a replay may have run while we were out of the group
        log.info("partitions assigned", partitions=names(assigned))
