"""Replay marks: which records a service reads again after its group's offsets were moved back.

Handlers must be deterministic, so a replay rebuilds the same state; but a handler that also
does something outside its own tables (mail a person, call a third party) must not do it twice.
``xbus replay`` and ``xbus rebuild`` write, per partition, the offset the group had reached
before the reset; the processor hands each record below it to its handler with
``UnitOfWork.replayed`` set. The marks live in the service's own schema, not in the commit's
metadata, because the embedded broker drops commit metadata (docs/brokers.md), and because
they must survive a restart in the middle of the replay.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import TopicPartition

from consumers.runtime.records import StoredRecord
from consumers.runtime.unit_of_work import DbConnection

ReplayMarks = dict[tuple[str, int], int]


async def write_replay_marks(connection: DbConnection, marks: Mapping[TopicPartition, int]) -> None:
    """Mark records below ``marks[tp]`` of ``tp`` as replayed; ``connection``'s search_path is the
    service's schema. A second replay before the first is read through keeps the further mark."""
    for tp, until in marks.items():
        await connection.execute(
            """
            insert into xbus_replay_marks (topic, partition, until_offset) values ($1, $2, $3)
            on conflict (topic, partition) do update
                set until_offset = greatest(xbus_replay_marks.until_offset, excluded.until_offset)
            """,
            tp.topic,
            tp.partition,
            until,
        )


async def read_replay_marks(connection: DbConnection) -> ReplayMarks:
    rows = await connection.fetch("select topic, partition, until_offset from xbus_replay_marks")
    return {(row["topic"], row["partition"]): row["until_offset"] for row in rows}


async def clear_passed_mark(connection: DbConnection, topic: str, partition: int, next_offset: int) -> None:
    """Drop ``topic[partition]``'s mark once the service has read up to it."""
    await connection.execute(
        "delete from xbus_replay_marks where topic = $1 and partition = $2 and until_offset <= $3",
        topic,
        partition,
        next_offset,
    )


def is_replayed(record: StoredRecord, marks: ReplayMarks) -> bool:
    """Whether ``record`` is read again after a replay: below its partition's mark."""
    until = marks.get((record.topic, record.partition))
    return until is not None and record.offset < until
