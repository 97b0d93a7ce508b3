"""A service's inbox and outbox: the rows that make an event applied once and its follow-ups published.

The inbox holds the id of every event the service has applied, each claimed in the transaction
applying it: an id already there is a duplicate. The outbox holds what the service's relay
publishes after the transaction that wrote it commits; each statement that writes outbox rows
also notifies the relay, in the same round trip: the NOTIFY is delivered when the transaction
commits, and not at all if it rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers.runtime.records import StoredRecord, headers_to_json
from consumers.runtime.unit_of_work import DbConnection, Recorded


async def claim(connection: DbConnection, events: Sequence[tuple[str, StoredRecord]]) -> set[str]:
    """Write the inbox rows of ``events`` (event id, record) before their handlers run, and return
    the ids written: the events this transaction is to apply. An id already there is a duplicate;
    one another transaction has just written (the same event read on another partition, say)
    makes this wait for that transaction and then skip it, so two partitions never both apply an
    event, nor fail on the inbox's key."""
    rows = await connection.fetch(_CLAIM, *_columns(events))
    return {row["event_id"] for row in rows}


async def claim_unless_held_back(
    connection: DbConnection, events: Sequence[tuple[str, StoredRecord]], keys: Sequence[str]
) -> set[str] | None:
    """:func:`claim` and, in the same round trip, look for what would hold the batch back: None
    when one of the ids was dead-lettered or is waiting for a prerequisite (a redelivery, or a
    redrive asked for), one of ``keys`` is blocked, or a held event is of one of ``keys`` (it
    goes first) or waits for one (the batch may be its prerequisite). The caller then rolls its
    transaction back, claims included, and takes the record-by-record path, where each of those
    cases has its rule."""
    row = await connection.fetchrow(_CLAIM_UNLESS_HELD_BACK, *_columns(events), list(keys))
    assert row is not None  # a select without from returns one row
    return None if row["held_back"] else set(row["claimed"])


def _columns(events: Sequence[tuple[str, StoredRecord]]) -> tuple[list[str], list[str], list[int], list[int]]:
    return (
        [event_id for event_id, _ in events],
        [record.topic for _, record in events],
        [record.partition for _, record in events],
        [record.offset for _, record in events],
    )


_CLAIM = """
insert into xbus_inbox (event_id, topic, partition, "offset")
select * from unnest($1::text[], $2::text[], $3::int[], $4::bigint[])
on conflict (event_id) do nothing
returning event_id
"""

#: The lookups read the snapshot the statement started with: the rows it claims are not in it.
_CLAIM_UNLESS_HELD_BACK = f"""
with claimed as ({_CLAIM})
select exists (select 1 from xbus_dead_letters where event_id = any($1::text[]))
    or exists (select 1 from xbus_blocked_keys where key = any($5::text[]))
    or exists (select 1 from xbus_pending
               where event_id = any($1::text[]) or waits_for = any($5::text[]) or key = any($5::text[]))
    as held_back,
    array(select event_id from claimed) as claimed
"""


def outbox_channel(service: str) -> str:
    """The LISTEN/NOTIFY channel that wakes a service's outbox relay."""
    return f"xbus_outbox_{service}"


async def insert_follow_ups(connection: DbConnection, service: str, topic: str, recorded: Sequence[Recorded]) -> None:
    """Outbox rows for follow-up events a handler (or a timer) recorded, keyed by their subject, in
    one statement (rows get their ids in the order given: the relay publishes in that order)."""
    if not recorded:
        return
    await connection.execute(
        """
        with written as (
            insert into xbus_outbox (topic, key, value, headers)
            select $1, k, v, h::jsonb from unnest($2::bytea[], $3::bytea[], $4::text[]) with ordinality as u(k, v, h, n)
            order by n
        )
        select pg_notify($5, '')
        """,
        topic,
        [follow_up.envelope.subject.encode() for follow_up in recorded],
        [follow_up.event.model_dump_json().encode() for follow_up in recorded],
        [headers_to_json(follow_up.envelope.to_headers()) for follow_up in recorded],
        outbox_channel(service),
    )


async def insert_outbox(
    connection: DbConnection,
    service: str,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> None:
    await connection.execute(
        """
        with written as (insert into xbus_outbox (topic, key, value, headers) values ($1, $2, $3, $4::jsonb))
        select pg_notify($5, '')
        """,
        topic,
        key,
        value,
        headers_to_json(headers),
        outbox_channel(service),
    )
