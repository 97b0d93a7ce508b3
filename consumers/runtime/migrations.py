"""Versioned SQL migrations, one PostgreSQL schema per service.

The runtime's own tables come first (version ``0000_runtime``), then the service's files in
name order. Each file runs in its own transaction with ``search_path`` set to the service's
schema, so a service's SQL never names its schema and cannot touch another's. Applied
versions are recorded; a concurrent start of several instances is serialised by an advisory
lock, so each version runs exactly once.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

RUNTIME_SQL = Path(__file__).parent / "sql"


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str


def load_migrations(directory: Path | None) -> list[Migration]:
    """The runtime's migrations followed by ``directory``'s ``*.sql`` files, by name."""
    files = sorted(RUNTIME_SQL.glob("*.sql"))
    if directory is not None:
        files += sorted(directory.glob("*.sql"))
    return [Migration(path.stem, path.read_text()) for path in files]


async def migrate(connection: asyncpg.Connection, schema: str, migrations: list[Migration]) -> list[str]:
    """Apply what is missing; return the versions applied now."""
    applied_now: list[str] = []
    lock = zlib.crc32(f"xbus-migrate:{schema}".encode())
    await connection.execute("select pg_advisory_lock($1)", lock)
    try:
        await connection.execute(f'create schema if not exists "{schema}"')
        await connection.execute(
            f'create table if not exists "{schema}".xbus_migrations '
            "(version text primary key, applied_at timestamptz not null default now())"
        )
        done = {row["version"] for row in await connection.fetch(f'select version from "{schema}".xbus_migrations')}
        for migration in migrations:
            if migration.version in done:
                continue
            async with connection.transaction():
                await connection.execute(f'set local search_path to "{schema}"')
                await connection.execute(migration.sql)
                await connection.execute("insert into xbus_migrations (version) values ($1)", migration.version)
            applied_now.append(migration.version)
    finally:
        await connection.execute("select pg_advisory_unlock($1)", lock)
    return applied_now


class MigrateOnce:
    """Apply ``migrations`` to ``schema`` the first time a store needs its tables in this process:
    for stores that are used, not run (the API's tokens and idempotency keys), so a process that
    never touches them never creates them. Concurrent first callers wait for one run."""

    def __init__(self, pool: asyncpg.Pool, schema: str, migrations: Sequence[Migration]) -> None:
        self._pool = pool
        self._schema = schema
        self._migrations = list(migrations)
        self._done = False
        self._lock = asyncio.Lock()

    async def __call__(self) -> None:
        async with self._lock:
            if self._done:
                return
            async with self._pool.acquire() as connection:
                await migrate(connection, self._schema, self._migrations)
            self._done = True
