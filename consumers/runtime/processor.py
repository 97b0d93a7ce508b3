"""A batch of records (one partition's or several), applied in one PostgreSQL transaction.

The record-by-record path (record_by_record.py) costs about ten PostgreSQL round trips per event:
three lookups (inbox, dead letters, blocked keys), a savepoint and its release, the inbox row and
one outbox row per follow-up, besides the handler's own statements. Almost every batch needs none
of that care: its records are well-formed events of handled types, none was dead-lettered, no
key is blocked and every handler succeeds at its first try. For such a batch the fast path here
claims every inbox row and looks up dead letters and blocked keys for all records in one
statement (what it claims are the events to apply), runs the handlers one after the other
without savepoints, and writes every follow-up, with the NOTIFY that wakes the relay, in one
statement. A clean batch costs BEGIN, those two statements, the handlers' own and COMMIT.

At the first thing the fast path does not handle (a record without an envelope, an unknown or
invalid event, a dead-lettered id, a blocked key, an event id twice in the batch, a handler that
raises) the transaction is rolled back, so nothing of the attempt remains, and the batch is
applied record by record in a new one, where each of those cases has its rule. Errors of the
infrastructure are not unusual: they abort the transaction and the caller retries the whole
batch, on either path.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from pydantic import ValidationError

from consumers.runtime import metrics
from consumers.runtime.counts import BatchOutcome
from consumers.runtime.dead_lettering import Refusal, dead_letter, record_id
from consumers.runtime.inbox_outbox import claim_unless_held_back, insert_follow_ups
from consumers.runtime.record_by_record import RecordByRecord
from consumers.runtime.records import StoredRecord, key_text
from consumers.runtime.replay_marks import ReplayMarks, clear_passed_mark, is_replayed, read_replay_marks
from consumers.runtime.service import Routing, Service
from consumers.runtime.transient import TRANSIENT_ERRORS
from consumers.runtime.unit_of_work import DbConnection, Recorded
from schemas import Envelope, EnvelopeError, Event, UnknownEventType, event_types

log = structlog.get_logger("xbus.runtime")


class _Unusual(Exception):
    """The batch needs the record-by-record path; the message says why (it is logged)."""


class BatchProcessor:
    def __init__(self, service: Service, routing: Routing, retry_backoff: float = 0.05) -> None:
        self.service = service
        self.routing = routing
        self.careful = RecordByRecord(service, routing, retry_backoff)
        self._marks: ReplayMarks | None = None

    def forget_replay_marks(self) -> None:
        """Read the replay marks again before the next batch.

        They are read once, not per batch: ``xbus replay`` and ``xbus rebuild`` write them only
        while the group has no member, and this runner's member must join the group again after
        that, which calls this. Marks the runner passes meanwhile are dropped as it passes them.
        """
        self._marks = None

    async def process(self, connection: DbConnection, records: Sequence[StoredRecord]) -> BatchOutcome:
        """Apply ``records`` (each partition's in offset order) in one transaction on ``connection``:
        the fast path's, or, when the batch is unusual, the record-by-record path's.

        Any error that is not of the infrastructure and escapes the rules of both paths (a bug of
        the runtime, a service's ``locks``, a value some statement refuses) must not stop the
        service on the same record at every restart: the batch is then applied one record per
        transaction, and the record that fails alone is dead-lettered with the error."""
        try:
            return await self._process(connection, records)
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:
            metrics.BATCHES_REDONE.labels(self.service.name, "record_broke_batch").inc()
            log.error(
                "a record broke its batch; applying the batch one record at a time",
                service=self.service.name,
                records=len(records),
                error=repr(error),
            )
        outcome = BatchOutcome()
        for record in records:
            try:
                outcome.add(await self._process(connection, [record]))
            except TRANSIENT_ERRORS:
                raise
            except Exception as error:
                await self._dead_letter_alone(connection, record, error, outcome)
        return outcome

    async def _dead_letter_alone(
        self, connection: DbConnection, record: StoredRecord, error: Exception, outcome: BatchOutcome
    ) -> None:
        """The last resort for a record no path can apply: dead-lettered in a transaction of its own
        (its key blocked, so its successors wait for a decision); if even that fails, without the
        block (its key may be what a statement refuses). Beyond that the database itself is broken."""
        try:
            event_id = Envelope.from_headers(record.headers).id
        except EnvelopeError:
            event_id = record_id(record)
        if await connection.fetchval(_STILL_DEAD, event_id):
            outcome.duplicates += 1  # read again (a rebalance, a restart): dead-lettered already
            return
        refusal = Refusal(type(error).__name__, f"the runtime could not apply it: {error}")
        for block_key in (True, False):
            try:
                async with connection.transaction():
                    await dead_letter(
                        connection, self.service.name, self.routing, record, event_id, refusal, block_key=block_key
                    )
                    await self._pass_mark(connection, [record], await self._replay_marks(connection))
            except TRANSIENT_ERRORS:
                raise
            except Exception:
                if not block_key:
                    raise
                continue
            self._forget_passed_mark([record])
            outcome.dead_lettered += 1
            outcome.dead_letter_ids.append(event_id)
            return

    async def _process(self, connection: DbConnection, records: Sequence[StoredRecord]) -> BatchOutcome:
        marks = await self._replay_marks(connection)
        try:
            async with connection.transaction():
                outcome = await self._apply_fast(connection, records, marks)
                await self._pass_mark(connection, records, marks)
            self._forget_passed_mark(records)
            return outcome
        except _Unusual as unusual:  # rolled back: nothing of the attempt remains
            metrics.BATCHES_REDONE.labels(self.service.name, "unusual").inc()
            log.info(
                "batch applied record by record", service=self.service.name, records=len(records), why=str(unusual)
            )
        async with connection.transaction():
            await self.careful.hold_batch_locks(connection, records)
            outcome = await self.careful.apply(connection, records, marks)
            await self._pass_mark(connection, records, marks)
        self._forget_passed_mark(records)
        return outcome

    async def _apply_fast(
        self, connection: DbConnection, records: Sequence[StoredRecord], marks: ReplayMarks
    ) -> BatchOutcome:
        """Apply ``records`` in the caller's transaction on ``connection``, or raise _Unusual (the
        caller must then roll that transaction back)."""
        handled: list[tuple[StoredRecord, Envelope, Event]] = []
        for record in records:
            try:
                envelope = Envelope.from_headers(record.headers)
            except EnvelopeError:
                raise _Unusual(
                    f"a record without a valid envelope at {record.topic}[{record.partition}]@{record.offset}"
                ) from None
            if envelope.type in self.service.by_type:
                handled.append((record, envelope, _parsed(envelope, record)))
        ignored = len(records) - len(handled)
        if not handled:
            return BatchOutcome(ignored=ignored, fast=True)
        held = await self.service.hold_batch_locks(connection, [(event, envelope) for _, envelope, event in handled])
        ids = [envelope.id for _, envelope, _ in handled]
        keys = [key_text(record.key) for record, _, _ in handled if record.key is not None]
        if len(set(ids)) != len(ids):
            raise _Unusual("an event id twice in the batch")
        claimed = await claim_unless_held_back(
            connection, [(envelope.id, record) for record, envelope, _ in handled], keys
        )
        if claimed is None:
            raise _Unusual("held back: a dead-lettered or waiting event, or a blocked key")
        fresh = [item for item in handled if item[1].id in claimed]
        recorded: list[Recorded] = []
        for record, envelope, event in fresh:
            try:
                recorded += await self.service.handle(
                    event, envelope, connection, self.routing, replayed=is_replayed(record, marks), held=held
                )
            except TRANSIENT_ERRORS:
                raise
            except Exception as error:  # refused, or a bug that may pass on a retry: the other path decides
                raise _Unusual(f"the handler of {envelope.type} raised {type(error).__name__}") from None
        await insert_follow_ups(connection, self.service.name, self.routing.follow_up_topic, recorded)
        return BatchOutcome(
            applied=len(fresh),
            duplicates=len(handled) - len(fresh),
            ignored=ignored,
            follow_ups=len(recorded),
            fast=True,
        )

    async def requests(self, connection: DbConnection) -> list[str]:
        """The dead letters an operator asked a redrive or a discard of, in the order of their records."""
        return await self.careful.requests(connection)

    async def carry_out(self, connection: DbConnection, event_id: str) -> BatchOutcome | None:
        """Carry out what an operator asked of dead letter ``event_id`` (RecordByRecord.carry_out)."""
        return await self.careful.carry_out(connection, event_id, await self._replay_marks(connection))

    async def retry_waiting(self, connection: DbConnection) -> BatchOutcome:
        """Try every held event again (RecordByRecord.retry_waiting)."""
        return await self.careful.retry_waiting(connection, await self._replay_marks(connection))

    async def expire_waiting(self, connection: DbConnection, timeout_seconds: float) -> int:
        """Dead-letter the events that waited too long (RecordByRecord.expire_waiting)."""
        return await self.careful.expire_waiting(connection, timeout_seconds)

    async def _replay_marks(self, connection: DbConnection) -> ReplayMarks:
        """The replay marks, read on first use (see :meth:`forget_replay_marks`)."""
        if self._marks is None:
            self._marks = await read_replay_marks(connection)
        return self._marks

    @staticmethod
    async def _pass_mark(connection: DbConnection, records: Sequence[StoredRecord], marks: ReplayMarks) -> None:
        for (topic, partition), next_offset in _next_offsets(records).items():
            if (topic, partition) in marks:
                await clear_passed_mark(connection, topic, partition, next_offset)

    def _forget_passed_mark(self, records: Sequence[StoredRecord]) -> None:
        """Once the batch's transaction has committed, as clear_passed_mark did in it."""
        if self._marks is None:
            return
        for partition, next_offset in _next_offsets(records).items():
            until = self._marks.get(partition)
            if until is not None and until <= next_offset:
                del self._marks[partition]


def _parsed(envelope: Envelope, record: StoredRecord) -> Event:
    try:
        return event_types.parse(envelope.type, record.value or b"")
    except (UnknownEventType, ValidationError) as error:
        raise _Unusual(f"{envelope.type} {envelope.id} does not parse: {type(error).__name__}") from None


_STILL_DEAD = "select 1 from xbus_dead_letters where event_id = $1 and redriven_at is null"


def _next_offsets(records: Sequence[StoredRecord]) -> dict[tuple[str, int], int]:
    """The offset after the last record of each partition in ``records`` (each in offset order)."""
    return {(record.topic, record.partition): record.offset + 1 for record in records}
