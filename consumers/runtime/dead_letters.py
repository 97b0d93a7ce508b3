"""A service's dead letters: list them, ask for a redrive or a discard, and purge those settled.

The processor keeps each event it could not apply in ``xbus_dead_letters`` (key, value and
headers as read, and where it was read), and blocks its key so that the key's later events are
parked instead of applied out of order. What an operator decides about an entry is written on it
here and carried out by the service's own process (dead_letter_actions.py):

- **redrive**: the stored record is applied again, by this service only. Nothing is
  re-published: the topic it came from is read by other services, which would each apply or
  dead-letter the copy again. If it applies, the events parked behind its key follow in their
  order; if it fails, it is dead-lettered again with the new reason, its key still blocked.
- **discard**: the event is never applied. Who discarded it, when and why stay on the entry
  (``xbus dlq list`` shows them), and the events parked behind its key are applied in order.

A request waits in PostgreSQL until a member of the service's group carries it out, so the
commands work with the service stopped, and :func:`await_settled` tells whether it ran.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from consumers.runtime.records import headers_from_json
from infrastructure.errors import XbusError

#: ``failed``: waiting for a decision; ``redriven``: a redrive asked for, not carried out yet;
#: ``applied``; ``discarding``: a discard asked for, not carried out yet; ``discarded``.
Status = Literal["failed", "redriven", "applied", "discarding", "discarded"]
#: The statuses an operator still has to act on, or wait for.
UNSETTLED: frozenset[Status] = frozenset({"failed", "redriven", "discarding"})


class UnknownDeadLetter(XbusError):
    """An id given to redrive is not one of the service's dead letters."""


class NoRuntimeTables(XbusError):
    """The service's schema has no runtime tables: it has never run (or the schema prefix differs)."""


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
    discard_requested_at: dt.datetime | None = None
    discarded_by: str | None = None
    discard_reason: str | None = None
    discarded_at: dt.datetime | None = None

    @property
    def status(self) -> Status:
        if self.applied:
            return "applied"
        if self.discarded_at is not None:
            return "discarded"
        if self.discard_requested_at is not None:
            return "discarding"
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
            "discarded_by": self.discarded_by,
            "discard_reason": self.discard_reason,
            "discarded_at": self.discarded_at.isoformat() if self.discarded_at else None,
        }


@dataclass(frozen=True)
class Skipped:
    entry: DeadLetter
    reason: str


@dataclass
class Requested:
    """What a redrive or discard command asked for: the entries it marked, and those it left."""

    marked: list[DeadLetter] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


_LIST = """
select d.event_id, d.key, d.topic, d.partition, d."offset", d.headers::text as headers, d.error_type,
       d.error_message, d.attempts, d.failed_at, d.redriven_at,
       d.discard_requested_at, d.discarded_by, d.discard_reason, d.discarded_at,
       exists (select 1 from xbus_inbox i where i.event_id = d.event_id) as applied,
       exists (select 1 from xbus_blocked_keys b where b.blocked_by = d.event_id) as blocking,
       (select count(*) from xbus_parked p join xbus_blocked_keys b on b.key = p.key
         where b.blocked_by = d.event_id) as parked
from xbus_dead_letters d
where $1::text[] is null or d.event_id = any($1::text[])
order by d.topic, d.partition, d."offset", d.event_id
"""

_MARK_REDRIVE = """
update xbus_dead_letters d set redriven_at = now()
where d.event_id = any($1::text[]) and d.discard_requested_at is null
  and not exists (select 1 from xbus_inbox i where i.event_id = d.event_id)
returning d.event_id
"""

_MARK_DISCARD = """
update xbus_dead_letters d set discard_requested_at = now(), discarded_by = $2, discard_reason = $3
where d.event_id = any($1::text[]) and d.discard_requested_at is null
  and not exists (select 1 from xbus_inbox i where i.event_id = d.event_id)
returning d.event_id
"""


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


