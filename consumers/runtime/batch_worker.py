"""The worker that applies a group of partitions' queues and commits their offsets.

It takes a batch (poller.py), applies it in one PostgreSQL transaction
(processor.py), and commits the offsets past it only after that transaction has committed, then
takes the next, until the group's queues are empty. Errors of PostgreSQL or Kafka are retried
with backoff, the batch as a whole, so nothing is skipped or reordered. A batch of several
partitions that makes no progress for ``batch_split_seconds`` (progress.py: a handler stuck on
something external, say) is rolled back and its partitions go solo; waiting for the locks of a
batch that progresses is not stuck (lock_waits.py).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterable, Sequence

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from consumers.runtime import metrics
from consumers.runtime.committer import GroupCommitter
from consumers.runtime.counts import EVENT_FATES, BatchOutcome, RunnerStats
from consumers.runtime.lock_waits import waiting_on_progress
from consumers.runtime.poller import Batch, Poller
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.progress import NoProgress, ProgressWatch
from consumers.runtime.records import StoredRecord
from consumers.runtime.transient import TRANSIENT_ERRORS
from consumers.runtime.watchdog import Watchdog

log = structlog.get_logger("xbus.runner")

MAX_BACKOFF_SECONDS = 5.0


class BatchWorker:
    def __init__(
        self,
        processor: BatchProcessor,
        poller: Poller,
        watchdog: Watchdog,
        *,
        split_seconds: float,
    ) -> None:
        self.service = processor.service.name
        self.processor = processor
        self.poller = poller
        self.watchdog = watchdog
        self.split_seconds = split_seconds
        self.stats = RunnerStats()
        #: The offset committed (or, before the first commit, read from) per partition: what the
        #: watchdog compares with the log's end.
        self.committed: dict[TopicPartition, int] = {}
        #: The progress of the batch under way of each partition that has one: the watchdog counts
        #: a batch that completes statements as its partitions' progress, so that a partition
        #: working through a long batch is not taken for a stuck one.
        self.in_flight: dict[TopicPartition, ProgressWatch] = {}

    async def drain(
        self,
        consumer: AIOKafkaConsumer,
        committer: GroupCommitter,
        pool: asyncpg.Pool,
        owned: set[TopicPartition],
        *,
        stop: asyncio.Event,
        watching: asyncpg.Pool,
    ) -> None:
        """Apply the queues of ``owned`` a batch at a time until none has records left, or the
        runner stops (the batch under way is finished either way). ``watching`` is the pool on
        which a batch's lock waits are read (lock_waits.py): one of its own, since the batches
        may hold every connection of ``pool``."""
        split: set[TopicPartition] = set()
        try:
            while not stop.is_set() and (batch := self.poller.take(consumer, owned)):
                if not await self._work(committer, pool, watching, batch, stop):
                    split = set(batch)
                    return
        finally:
            self.poller.release(owned, set(owned))
            self.poller.go_solo(split)  # after the release, which ends solo runs

    async def _work(
        self, committer: GroupCommitter, pool: asyncpg.Pool, watching: asyncpg.Pool, batch: Batch, stop: asyncio.Event
    ) -> bool:
        """Apply ``batch`` and commit its offsets; False when it held several partitions and made
        no progress for ``split_seconds``: it was rolled back and its records queued again, each
        partition to be applied on its own."""
        records = [record for records in batch.values() for record in records]
        watch = ProgressWatch(self.split_seconds)
        self.in_flight.update(dict.fromkeys(batch, watch))
        try:
            work = self._process_with_retry(pool, watching, records, stop, watch)
            self._count(await (watch.run(work) if len(batch) > 1 else work))
        except NoProgress as stuck:
            # Rolled back, unless it was cancelled between COMMIT and the return: the records
            # then come back as duplicates, which the inbox skips.
            self.poller.put_back(batch)
            metrics.BATCHES_REDONE.labels(self.service, "no_progress").inc()
            log.warning(
                "batch of a group made no progress; applying its partitions one by one",
                service=self.service,
                partitions=names(batch),
                reason=str(stuck),
            )
            return False
        except _Abandoned:
            log.warning(
                "stopped while the database was unavailable; the batch will be re-read",
                service=self.service,
                partitions=names(batch),
            )
            return True
        finally:
            for tp in batch:
                if self.in_flight.get(tp) is watch:
                    del self.in_flight[tp]
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        try:
            await committer.commit(offsets)
            self.committed.update(offsets)
            self.watchdog.committed_now()
        except KafkaError as error:
            # The group moved on: the new owner re-reads these events, and the inbox skips them.
            log.warning("offset commit failed after the transaction committed", service=self.service, error=repr(error))
        return True

    async def _process_with_retry(
        self,
        pool: asyncpg.Pool,
        watching: asyncpg.Pool,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        stop: asyncio.Event,
        watch: ProgressWatch,
    ) -> BatchOutcome:
        """Apply ``records`` in a transaction, retried while the infrastructure fails; ``watch`` is
        told of every statement the transaction's connection completes, and may ask whether a
        wait of that connection is on others' progress. Without a connection (waiting for one of
        the pool, or for a retry's backoff) the batch only waits its turn."""
        stored = [StoredRecord(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or ())) for r in records]
        backoff = 0.1
        started = time.perf_counter()
        while True:
            watch.excuse = _waiting_its_turn
            try:
                async with pool.acquire() as connection:
                    connection.add_query_logger(watch.progressed)
                    pid = connection.get_server_pid()
                    watch.excuse = functools.partial(waiting_on_progress, watching, pid, self.split_seconds)
                    try:
                        outcome = await self.processor.process(connection, stored)
                    finally:
                        watch.excuse = _waiting_its_turn
                        connection.remove_query_logger(watch.progressed)
                metrics.BATCH_DURATION.labels(self.service).observe(time.perf_counter() - started)
                return outcome
            except TRANSIENT_ERRORS as error:
                if stop.is_set():
                    raise _Abandoned from error
                self.stats.retries += 1
                metrics.BATCH_FAILURES.labels(self.service, type(error).__name__).inc()
                log.warning(
                    "batch failed on the infrastructure; retrying",
                    service=self.service,
                    partitions=names({TopicPartition(r.topic, r.partition) for r in records}),
                    error=repr(error),
                    retry_in=backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _count(self, outcome: BatchOutcome) -> None:
        self.stats.count(outcome)
        for name, label in EVENT_FATES.items():
            if count := getattr(outcome, name):
                metrics.EVENTS.labels(self.service, label).inc(count)


async def _waiting_its_turn() -> bool:
    """The excuse of a batch that holds no connection: it waits for the pool or for a retry, not on
    anything of its own that could hang."""
    return True


def names(partitions: Iterable[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in sorted(partitions)]


class _Abandoned(Exception):
    """Asked to stop while a batch could not be applied: leave it uncommitted, to be re-read."""
