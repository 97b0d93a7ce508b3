"""The careful path: a batch applied record by record, each event in a savepoint, by the rules for
everything unusual; and what operators and the held-events loop ask of held and dead-lettered
events.

Per record, in order: skip what this service does not handle; skip a duplicate (its event id is
in the inbox); park it if its key is blocked by a dead-lettered event; otherwise parse it and,
inside a savepoint, claim its inbox row (an event another partition's transaction applied
meanwhile is a duplicate too), run the handler and write the outbox rows of its follow-up
events. A record that cannot be parsed, or whose handler refuses it, is rolled back to its
savepoint and dead-lettered: an entry in ``xbus_dead_letters`` and an outbox row for the
service's dead-letter topic, in the same transaction. Its key is blocked so that later events of
the same aggregate are parked, not applied out of order; when the dead-lettered event comes back
(redrive) and applies, its parked successors are applied after it, in order.

An event whose handler says its prerequisite has not been applied yet (``MissingPrerequisite``)
is neither applied nor dead-lettered: it is held in ``xbus_pending``, without blocking its key,
and applied as soon as an event keyed as the prerequisite has been (right after it, in the same
transaction); :meth:`RecordByRecord.expire_waiting` dead-letters one that waited too long.

Errors of the infrastructure (PostgreSQL gone, serialization failure) are not the record's
fault: they abort the whole transaction and the caller retries the batch, so nothing is skipped
or reordered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from enum import Enum

import asyncpg
import structlog
from pydantic import ValidationError

from consumers.runtime.counts import BatchOutcome
from consumers.runtime.dead_lettering import Refusal, dead_letter, record_id
from consumers.runtime.inbox_outbox import claim, insert_follow_ups
from consumers.runtime.records import StoredRecord, headers_from_json, headers_to_json, key_text, storable_text
from consumers.runtime.replay_marks import ReplayMarks, is_replayed
from consumers.runtime.service import DomainError, MissingPrerequisite, Routing, Service
from consumers.runtime.transient import TRANSIENT_ERRORS
from consumers.runtime.unit_of_work import DbConnection
from schemas import Envelope, EnvelopeError, Event, UnknownEventType, describe_validation_error, event_types

log = structlog.get_logger("xbus.runtime")


class _Waiting(Exception):
    """An event's prerequisite has not been applied here yet: hold it (see the module docstring)."""

    def __init__(self, missing: MissingPrerequisite) -> None:
        super().__init__(str(missing))
        self.missing = missing


class Fate(Enum):
    """What became of one event: applied (or a duplicate), held waiting, or dead-lettered."""

    APPLIED = "applied"
    WAITING = "waiting"
    DEAD_LETTERED = "dead-lettered"


