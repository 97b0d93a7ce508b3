"""A partition's batch in a handful of round trips, when nothing about it is unusual.

The record-by-record path (processor.py) costs about ten PostgreSQL round trips per event: three
lookups (inbox, dead letters, blocked keys), a savepoint and its release, the inbox row and one
outbox row per follow-up, besides the handler's own statements. Almost every batch needs none of
that care: its records are well-formed events of handled types, none was dead-lettered, no key
is blocked and every handler succeeds at its first try. For such a batch this path claims every
inbox row and looks up dead letters and blocked keys for all records in one statement (what it
claims are the events to apply), runs the handlers one after the other without savepoints, and
writes every follow-up, with the NOTIFY that wakes the relay, in one statement. A clean batch
costs BEGIN, those two statements, the handlers' own and COMMIT.

At the first thing it does not handle (a record without an envelope, an unknown or invalid
event, a dead-lettered id, a blocked key, an event id twice in the batch, a handler that raises)
it raises :class:`Unusual`; the caller rolls its transaction back, so nothing of the attempt
remains, and applies the batch record by record in a new one, where each of those cases has its
rule. Errors of the infrastructure are not unusual: they abort the transaction and the whole
batch is retried, as on the other path.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from consumers.runtime.counts import BatchOutcome
from consumers.runtime.inbox import claim_unless_held_back
from consumers.runtime.outbox_rows import insert_follow_ups
from consumers.runtime.records import StoredRecord, key_text
from consumers.runtime.replay_marks import ReplayMarks, is_replayed
from consumers.runtime.service import Routing, Service
from consumers.runtime.transient import TRANSIENT_ERRORS
from consumers.runtime.unit_of_work import DbConnection, Recorded
from schemas import Envelope, EnvelopeError, UnknownEventType, event_types


class Unusual(Exception):
    """The batch needs the record-by-record path."""


async def apply_fast(
    service: Service,
    routing: Routing,
    connection: DbConnection,
    records: Sequence[StoredRecord],
    marks: ReplayMarks,
) -> BatchOutcome:
    """Apply ``records`` in the caller's transaction on ``connection``, or raise Unusual (the caller
    must then roll that transaction back)."""
    handled: list[tuple[StoredRecord, Envelope]] = []
    for record in records:
        try:
            envelope = Envelope.from_headers(record.headers)
        except EnvelopeError:
            raise Unusual from None
        if envelope.type in service.by_type:
            handled.append((record, envelope))
    ignored = len(records) - len(handled)
    if not handled:
        return BatchOutcome(ignored=ignored, fast=True)
    ids = [envelope.id for _, envelope in handled]
    keys = [key_text(record.key) for record, _ in handled if record.key is not None]
    if len(set(ids)) != len(ids):
        raise Unusual
    claimed = await claim_unless_held_back(connection, [(envelope.id, record) for record, envelope in handled], keys)
    if claimed is None:
        raise Unusual
    fresh = [(record, envelope) for record, envelope in handled if envelope.id in claimed]
    recorded: list[Recorded] = []
    for record, envelope in fresh:
        recorded += await _handle(service, routing, connection, record, envelope, is_replayed(record, marks))
    await insert_follow_ups(connection, service.name, routing.follow_up_topic, recorded)
    return BatchOutcome(
        applied=len(fresh),
        duplicates=len(handled) - len(fresh),
        ignored=ignored,
        follow_ups=len(recorded),
        fast=True,
    )


async def _handle(
    service: Service,
    routing: Routing,
    connection: DbConnection,
    record: StoredRecord,
    envelope: Envelope,
    replayed: bool,
) -> list[Recorded]:
    try:
        event = event_types.parse(envelope.type, record.value or b"")
    except (UnknownEventType, ValidationError):
        raise Unusual from None
    try:
        return await service.handle(event, envelope, connection, routing, replayed=replayed)
    except TRANSIENT_ERRORS:
        raise
    except Exception:  # refused, or a bug that may pass on a retry: the other path's rules decide
        raise Unusual from None
