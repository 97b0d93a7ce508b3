"""The inbox: which events a service has applied, each claimed in the transaction applying it."""

from __future__ import annotations

from collections.abc import Sequence

from consumers.runtime.records import StoredRecord
from consumers.runtime.unit_of_work import DbConnection


async def claim(connection: DbConnection, events: Sequence[tuple[str, StoredRecord]]) -> set[str]:
    """Write the inbox rows of ``events`` (event id, record) before their handlers run, and return
    the ids written: the events this transaction is to apply. An id already there is a duplicate;
    one another transaction has just written (the same event read on another partition, say)
    makes this wait for that transaction and then skip it, so two partitions never both apply an
    event, nor fail on the inbox's key."""
    rows = await connection.fetch(
        _CLAIM,
        [event_id for event_id, _ in events],
        [record.topic for _, record in events],
        [record.partition for _, record in events],
        [record.offset for _, record in events],
    )
    return {row["event_id"] for row in rows}


_CLAIM = """
insert into xbus_inbox (event_id, topic, partition, "offset")
select * from unnest($1::text[], $2::text[], $3::int[], $4::bigint[])
on conflict (event_id) do nothing
returning event_id
"""
