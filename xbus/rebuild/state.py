"""What a rebuild does to a service's PostgreSQL schema: empty it, remember what it had published,
and describe the state it ends with.

Emptying keeps ``xbus_migrations`` (the tables stay, only their rows go) and truncates everything
else in one transaction: the state tables and the runtime's (inbox, outbox, dead letters, blocked
keys, parked events, replay marks). The outbox rows' event ids are kept aside first, in
``xbus_rebuild_published``: the rebuilt handlers record the same follow-ups under the same ids
(unit_of_work.py), and once the rebuild is done those already published are marked sent, so the
rebuild publishes nothing twice, while a follow-up that was never published (unsent when the
rebuild began, or new because a handler changed) stays in the outbox for the relay. A rebuild
interrupted part-way and run again keeps the ids it had kept aside.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import TopicPartition

from consumers.runtime.checksum import table_checksums
from consumers.runtime.replay_marks import write_replay_marks
from consumers.runtime.unit_of_work import DbConnection

#: Follow-ups (topic, event id) published before the rebuild began; dropped when it is done.
PUBLISHED = "xbus_rebuild_published"
#: Tables a rebuild leaves as they are.
KEPT = ("xbus_migrations", PUBLISHED)

#: The CloudEvents id of an outbox row ``o`` (its headers are a JSON list of [name, value]).
_EVENT_ID = "(select h->>1 from jsonb_array_elements(o.headers) h where h->>0 = 'ce_id' limit 1)"


@dataclass(frozen=True)
class TableState:
    table: str
    rows: int
    checksum: str

    def to_json(self) -> dict[str, object]:
        return {"table": self.table, "rows": self.rows, "checksum": self.checksum}


def published_in(schema: str) -> str:
    """A relation of the (topic, event_id) pairs ``schema``'s outbox has published."""
    return f'(select o.topic, {_EVENT_ID} as event_id from "{schema}".xbus_outbox o where o.sent_at is not null)'


async def empty_schema(connection: DbConnection, schema: str, marks: Mapping[TopicPartition, int]) -> list[str]:
    """Keep the published follow-ups' ids aside, truncate every table of ``schema`` but
    ``KEPT``, and write replay ``marks``, in one transaction; the tables emptied."""
    async with connection.transaction():
        await connection.execute(f'set local search_path to "{schema}"')
        await connection.execute(
            f"create table if not exists {PUBLISHED} (topic text, event_id text, primary key (topic, event_id))"
        )
        await connection.execute(
            f"insert into {PUBLISHED} select * from {published_in(schema)} p "
            "where p.event_id is not null on conflict do nothing"
        )
        rows = await connection.fetch(
            "select table_name from information_schema.tables "
            "where table_schema = $1 and table_type = 'BASE TABLE' and table_name <> all($2::text[]) "
            "order by table_name",
            schema,
            list(KEPT),
        )
        tables = [row["table_name"] for row in rows]
        if tables:
            await connection.execute(
                "truncate table " + ", ".join(f'"{schema}"."{table}"' for table in tables) + " restart identity"
            )
        await write_replay_marks(connection, marks)
    return tables


async def mark_published(connection: DbConnection, schema: str, published: str) -> tuple[int, int]:
    """Mark sent the unsent outbox rows of ``schema`` whose event the relation ``published`` (topic,
    event_id) holds; the rows marked, and the unsent rows left for the relay."""
    status = await connection.execute(
        f'update "{schema}".xbus_outbox o set sent_at = now() where o.sent_at is null and exists '
        f"(select 1 from {published} p where p.topic = o.topic and p.event_id = {_EVENT_ID})"
    )
    left = await connection.fetchval(f'select count(*) from "{schema}".xbus_outbox where sent_at is null')
    return int(status.split()[-1]), int(left)


async def finish_rebuild(connection: DbConnection, schema: str) -> tuple[int, int]:
    """Once rebuilt: what had been published before is marked sent, and the ids kept aside go."""
    async with connection.transaction():
        counts = await mark_published(connection, schema, f'"{schema}".{PUBLISHED}')
        await connection.execute(f'drop table "{schema}".{PUBLISHED}')
    return counts


async def table_states(connection: DbConnection, schema: str) -> list[TableState]:
    """Rows and checksum of each state table of ``schema``."""
    states = []
    for table, checksum in sorted((await table_checksums(connection, schema)).items()):
        rows = await connection.fetchval(f'select count(*) from "{schema}"."{table}"')
        states.append(TableState(table, int(rows), checksum))
    return states


async def schema_exists(connection: DbConnection, schema: str) -> bool:
    return bool(await connection.fetchval("select 1 from information_schema.schemata where schema_name = $1", schema))
