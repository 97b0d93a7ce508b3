"""The embedded PostgreSQL answers, and each test gets a schema of its own."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import Stack

pytestmark = pytest.mark.integration


async def test_each_test_works_in_a_schema_of_its_own(database: tuple[asyncpg.Connection, str], stack: Stack) -> None:
    connection, schema = database
    await connection.execute("create table logins (login_id text primary key)")
    await connection.execute("insert into logins values ('u1')")
    assert await connection.fetchval("select current_schema()") == schema

    other = await asyncpg.connect(stack.endpoints.database_url)
    try:
        assert await other.fetchval("select to_regclass('public.logins')") is None
        assert await other.fetchval(f"select count(*) from {schema}.logins") == 1
    finally:
        await other.close()


async def test_postgres_is_durable_on_disk_under_the_data_dir(stack: Stack) -> None:
    if not stack.endpoints.database_url.startswith("postgresql://postgres:@/"):
        pytest.skip("external PostgreSQL: nothing embedded to check")
    connection = await asyncpg.connect(stack.endpoints.database_url)
    try:
        data_directory = await connection.fetchval("show data_directory")
    finally:
        await connection.close()
    assert data_directory == str((stack.data_dir / "pg").resolve())
