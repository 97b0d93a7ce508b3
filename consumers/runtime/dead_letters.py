"""A service's dead letters: list them, redrive them onto the topic and partition they came from,
and purge those applied since.

The processor keeps each event it could not apply in ``xbus_dead_letters`` (key, value and
headers as read, and where it was read), and blocks its key so that the key's later events are
parked instead of applied out of order. Redriving republishes the stored record byte for byte;
the processor then finds an event whose dead letter is marked redriven, applies it like any
other, and releases the events parked behind its key in their original order.

Two choices follow from how the processor works:

- An entry is marked redriven *before* its record is published, and the mark is taken back if
  publishing fails. The processor skips an event whose dead letter is not marked (it takes it
  for a redelivery of the failed original), so marking after the broker's ack would race with
  a running consumer, which could read the record first and drop it.
- The record goes to its original partition, not to wherever its key hashes: that partition
  holds the key's parked successors, and one partition is processed by one member at a time,
  so a release never races with another member parking an event of the same key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import asyncpg
from aiokafka.errors import KafkaError

from consumers.runtime.records import headers_from_json
from xbus.errors import XbusError

#: ``failed``: waiting for a redrive; ``redriven``: published again, not applied yet; ``applied``.
Status = Literal["failed", "redriven", "applied"]


class UnknownDeadLetter(XbusError):
    """An id given to redrive is not one of the service's dead letters."""


class NoRuntimeTables(XbusError):
    """The service's schema has no runtime tables: it has never run (or the schema prefix differs)."""


class RedriveFailed(XbusError):
    """The broker did not take a redriven record; the entries not published are left to redrive again."""


class RecordSender(Protocol):
    """What a redrive needs of a producer (an ``AIOKafkaProducer`` with acks=all)."""

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any: ...


@dataclass(frozen=True)
class DeadLetter:
    event_id: str
    event_type: str | None
    key: str | None
    topic: str
    partition: int
    offset: int
    error_type: str
    error_message: str
    attempts: int
    failed_at: dt.datetime
    redriven_at: dt.datetime | None
    applied: bool
    #: Events of its key parked behind it now (0 unless it is what blocks its key).
    parked: int
    blocking: bool

    @property
    def status(self) -> Status:
        if self.applied:
            return "applied"
        return "redriven" if self.redriven_at is not None else "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "key": self.key,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "attempts": self.attempts,
            "failed_at": self.failed_at.isoformat(),
            "redriven_at": self.redriven_at.isoformat() if self.redriven_at else None,
            "status": self.status,
            "blocking": self.blocking,
            "parked": self.parked,
        }


@dataclass(frozen=True)
class Skipped:
    entry: DeadLetter
    reason: str


@dataclass
class RedriveReport:
    redriven: list[DeadLetter] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


_LIST = """
select d.event_id, d.key, d.topic, d.partition, d."offset", d.headers::text as headers, d.error_type,
       d.error_message, d.attempts, d.failed_at, d.redriven_at,
       exists (select 1 from xbus_inbox i where i.event_id = d.event_id) as applied,
       exists (select 1 from xbus_blocked_keys b where b.blocked_by = d.event_id) as blocking,
       (select count(*) from xbus_parked p join xbus_blocked_keys b on b.key = p.key
         where b.blocked_by = d.event_id) as parked
from xbus_dead_letters d
where $1::text[] is null or d.event_id = any($1::text[])
order by d.topic, d.partition, d."offset", d.event_id
"""

_CLAIM = """
update xbus_dead_letters d set redriven_at = now()
where d.event_id = any($1::text[]) and (d.redriven_at is null or $2)
  and not exists (select 1 from xbus_inbox i where i.event_id = d.event_id)
returning d.event_id, d.key, d.topic, d.partition, d."offset", d.value, d.headers::text as headers, d.redriven_at
"""

_UNCLAIM = "update xbus_dead_letters set redriven_at = null where event_id = any($1::text[]) and redriven_at = $2"


