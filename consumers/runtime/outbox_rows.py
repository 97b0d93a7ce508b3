"""Rows of a service's outbox: what its relay publishes after the transaction that wrote them commits.

Each statement that writes rows also notifies the service's relay, in the same round trip: the
NOTIFY is delivered when the transaction commits, and not at all if it rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers.runtime.records import headers_to_json
from consumers.runtime.unit_of_work import DbConnection, Recorded


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