class RecordByRecord:
    def __init__(self, service: Service, routing: Routing, retry_backoff: float) -> None:
        self.service = service
        self.routing = routing
        self.retry_backoff = retry_backoff

    async def apply(
        self, connection: DbConnection, records: Sequence[StoredRecord], marks: ReplayMarks
    ) -> BatchOutcome:
        """Apply ``records`` one after the other in the caller's transaction."""
        outcome = BatchOutcome()
        for record in records:
            await self._one(connection, record, outcome, marks)
        return outcome

    async def hold_batch_locks(self, connection: DbConnection, records: Sequence[StoredRecord]) -> None:
        """The locks of the events among ``records`` this service handles (``Service.locks``), as the
        fast path takes them; a record that does not parse takes none (it is dead-lettered)."""
        if self.service.takes_batch_locks:
            events = [parsed for record in records if (parsed := self._parsed_or_none(record)) is not None]
            await self.service.hold_batch_locks(connection, events)

    def _parsed_or_none(self, record: StoredRecord) -> tuple[Event, Envelope] | None:
        try:
            envelope = Envelope.from_headers(record.headers)
            if envelope.type not in self.service.by_type:
                return None
            return event_types.parse(envelope.type, record.value or b""), envelope
        except (EnvelopeError, UnknownEventType, ValidationError):
            return None

    async def requests(self, connection: DbConnection) -> list[str]:
        """The dead letters an operator asked a redrive or a discard of, in the order of their records."""
        return [row["event_id"] for row in await connection.fetch(_ASKED_IDS)]

    async def carry_out(self, connection: DbConnection, event_id: str, marks: ReplayMarks) -> BatchOutcome | None:
        """Carry out what an operator asked of dead letter ``event_id`` (dead_letters.py), in one
        transaction: a redrive applies the stored record to this service again (or dead-letters it
        again, with the new reason); a discard marks it discarded. Either way, once the event no
        longer blocks its key, the events parked behind it are applied in their order. None when
        there is nothing to do: done already, or another member of the group is on it."""
        outcome = BatchOutcome()
        async with connection.transaction():
            row = await connection.fetchrow(_REQUESTED, event_id)
            if row is None:
                return None
            key = row["key"]
            record = stored_row(row)
            await self.hold_batch_locks(connection, [record])
            if row["discard_requested_at"] is not None:
                await connection.execute(_DISCARDED, event_id)
                settled = True
            else:
                settled = await self._redrive(connection, record, event_id, outcome, marks)
            if settled and key is not None and await connection.fetchval(_UNBLOCK, key, event_id):
                await self._release_parked(connection, key, outcome, marks)
        return outcome

    async def _redrive(
        self, connection: DbConnection, record: StoredRecord, event_id: str, outcome: BatchOutcome, marks: ReplayMarks
    ) -> bool:
        try:
            envelope = Envelope.from_headers(record.headers)
        except EnvelopeError as error:
            await self._dead_letter(connection, record, event_id, Refusal("EnvelopeError", str(error)), outcome)
            return False
        if envelope.type not in self.service.by_type:
            reason = f"{envelope.type} is folded by a projection of {self.service.name}, which only a discard settles"
            await self._dead_letter(connection, record, event_id, Refusal("NotRedrivable", reason), outcome)
            return False
        return await self._apply_or_dead_letter(connection, record, envelope, outcome, marks) is Fate.APPLIED

    async def _one(
        self, connection: DbConnection, record: StoredRecord, outcome: BatchOutcome, marks: ReplayMarks
    ) -> None:
        try:
            envelope = Envelope.from_headers(record.headers)
        except EnvelopeError as error:
            await self._dead_letter(
                connection, record, record_id(record), Refusal("EnvelopeError", str(error)), outcome
            )
            return
        if envelope.type not in self.service.by_type:
            outcome.ignored += 1
            return
        if await connection.fetchval("select 1 from xbus_inbox where event_id = $1", envelope.id):
            outcome.duplicates += 1
            return
        dead = await connection.fetchrow("select redriven_at from xbus_dead_letters where event_id = $1", envelope.id)
        if dead is not None and dead["redriven_at"] is None:
            outcome.duplicates += 1  # redelivery of an event already dead-lettered
            return
        if await connection.fetchval("select 1 from xbus_pending where event_id = $1", envelope.id):
            outcome.duplicates += 1  # redelivery of an event waiting for its prerequisite
            return
        key = key_text(record.key)
        # FOR SHARE: a redrive or discard that is unblocking the key waits for this transaction to
        # commit the event parked here before it reads what to release; one that already unblocked
        # it (not yet committed) makes this wait, then find no block and apply the event.
        blocker = await connection.fetchval("select blocked_by from xbus_blocked_keys where key = $1 for share", key)
        if blocker is not None and blocker != envelope.id:
            await self._park(connection, record, envelope.id, key, outcome)
            return
        if key is not None:  # earlier events of the key that wait go first, if they can now
            await self._apply_waiting(connection, _HELD_UNDER_KEY, key, outcome, marks)
        fate = await self._apply_or_dead_letter(connection, record, envelope, outcome, marks)
        if fate is Fate.APPLIED and blocker is not None:
            await connection.execute("delete from xbus_blocked_keys where key = $1", key)
            await self._release_parked(connection, key, outcome, marks)

    async def _apply_or_dead_letter(
        self,
        connection: DbConnection,
        record: StoredRecord,
        envelope: Envelope,
        outcome: BatchOutcome,
        marks: ReplayMarks,
    ) -> Fate:
        try:
            follow_ups = await self._apply(connection, record, envelope, replayed=is_replayed(record, marks))
        except _Waiting as waiting:
            await _hold(connection, self.service.name, record, envelope.id, waiting.missing)
            outcome.pending += 1
            return Fate.WAITING
        except Refusal as refused:
            await self._dead_letter(connection, record, envelope.id, refused, outcome)
            return Fate.DEAD_LETTERED
        if follow_ups is None:
            outcome.duplicates += 1
            return Fate.APPLIED
        outcome.applied += 1
        outcome.follow_ups += follow_ups
        if record.key is not None:
            await self._apply_waiting(connection, _WAITING_FOR, key_text(record.key), outcome, marks)
        return Fate.APPLIED

    async def _apply_waiting(
        self, connection: DbConnection, which: str, key: str, outcome: BatchOutcome, marks: ReplayMarks
    ) -> None:
        """Try again, in the order they arrived, the held events ``which`` selects for ``key``: those
        waiting for an event keyed ``key``, which has just been applied (each that applies frees
        those waiting for its own key in turn), or those of key ``key``, before a later event of
        the key is applied (so the key's events keep their order). One that still waits stays
        held, where it was in the queue."""
        rows = await connection.fetch(which, key)
        for row in rows:
            record = stored_row(row)
            fate = await self._apply_or_dead_letter(
                connection, record, Envelope.from_headers(record.headers), outcome, marks
            )
            if fate is not Fate.WAITING:
                await connection.execute(_UNHOLD, row["seq"])

    async def retry_waiting(self, connection: DbConnection, marks: ReplayMarks) -> BatchOutcome:
        """Try every held event again, oldest first, each in a transaction of its own under the
        batch locks of its key. Events are woken when their prerequisite is applied; this sweep
        catches the one case that misses: a prerequisite applied by another partition's
        transaction while the event was being held, neither seeing the other's rows."""
        outcome = BatchOutcome()
        for seq in [row["seq"] for row in await connection.fetch("select seq from xbus_pending order by seq")]:
            async with connection.transaction():
                row = await connection.fetchrow(_HELD_ROW, seq)
                if row is None:
                    continue  # applied meanwhile, or another member is on it
                record = stored_row(row)
                await self.hold_batch_locks(connection, [record])
                envelope = Envelope.from_headers(record.headers)
                if await self._apply_or_dead_letter(connection, record, envelope, outcome, marks) is not Fate.WAITING:
                    await connection.execute(_UNHOLD, seq)
        return outcome

    async def expire_waiting(self, connection: DbConnection, timeout_seconds: float) -> int:
        """Dead-letter the events that have waited longer than ``timeout_seconds`` for their
        prerequisite, with its reason and advice; how many. Their keys are not blocked: the missing
        event, once published, must apply as it arrives, and the advice then says to redrive."""
        async with connection.transaction():
            rows = await connection.fetch(_EXPIRED, timeout_seconds)
            for row in rows:
                await connection.execute(_UNHOLD, row["seq"])
                refusal = Refusal(
                    "PrerequisiteMissing",
                    f"waited {_seconds(timeout_seconds)} for what it needs, which never came: {row['reason']}",
                )
                await dead_letter(
                    connection,
                    self.service.name,
                    self.routing,
                    stored_row(row),
                    row["event_id"],
                    refusal,
                    block_key=False,
                )
        return len(rows)

    async def _apply(
        self, connection: DbConnection, record: StoredRecord, envelope: Envelope, *, replayed: bool
    ) -> int | None:
        """Apply one event in a savepoint; the number of follow-ups it recorded, or None when its
        inbox row was already there (another partition's transaction applied it meanwhile)."""
        try:
            event = event_types.parse(envelope.type, record.value or b"")
        except UnknownEventType as error:
            raise Refusal("UnknownEventType", str(error)) from None
        except ValidationError as error:
            raise Refusal("ValidationError", describe_validation_error(error)) from None
        for attempt in range(1, self.service.max_attempts + 1):
            try:
                async with connection.transaction():  # a savepoint: a refusal undoes only this event
                    if not await claim(connection, [(envelope.id, record)]):
                        return None
                    recorded = await self.service.handle(event, envelope, connection, self.routing, replayed=replayed)
                    await insert_follow_ups(connection, self.service.name, self.routing.follow_up_topic, recorded)
                return len(recorded)
            except TRANSIENT_ERRORS:
                raise
            except MissingPrerequisite as missing:
                raise _Waiting(missing) from None
            except DomainError as error:
                raise Refusal(type(error).__name__, str(error) or type(error).__name__) from None
            except Exception as error:  # a handler bug: retried, then dead-lettered with its type
                if attempt == self.service.max_attempts:
                    raise Refusal(type(error).__name__, str(error) or repr(error), attempts=attempt) from None
                log.warning(
                    "handler failed; retrying",
                    service=self.service.name,
                    event_id=envelope.id,
                    attempt=attempt,
                    error=repr(error),
                )
                await asyncio.sleep(self.retry_backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable: the loop returns or raises")

    async def _dead_letter(
        self,
        connection: DbConnection,
        record: StoredRecord,
        event_id: str,
        refused: Refusal,
        outcome: BatchOutcome,
    ) -> None:
        await dead_letter(connection, self.service.name, self.routing, record, event_id, refused)
        outcome.dead_lettered += 1
        outcome.dead_letter_ids.append(event_id)

    async def _park(
        self,
        connection: DbConnection,
        record: StoredRecord,
        event_id: str,
        key: str | None,
        outcome: BatchOutcome,
    ) -> None:
        await connection.execute(
            """
            insert into xbus_parked (key, event_id, topic, partition, "offset", value, headers)
            values ($1, $2, $3, $4, $5, $6, $7::jsonb) on conflict (event_id) do nothing
            """,
            key,
            event_id,
            record.topic,
            record.partition,
            record.offset,
            record.value,
            headers_to_json(record.headers),
        )
        outcome.parked += 1

    async def _release_parked(
        self, connection: DbConnection, key: str | None, outcome: BatchOutcome, marks: ReplayMarks
    ) -> None:
        """Apply the events parked behind ``key``'s blocker, in arrival order, until one fails."""
        rows = await connection.fetch(
            'select seq, event_id, key, topic, partition, "offset", value, headers::text as headers '
            "from xbus_parked where key = $1 order by seq",
            key,
        )
        for row in rows:
            await connection.execute("delete from xbus_parked where seq = $1", row["seq"])
            record = stored_row(row)
            outcome.released += 1
            if await connection.fetchval("select 1 from xbus_inbox where event_id = $1", row["event_id"]):
                continue
            envelope = Envelope.from_headers(record.headers)
            if await self._apply_or_dead_letter(connection, record, envelope, outcome, marks) is Fate.DEAD_LETTERED:
                remaining = [r["event_id"] for r in rows if r["seq"] > row["seq"]]
                log.info("release stopped at a failing event", key=key, still_parked=len(remaining))
                return


#: A dead letter an operator asked something of, locked: the member that carries it out holds it.
#: A dead letter an operator asked a redrive or a discard of, not carried out yet.
_ASKED = """d.discarded_at is null
  and (d.discard_requested_at is not null or d.redriven_at is not null)
  and not exists (select 1 from xbus_inbox i where i.event_id = d.event_id)"""
_REQUESTED = f"""
select d.key, d.topic, d.partition, d."offset", d.value, d.headers::text as headers, d.discard_requested_at
from xbus_dead_letters d
where d.event_id = $1 and {_ASKED}
for update of d skip locked
"""
_ASKED_IDS = f'select d.event_id from xbus_dead_letters d where {_ASKED} order by d.topic, d.partition, d."offset"'

_DISCARDED = "update xbus_dead_letters set discarded_at = now(), redriven_at = null where event_id = $1"
_UNBLOCK = "delete from xbus_blocked_keys where key = $1 and blocked_by = $2 returning 1"


async def _hold(
    connection: DbConnection, service: str, record: StoredRecord, event_id: str, missing: MissingPrerequisite
) -> None:
    """Hold ``record`` until its prerequisite is applied; held again, it keeps its place and its age."""
    await connection.execute(
        """
        insert into xbus_pending (event_id, key, waits_for, topic, partition, "offset", value, headers, reason)
        values ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)
        on conflict (event_id) do update set waits_for = excluded.waits_for, reason = excluded.reason
        """,
        event_id,
        key_text(record.key) if record.key is not None else None,
        missing.waits_for,
        record.topic,
        record.partition,
        record.offset,
        record.value,
        headers_to_json(record.headers),
        storable_text(str(missing)),
    )
    log.info("event waits for its prerequisite", service=service, event_id=event_id, waits_for=missing.waits_for)


def stored_row(row: asyncpg.Record) -> StoredRecord:
    """The record a runtime table row (pending, parked, dead letter) keeps, as read."""
    key = row["key"]
    return StoredRecord(
        row["topic"],
        row["partition"],
        row["offset"],
        key.encode() if key is not None else None,
        row["value"],
        headers_from_json(row["headers"]),
    )


def _seconds(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


_HELD = 'select seq, event_id, key, topic, partition, "offset", value, headers::text as headers from xbus_pending'
_WAITING_FOR = f"{_HELD} where waits_for = $1 order by seq"
_HELD_UNDER_KEY = f"{_HELD} where key = $1 order by seq"
_HELD_ROW = f"{_HELD} where seq = $1 for update skip locked"
_UNHOLD = "delete from xbus_pending where seq = $1"

_EXPIRED = """
select seq, event_id, key, topic, partition, "offset", value, headers::text as headers, reason
from xbus_pending where pending_since < now() - make_interval(secs => $1)
order by seq for update skip locked
"""