@asynccontextmanager
async def schema_connection(database_url: str, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to ``schema``, after checking that the service's runtime tables are there."""
    connection = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        if await connection.fetchval("select to_regclass($1)", f"{schema}.xbus_dead_letters") is None:
            raise NoRuntimeTables(
                f"schema {schema} has no dead-letter table: the service has not run here yet "
                "(check XBUS_DB_SCHEMA_PREFIX, or run `xbus db migrate SERVICE`)"
            )
        yield connection
    finally:
        await connection.close()


async def list_dead_letters(connection: asyncpg.Connection, ids: Sequence[str] | None = None) -> list[DeadLetter]:
    """Every dead letter (or those of ``ids``), in the order they were read from their partitions."""
    rows = await connection.fetch(_LIST, list(ids) if ids is not None else None)
    return [_dead_letter(row) for row in rows]


async def redrive(
    connection: asyncpg.Connection,
    producer: RecordSender,
    ids: Sequence[str] | None = None,
    *,
    force: bool = False,
) -> RedriveReport:
    """Republish the chosen entries (``ids``, or every one) that are waiting for a redrive.

    An applied entry is always skipped (and named only if asked for by id); one redriven but
    not applied yet is skipped unless ``force`` (a second copy is harmless: the inbox makes it
    a duplicate). An unknown id fails before anything is published.
    """
    entries = await list_dead_letters(connection, ids)
    if ids is not None:
        found = {entry.event_id for entry in entries}
        unknown = [event_id for event_id in dict.fromkeys(ids) if event_id not in found]
        if unknown:
            raise UnknownDeadLetter(
                f"no dead letter with id {', '.join(unknown)}; nothing was redriven "
                "(`xbus dlq list SERVICE` shows the ids)"
            )
    report = RedriveReport()
    chosen: dict[str, DeadLetter] = {}
    for entry in entries:
        reason = _reason_to_skip(entry, force)
        if reason is None:
            chosen[entry.event_id] = entry
        elif ids is not None or not entry.applied:  # --all means "every one waiting": applied ones are history
            report.skipped.append(Skipped(entry, reason))
    if not chosen:
        return report
    claimed = await connection.fetch(_CLAIM, list(chosen), force)
    claimed_ids = {row["event_id"] for row in claimed}
    lost = [entry for event_id, entry in chosen.items() if event_id not in claimed_ids]
    report.skipped += [Skipped(entry, "changed while redriving; list again") for entry in lost]
    rows = sorted(claimed, key=lambda row: (row["topic"], row["partition"], row["offset"]))
    for position, row in enumerate(rows):
        try:
            await producer.send_and_wait(
                row["topic"],
                row["value"],
                key=row["key"].encode() if row["key"] is not None else None,
                partition=row["partition"],
                headers=headers_from_json(row["headers"]),
            )
        except KafkaError as error:
            await connection.execute(_UNCLAIM, [r["event_id"] for r in rows[position:]], row["redriven_at"])
            done = ", ".join(entry.event_id for entry in report.redriven) or "none"
            raise RedriveFailed(
                f"publishing dead letter {row['event_id']} to {row['topic']}[{row['partition']}] failed ({error}); "
                f"redriven before it: {done}; the rest are unchanged and can be redriven again"
            ) from None
        report.redriven.append(replace(chosen[row["event_id"]], redriven_at=row["redriven_at"]))
    return report


async def purge_applied(connection: asyncpg.Connection, applied_before: dt.timedelta) -> int:
    """Delete the dead letters whose event was applied (after a redrive) longer than
    ``applied_before`` ago; how many. Only those: an entry still waiting is the one copy of an
    event nobody has applied, and it holds its key's parked successors. Nothing else needs an
    applied entry: the inbox row of its event makes any later copy a duplicate."""
    return len(await connection.fetch(_PURGE_APPLIED, applied_before))


_PURGE_APPLIED = """
delete from xbus_dead_letters d using xbus_inbox i
where i.event_id = d.event_id and i.applied_at < now() - $1::interval
returning d.event_id
"""


def _reason_to_skip(entry: DeadLetter, force: bool) -> str | None:
    if entry.applied:
        return "already applied"
    if entry.redriven_at is not None and not force:
        return (
            f"already redriven at {entry.redriven_at.isoformat(timespec='seconds')} and not applied yet "
            "(is the service running? --force publishes it again)"
        )
    return None


def _dead_letter(row: asyncpg.Record) -> DeadLetter:
    headers = dict(headers_from_json(row["headers"]))
    event_type = headers.get("ce_type")
    return DeadLetter(
        event_id=row["event_id"],
        event_type=event_type.decode(errors="replace") if event_type is not None else None,
        key=row["key"],
        topic=row["topic"],
        partition=row["partition"],
        offset=row["offset"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        attempts=row["attempts"],
        failed_at=row["failed_at"],
        redriven_at=row["redriven_at"],
        applied=row["applied"],
        parked=row["parked"],
        blocking=row["blocking"],
    )
