"""A checksum of a service's own state: what a replay into an empty schema must reproduce exactly.

The runtime's tables (``xbus_*``) are left out: the inbox and outbox record when the process did
things (``now()``), which a replay changes by design; what must not change is the service's
state. Each table is hashed over its rows in a canonical order (their text form, sorted), so
the physical order of rows and the order in which events arrived do not matter.
"""

from __future__ import annotations

import hashlib

from consumers.runtime.unit_of_work import DbConnection


async def state_tables(connection: DbConnection, schema: str) -> list[str]:
    rows = await connection.fetch(
        "select table_name from information_schema.tables "
        "where table_schema = $1 and table_type = 'BASE TABLE' and table_name not like 'xbus\\_%' "
        "order by table_name",
        schema,
    )
    return [row["table_name"] for row in rows]


async def table_checksums(connection: DbConnection, schema: str) -> dict[str, str]:
    """md5 per state table of ``schema`` (rows as text, sorted), by table name."""
    checksums: dict[str, str] = {}
    for table in await state_tables(connection, schema):
        digest = await connection.fetchval(
            f"select md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) from \"{schema}\".\"{table}\" t"
        )
        checksums[table] = str(digest)
    return checksums


async def state_checksum(connection: DbConnection, schema: str) -> str:
    """One checksum over every state table of ``schema``: equal means the same state, row for row."""
    tables = await table_checksums(connection, schema)
    return hashlib.sha256("\n".join(f"{name}:{digest}" for name, digest in sorted(tables.items())).encode()).hexdigest()
