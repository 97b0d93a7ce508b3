"""Writing a dead letter: the record a service cannot apply, kept with its reason.

The processor dead-letters what a handler refuses or cannot parse, the projection what it cannot
fold; both write the same entry (``xbus_dead_letters``, which ``xbus dlq`` reads and acts on) and
the same record on the service's dead-letter topic, in the caller's transaction, so a dead letter
exists exactly when the offset past its record is committed.
"""

from __future__ import annotations

import datetime as dt

import structlog

from consumers.runtime.inbox_outbox import insert_outbox
from consumers.runtime.records import StoredRecord, headers_to_json, key_text, storable_text
from consumers.runtime.service import Routing
from consumers.runtime.unit_of_work import DbConnection
from schemas.envelope import format_time

log = structlog.get_logger("xbus.runtime")


class Refusal(Exception):
    """A record that cannot be applied; carries what the dead-letter headers say."""

    def __init__(self, error_type: str, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.attempts = attempts


async def dead_letter(
    connection: DbConnection,
    service: str,
    routing: Routing,
    record: StoredRecord,
    event_id: str,
    refused: Refusal,
    *,
    block_key: bool = True,
) -> None:
    """Dead-letter ``record`` in the caller's transaction: an entry in ``xbus_dead_letters`` (what
    ``xbus dlq list`` shows and redrive reads) and an outbox row for the dead-letter topic, with the
    reason in ``xbus_dlq_*`` headers. With ``block_key`` its key is blocked, so that the processor
    parks the key's later events; a consumer that does not apply events in key order (a projection
    of latest states) leaves it unblocked.
    """
    key = key_text(record.key)
    now = dt.datetime.now(dt.UTC)
    await connection.execute(
        """
        insert into xbus_dead_letters (event_id, key, topic, partition, "offset", value, headers,
                                       error_type, error_message, attempts, failed_at)
        values ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11)
        on conflict (event_id) do update set
            error_type = excluded.error_type, error_message = excluded.error_message,
            attempts = xbus_dead_letters.attempts + excluded.attempts, failed_at = excluded.failed_at,
            redriven_at = null
        """,
        event_id,
        key,
        record.topic,
        record.partition,
        record.offset,
        record.value,
        headers_to_json(record.headers),
        refused.error_type,
        storable_text(refused.message),  # a refusal may quote the record's own text
        refused.attempts,
        now,
    )
    if key is not None and block_key:
        # The first failure keeps the block: a record without an envelope is dead-lettered
        # even while its key is blocked, and must not take the block from the event it waits on.
        await connection.execute(
            "insert into xbus_blocked_keys (key, blocked_by) values ($1, $2) on conflict (key) do nothing",
            key,
            event_id,
        )
    dlq_headers = [
        *record.headers,
        ("xbus_dlq_topic", record.topic.encode()),
        ("xbus_dlq_partition", str(record.partition).encode()),
        ("xbus_dlq_offset", str(record.offset).encode()),
        ("xbus_dlq_error_type", refused.error_type.encode()),
        ("xbus_dlq_error_message", refused.message[:2000].encode()),
        ("xbus_dlq_attempts", str(refused.attempts).encode()),
        ("xbus_dlq_time", format_time(now).encode()),
        ("xbus_dlq_service", service.encode()),
    ]
    await insert_outbox(connection, service, routing.dead_letter_topic, record.key, record.value, dlq_headers)
    log.warning(
        "event dead-lettered",
        service=service,
        event_id=event_id,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        error_type=refused.error_type,
        error=refused.message,
    )


def record_id(record: StoredRecord) -> str:
    """An id for a record without a usable envelope: where it sits is what identifies it."""
    return f"{record.topic}/{record.partition}/{record.offset}"