async def request_redrive(connection: asyncpg.Connection, ids: Sequence[str] | None = None) -> Requested:
    """Ask for the chosen entries (``ids``, or every one waiting) to be applied again by their
    service. An applied or discarded entry is skipped (and named only if asked for by id); asking
    again for one already asked for is harmless. An unknown id fails before anything is marked."""
    return await _request(connection, ids, _MARK_REDRIVE)


async def request_discard(connection: asyncpg.Connection, ids: Sequence[str], by: str, reason: str) -> Requested:
    """Ask for the entries ``ids`` to be discarded, saying who asks and why (kept on the entry)."""
    if not reason.strip():
        raise XbusError("say why the events are discarded: --reason TEXT (it is kept with the entry)")
    return await _request(connection, ids, _MARK_DISCARD, by, reason.strip())


async def await_settled(
    connection: asyncpg.Connection, ids: Sequence[str], timeout: float, poll: float = 0.2
) -> list[DeadLetter]:
    """The entries ``ids`` once none is waiting for its request to be carried out, or as they
    stand after ``timeout`` seconds (a ``redriven`` or ``discarding`` entry: no member ran it)."""
    deadline = time.monotonic() + timeout
    while True:
        entries = await list_dead_letters(connection, ids)
        if time.monotonic() >= deadline or not any(entry.status in ("redriven", "discarding") for entry in entries):
            return entries
        await asyncio.sleep(poll)


async def _request(connection: asyncpg.Connection, ids: Sequence[str] | None, mark: str, *arguments: str) -> Requested:
    entries = await list_dead_letters(connection, ids)
    if ids is not None:
        found = {entry.event_id for entry in entries}
        unknown = [event_id for event_id in dict.fromkeys(ids) if event_id not in found]
        if unknown:
            raise UnknownDeadLetter(
                f"no dead letter with id {', '.join(unknown)}; nothing was changed "
                "(`xbus dlq list SERVICE` shows the ids)"
            )
    report = Requested()
    chosen: dict[str, DeadLetter] = {}
    for entry in entries:
        reason = _reason_to_skip(entry)
        if reason is None:
            chosen[entry.event_id] = entry
        elif ids is not None:  # --all means "every one waiting": settled ones are history
            report.skipped.append(Skipped(entry, reason))
    if chosen:
        marked = {row["event_id"] for row in await connection.fetch(mark, list(chosen), *arguments)}
        report.marked = [entry for event_id, entry in chosen.items() if event_id in marked]
        report.skipped += [Skipped(e, "changed meanwhile; list again") for i, e in chosen.items() if i not in marked]
    return report


async def purge_applied(connection: asyncpg.Connection, applied_before: dt.timedelta) -> int:
    """Delete the dead letters whose event was applied (after a redrive) longer than
    ``applied_before`` ago; how many. Only those: an entry still waiting is the one copy of an
    event nobody has applied, and it holds its key's parked successors; a discarded entry is the
    record of who threw an event away and why. Nothing else needs an applied entry: the inbox row
    of its event makes any later copy a duplicate."""
    return len(await connection.fetch(_PURGE_APPLIED, applied_before))


_PURGE_APPLIED = """
delete from xbus_dead_letters d using xbus_inbox i
where i.event_id = d.event_id and i.applied_at < now() - $1::interval
returning d.event_id
"""


def _reason_to_skip(entry: DeadLetter) -> str | None:
    if entry.applied:
        return "already applied"
    if entry.status == "discarded":
        return f"discarded by {entry.discarded_by} at {entry.discarded_at:%Y-%m-%d %H:%M:%S}: {entry.discard_reason}"
    if entry.status == "discarding":
        return f"a discard by {entry.discarded_by} is waiting for the service"
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
        discard_requested_at=row["discard_requested_at"],
        discarded_by=row["discarded_by"],
        discard_reason=row["discard_reason"],
        discarded_at=row["discarded_at"],
    )
