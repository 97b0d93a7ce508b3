"""A keyed latest-state projection of high-rate topics: the job a Faust table does, kept in PostgreSQL.

The processor gives every event an inbox row, which is right for lifecycle events and wrong for
market data: a row per tick, kept for ever, to make redelivery harmless. A projection keeps only
the latest state per key (an instrument) and makes redelivery harmless with offsets instead:

- It is a member of a consumer group of its own (``xbus.<service>.<projection>``) subscribed by
  pattern, so a topic created later (a new exchange's market data) is read within
  ``metadata_max_age_ms``.
- Per fetched batch per partition (the partition paused meanwhile, the others going on), in
  **one** PostgreSQL transaction: it locks the partition's row in ``xbus_projection_offsets``
  (the next offset to apply) and drops the records below it (applied already), loads the state
  of every key the rest carry (one query), parses each record and folds its event into its key's
  state in memory with the projection's pure ``fold``, saves the states touched (one statement)
  and stores the partition's next offset. No inbox row per event.
- Offsets are committed to Kafka after that, for lag tools only: on assignment the projection
  seeks to the offsets PostgreSQL holds, which are the truth. A crash between the transaction and
  the commit, or two members owning one partition for a moment during a rebalance, neither loses
  nor applies anything twice (a day's volume is never counted twice).
- The service's watchdog watches the projection's partitions beside the service's own, with the
  positions PostgreSQL holds as their committed offsets: a fold stuck or failing on a partition
  shows as that partition stalled in the service's health.
- A record that is not a CloudEvents envelope, not JSON, or not its type's model is
  dead-lettered by the processor's own code (``xbus dlq list`` shows it) in the same transaction,
  and the partition moves on; event types the projection does not fold are skipped.

A projection is a background task of its service (``Service.background``): it runs in the
service's process, on its PostgreSQL schema and pool, beside its consumer, and creates its offsets
table there when it starts (migration ``0000_projection_offsets``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from consumers.runtime.committer import GroupCommitter
from consumers.runtime.dead_lettering import Refusal, dead_letter, record_id
from consumers.runtime.migrations import Migration, migrate
from consumers.runtime.records import StoredRecord, key_text
from consumers.runtime.service import BackgroundContext
from consumers.runtime.tasks import unless_stopped, until_it_works
from consumers.runtime.transient import TRANSIENT_ERRORS
from consumers.runtime.unit_of_work import DbConnection
from infrastructure.brokers import group_member_options
from infrastructure.errors import BrokerUnavailable
from infrastructure.groups import stop_and_leave
from schemas import Envelope, EnvelopeError, Event, describe_validation_error

log = structlog.get_logger("xbus.projection")

State = TypeVar("State")

MAX_BACKOFF_SECONDS = 5.0
#: How soon a topic created after start is read (the consumer's metadata refresh).
METADATA_MAX_AGE_MS = 2_000

OFFSETS = Migration(
    "0000_projection_offsets",
    """
    create table if not exists xbus_projection_offsets (
        projection text not null,
        topic text not null,
        partition integer not null,
        next_offset bigint not null,
        updated_at timestamptz not null default now(),
        primary key (projection, topic, partition)
    );
    """,
)

# Inserts the partition's row if it has none (the batch's first offset is then where it starts),
# and otherwise locks it: a member that lost the partition in a rebalance and still applies a
# batch waits here for the new owner's transaction, then finds its records applied.
_LOCK_POSITION = """
insert into xbus_projection_offsets (projection, topic, partition, next_offset) values ($1, $2, $3, $4)
on conflict (projection, topic, partition) do update set next_offset = xbus_projection_offsets.next_offset
returning next_offset
"""
_STORE_POSITION = """
update xbus_projection_offsets set next_offset = $4, updated_at = now()
where projection = $1 and topic = $2 and partition = $3
"""
_POSITIONS = """
select topic, partition, next_offset from xbus_projection_offsets
where projection = $1 and topic = any($2::text[])
"""


@dataclass(frozen=True)
class Projection(Generic[State]):
    """What a service declares; used as one of its ``background`` tasks, it runs the projection."""

    #: Names the consumer group (``xbus.<service>.<name>``) and the rows of ``xbus_projection_offsets``.
    name: str
    #: Regular expression of the catalogue topic names to read; the deployment's topic prefix is added.
    topics: str
    #: The event models to fold; records of other types are skipped.
    events: tuple[type[Event], ...]
    #: Pure: the key's state after ``event`` (``None`` before its first event). Keys are aggregate ids.
    fold: Callable[[State | None, Event], State]
    #: The stored states of these keys (a key without one is left out); once per partition batch.
    load: Callable[[DbConnection, Sequence[str]], Awaitable[Mapping[str, State]]]
    #: Upsert these states, in one statement if it can: it runs once per partition batch.
    save: Callable[[DbConnection, Mapping[str, State]], Awaitable[None]]
    #: Records per poll, over all partitions.
    max_records: int = 20_000

    @property
    def __name__(self) -> str:
        """The runner names the background task after this."""
        return f"projection-{self.name}"

    async def __call__(self, context: BackgroundContext) -> None:
        await ProjectionRunner(self, context).run()


class ProjectionRunner(Generic[State]):
    def __init__(self, projection: Projection[State], context: BackgroundContext) -> None:
        self.projection = projection
        self.context = context
        settings = context.settings
        self.group = settings.group(f"{context.service.group_id}.{projection.name}")
        self.pattern = f"{re.escape(settings.topic_prefix)}(?:{projection.topics})$"
        self.schema = settings.db_schema(context.service.name)
        self.applied = 0
        self.dead_lettered = 0
        self._models = {model.event_type: model for model in projection.events}
        # One task per partition with a batch under way (the partition is paused meanwhile, so
        # that its batches apply in order while the others' fetching and parsing go on).
        self._workers: dict[TopicPartition, asyncio.Task[None]] = {}
        #: The next offset to apply of each partition, as the last batch stored it (or the first
        #: offset fetched): what the watchdog judges progress by.
        self._positions: dict[TopicPartition, int] = {}
        self._failure: BaseException | None = None

    async def run(self) -> None:
        stop, service = self.context.stop, self.context.service.name
        outage = (*TRANSIENT_ERRORS, KafkaError, BrokerUnavailable)
        if await until_it_works(self._migrate, stop, outage, what="projection start", service=service) is None:
            return
        consumer = await until_it_works(self._join, stop, outage, what="projection start", service=service)
        if consumer is None:
            return
        committer = GroupCommitter(consumer)
        self.context.watchdog.watch(consumer, self._positions)
        log.info("projection started", projection=self.projection.name, group=self.group, pattern=self.pattern)
        try:
            while (
                fetched := await unless_stopped(
                    self.context.stop, consumer.getmany(timeout_ms=200, max_records=self.projection.max_records)
                )
            ) is not None:
                if self._failure is not None:
                    raise self._failure
                assigned = consumer.assignment()
                for tp, records in fetched.items():
                    if records and tp in assigned:
                        self._positions.setdefault(tp, records[0].offset)
                        consumer.pause(tp)  # until this batch is applied
                        self._start_worker(consumer, committer, tp, records)
        finally:
            self.context.watchdog.unwatch(consumer)
            await self.finish(set(self._workers))
            await stop_and_leave(consumer, self.context.settings, self.context.bootstrap)
            log.info(
                "projection stopped",
                projection=self.projection.name,
                applied=self.applied,
                dead_lettered=self.dead_lettered,
            )

    async def _migrate(self) -> list[str]:
        """The projection's offsets table, migrated: the versions applied."""
        connection = await asyncpg.connect(self.context.database_url)
        try:
            return await migrate(connection, self.schema, [OFFSETS])
        finally:
            await connection.close()

    async def _join(self) -> AIOKafkaConsumer:
        """The projection's group member, started (a failed start leaves nothing behind)."""
        settings = self.context.settings
        consumer = AIOKafkaConsumer(
            **await group_member_options(settings, self.context.bootstrap, self.group),
            max_poll_records=self.projection.max_records,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        consumer.subscribe(pattern=self.pattern, listener=_SeekToStoredOffsets(self, consumer))
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def finish(self, partitions: set[TopicPartition]) -> None:
        """Wait for the batches under way on ``partitions``."""
        await asyncio.gather(*(self._workers[tp] for tp in partitions if tp in self._workers), return_exceptions=True)
        for tp in partitions:
            self._positions.pop(tp, None)

    def _start_worker(
        self,
        consumer: AIOKafkaConsumer,
        committer: GroupCommitter,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
    ) -> None:
        worker = asyncio.create_task(self._work(consumer, committer, tp, records))
        self._workers[tp] = worker
        worker.add_done_callback(lambda done: self._worker_done(tp, done))

    def _worker_done(self, tp: TopicPartition, worker: asyncio.Task[None]) -> None:
        if self._workers.get(tp) is worker:
            del self._workers[tp]
        if not worker.cancelled() and worker.exception() is not None and self._failure is None:
            self._failure = worker.exception()  # a bug: the projection stops, and the service with it

    async def _work(
        self,
        consumer: AIOKafkaConsumer,
        committer: GroupCommitter,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
    ) -> None:
        position = await self._apply_with_retry(tp, records)
        if tp not in consumer.assignment():
            return  # revoked meanwhile: the next owner starts from what PostgreSQL holds
        if position is not None and position != records[-1].offset + 1:
            # PostgreSQL holds another position: records before this batch were never applied
            # (its offsets were reset under a running member), or another member applied further.
            consumer.seek(tp, position)
        consumer.resume(tp)
        if position is not None:
            self._positions[tp] = position
            self.context.watchdog.committed_now()
            try:
                await committer.commit({tp: position})
            except KafkaError as error:  # only lag tools read these: PostgreSQL has the offsets
                log.info("projection offset commit failed", projection=self.projection.name, error=repr(error))

    async def stored_positions(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        """The next offset to apply of each of ``partitions`` that has one in PostgreSQL."""
        rows = await self.context.pool.fetch(_POSITIONS, self.projection.name, sorted({tp.topic for tp in partitions}))
        wanted = set(partitions)
        positions = {TopicPartition(row["topic"], row["partition"]): row["next_offset"] for row in rows}
        return {tp: offset for tp, offset in positions.items() if tp in wanted}

    async def _apply_with_retry(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> int | None:
        """Apply one partition's batch; the partition's next offset as stored, or None if stopped first."""
        backoff = 0.1
        while True:
            try:
                return await self._apply(tp, records)
            except TRANSIENT_ERRORS as error:
                if self.context.stop.is_set():
                    return None  # left unapplied: the next owner starts from what PostgreSQL holds
                log.warning(
                    "projection batch failed on the infrastructure; retrying",
                    projection=self.projection.name,
                    topic=tp.topic,
                    partition=tp.partition,
                    error=repr(error),
                    retry_in=backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _apply(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> int:
        """The batch's records from the stored position on, folded into their keys' states in one transaction.

        Each record is parsed and folded at once, so that its event is garbage as soon as it is
        folded: keeping a batch of parsed events alive until the end made Python's cyclic garbage
        collector walk them over and over, and halved the rate.
        """
        first, last = records[0].offset, records[-1].offset
        name = self.projection.name
        applied = refused = 0
        async with self.context.pool.acquire() as connection, connection.transaction():
            position: int = await connection.fetchval(_LOCK_POSITION, name, tp.topic, tp.partition, first)
            if position < first or position > last:
                return position  # nothing of this batch to apply
            fresh = [record for record in records if record.offset >= position]
            keys = {key_text(record.key) for record in fresh if record.key is not None}
            states: dict[str, State] = dict(await self.projection.load(connection, list(keys)))
            touched: set[str] = set()
            for record in fresh:
                outcome = self._parse(record)
                if isinstance(outcome, Event):
                    key = outcome.aggregate_id
                    if key not in keys:  # keyed otherwise than by its aggregate: its state was not loaded
                        keys.add(key)
                        states.update(await self.projection.load(connection, [key]))
                    states[key] = self.projection.fold(states.get(key), outcome)
                    touched.add(key)
                    applied += 1
                elif outcome is not None:
                    await self._dead_letter(connection, record, *outcome)
                    refused += 1
            if touched:
                await self.projection.save(connection, {key: states[key] for key in touched})
            await connection.execute(_STORE_POSITION, name, tp.topic, tp.partition, last + 1)
        self.applied += applied
        self.dead_lettered += refused
        return last + 1

    def _parse(self, record: ConsumerRecord[bytes, bytes]) -> Event | tuple[str, Refusal] | None:
        """The record's event; or the id to dead-letter it under and why; or None for a type not folded."""
        try:
            envelope = Envelope.from_headers(record.headers)
        except EnvelopeError as error:
            return record_id(_stored(record)), Refusal("EnvelopeError", str(error))
        model = self._models.get(envelope.type)
        if model is None:
            return None
        try:
            return model.model_validate_json(record.value or b"")
        except ValidationError as error:
            return envelope.id, Refusal("ValidationError", describe_validation_error(error))

    async def _dead_letter(
        self, connection: DbConnection, record: ConsumerRecord[bytes, bytes], event_id: str, refusal: Refusal
    ) -> None:
        # The processor's dead-lettering, so that these entries list and redrive like any other;
        # the key is not blocked: a projection folds latest states, it parks nothing behind it.
        await dead_letter(
            connection,
            self.context.service.name,
            self.context.routing,
            _stored(record),
            event_id,
            refusal,
            block_key=False,
        )


def _stored(record: ConsumerRecord[bytes, bytes]) -> StoredRecord:
    return StoredRecord(record.topic, record.partition, record.offset, record.key, record.value, list(record.headers))


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    """PostgreSQL's offsets are the truth: start each assigned partition there (or at its beginning)."""

    def __init__(self, runner: ProjectionRunner[Any], consumer: AIOKafkaConsumer) -> None:
        self._runner = runner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._runner.finish(revoked)  # so that the next owner's seek finds their offsets stored

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if not assigned:
            return
        backoff = 0.1
        while True:
            try:
                positions = await self._runner.stored_positions(assigned)
                break
            except TRANSIENT_ERRORS as error:
                if self._runner.context.stop.is_set():
                    return  # leaving: the fencing in each batch's transaction still holds
                log.warning("projection cannot read its offsets; retrying", error=repr(error), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        for tp, offset in positions.items():
            self._consumer.seek(tp, offset)
        beginning = [tp for tp in assigned if tp not in positions]
        if beginning:
            await self._consumer.seek_to_beginning(*beginning)
        log.info(
            "projection partitions assigned",
            projection=self._runner.projection.name,
            partitions=len(assigned),
            from_stored_offsets=len(positions),
        )
