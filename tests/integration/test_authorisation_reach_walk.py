"""The walk handlers run from given roots (queries.reached_from) finds what the
``transitive_associations`` view finds: the view is the definition, the walk is its cheaper plan."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from consumers.authorisation import queries
from consumers.authorisation.reach import Asset
from consumers.authorisation.service import SERVICE
from consumers.runtime.migrations import load_migrations, migrate
from tests.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

#: A login in two groups that contain each other, one of which gives an account and the other a
#: market; its own accounts, one revoked; a disabled login in a group; a client in a group; a
#: login with no association.
GRAPH = """
insert into logins (login_id, status, roles, markets, created_flow_id, created_at, updated_at) values
    ('l1', 'active', '{}', '{}', 'f', now(), now()),
    ('l2', 'disabled', '{}', '{}', 'f', now(), now()),
    ('l3', 'active', '{}', '{}', 'f', now(), now());
insert into accounts (account_id, state, opened_flow_id, opened_at) values
    ('XS:1', 'open', 'f1', now()), ('XS:2', 'open', 'f2', now()), ('XS:3', 'closed', 'f3', now());
insert into asset_definitions (type, code, defined_flow_id, defined_at) values
    ('Group', 'G1', 'f', now()), ('Group', 'G2', 'f', now()), ('Market', 'XSX', 'f', now());
insert into associations (from_type, from_code, to_type, to_code, rights, flow_id, granted_at, revoked_by,
                          revoked_at) values
    ('User', 'l1', 'Group', 'G1', '{}', 'f', now(), null, null),
    ('Group', 'G1', 'Group', 'G2', '{}', 'f', now(), null, null),
    ('Group', 'G2', 'Group', 'G1', '{}', 'f', now(), null, null),
    ('Group', 'G1', 'TradingAccount', 'XS:1', '{view}', 'f', now(), null, null),
    ('Group', 'G2', 'Market', 'XSX', '{}', 'f', now(), null, null),
    ('User', 'l1', 'TradingAccount', 'XS:2', '{view,trade}', 'f', now(), null, null),
    ('User', 'l1', 'TradingAccount', 'XS:3', '{view}', 'f', now(), 'account', now()),
    ('User', 'l2', 'Group', 'G2', '{}', 'f', now(), 'login', now()),
    ('User', 'l1', 'Market', 'XSX', '{}', 'f', now(), null, null),
    ('Client', 'OMS$Service', 'Group', 'G2', '{}', 'f', now(), null, null);
"""

ROOTS = [
    Asset.named(name)
    for name in ("User:l1", "User:l2", "User:l3", "User:unknown", "Client:OMS$Service", "Group:G1", "Group:G2")
]


async def test_the_walk_from_given_roots_finds_what_the_view_finds(stack: Stack) -> None:
    schema = f"t{uuid.uuid4().hex[:8]}_authorisation_walk"
    url = stack.endpoints.database_url or ""
    setup = await asyncpg.connect(url)
    await migrate(setup, schema, load_migrations(SERVICE.migrations))
    connection = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        await connection.execute(GRAPH)
        walked = await queries.reached_from(connection, ROOTS)
        for root in ROOTS:
            rows = await connection.fetch(
                "select from_type, from_code, to_type, to_code, rights from transitive_associations "
                "where root_type = $1 and root_code = $2",
                root.type.value,
                root.code,
            )
            by_view = sorted(
                (f"{r['from_type']}:{r['from_code']}", f"{r['to_type']}:{r['to_code']}", tuple(r["rights"]))
                for r in rows
            )
            by_walk = sorted(
                (str(a.source), str(a.target), tuple(str(right) for right in a.rights)) for a in walked[root]
            )
            assert by_walk == by_view, root
        assert len(walked[Asset.named("User:l1")]) == 7, "the graph reaches through both groups, revoked left out"
        assert walked[Asset.named("User:l2")] == [] and walked[Asset.named("User:l3")] == []
        assert await queries.reached_by_logins(connection, ["l1", "l3"]) == {
            "l1": walked[Asset.named("User:l1")],
            "l3": [],
        }
    finally:
        await connection.close()
        await setup.execute(f'drop schema if exists "{schema}" cascade')
        await setup.close()
