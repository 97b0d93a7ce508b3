"""Every domain service on the real stack: 3 operators, 500 users and 200 accounts, published shuffled.

Every flow must end provisioned (operators once their manual Prodigy step is completed), every
service's state must be what the events imply, no event may be dead-lettered, and replaying a
service's topics into an empty schema must rebuild its state exactly.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from consumers.authentication import queries as authentication
from consumers.authorisation import queries as authorisation
from consumers.oms import queries as oms
from consumers.registry import queries as registry
from consumers.runtime.checksum import state_checksum
from consumers.sessions import queries as sessions
from infrastructure.settings import Settings
from producers import Published, open_publisher
from schemas.accounts import TradingAccountOpened
from schemas.operators import OperatorRegistered
from schemas.types import OperatorSystem
from schemas.users import UserCreated
from tests.support.all_services import SERVICES, eventually, running
from xbus.rebuild.diff import diff_states
from xbus.scenario import Scenario, build_scenario

pytestmark = pytest.mark.integration

#: The tracker is left out of the replay check: its overdue timer reads the wall clock by design.
REPLAYED = ("authentication", "authorisation", "sessions", "oms", "registry")


async def test_shuffled_scenario_provisions_every_flow_and_replays_to_the_same_state(
    service_settings: Settings,
) -> None:
    settings = service_settings
    scenario = build_scenario(operators=3, users=500, accounts=200, seed=11)
    async with open_publisher(settings) as publisher:
        results = await publisher.publish_many(scenario.shuffled(seed=5))
    assert all(isinstance(r, Published) for r in results), [r for r in results if not isinstance(r, Published)][:3]

    connection = await asyncpg.connect(settings.database_url or "")
    try:
        tracker = settings.db_schema("provisioning")
        async with running(settings, SERVICES):
            await eventually(
                lambda: _all_completed(connection, tracker, len(scenario.flow_ids())),
                240,
                "every flow completed",
                lambda: _open_steps(connection, tracker),
            )
        await _assert_flows(connection, tracker, scenario)
        for name in SERVICES:
            schema = settings.db_schema(name)
            assert await connection.fetchval(f"select count(*) from {schema}.xbus_dead_letters") == 0, name
        await _assert_service_state(connection, settings, scenario)

        replay = settings.model_copy(
            update={"db_schema_prefix": f"r{uuid.uuid4().hex[:8]}_", "group_prefix": f"r{uuid.uuid4().hex[:8]}."}
        )
        async with running(replay, REPLAYED, consume_only=True):
            for name in REPLAYED:
                await eventually(
                    lambda name=name: _inbox_covers(connection, settings.db_schema(name), replay.db_schema(name)),
                    120,
                    f"{name} replayed",
                )
        for name in REPLAYED:
            original = await state_checksum(connection, settings.db_schema(name))
            rebuilt = await state_checksum(connection, replay.db_schema(name))
            if original != rebuilt:
                diffs = await diff_states(connection, settings.db_schema(name), replay.db_schema(name))
                differing = [diff.to_json() for diff in diffs if not diff.identical]
                pytest.fail(f"{name}: replaying its topics did not rebuild the same state: {differing}")
    finally:
        await connection.close()


async def _all_completed(connection: asyncpg.Connection, schema: str, expected: int) -> bool:
    if not await connection.fetchval("select to_regclass($1)", f"{schema}.flows"):
        return False
    done = await connection.fetchval(f"select count(*) from {schema}.flows where state = 'completed'")
    return int(done) >= expected


async def _open_steps(connection: asyncpg.Connection, schema: str) -> str:
    """What the flows not completed are waiting for: the first thing to read when this test fails."""
    flows = await connection.fetch(f"select state, count(*) as n from {schema}.flows group by state")
    steps = await connection.fetch(
        f"select f.started_by, s.step, s.state, count(*) as n, min(s.reason) as reason from {schema}.steps s "
        f"join {schema}.flows f using (flow_id) where f.state <> 'completed' and s.state <> 'done' "
        "group by 1, 2, 3 order by 4 desc limit 20"
    )
    return (
        "flows: "
        + ", ".join(f"{r['state']}={r['n']}" for r in flows)
        + "\n"
        + "\n".join(f"  {r['started_by']} {r['step']} {r['state']} x{r['n']} ({r['reason']})" for r in steps)
    )


async def _inbox_covers(connection: asyncpg.Connection, original: str, replay: str) -> bool:
    """Whether the replay has applied every event the original run applied.

    The replay runs as ``xbus rebuild`` does (``consume_only``): it publishes nothing, so each
    replayed service reads exactly the events the original run read, follow-ups included. (When
    the replayed services published too, a follow-up that depends on the order two topics were
    read in could come out as another event, which the replayed OMS then applied as well.)
    """
    if not await connection.fetchval("select to_regclass($1)", f"{replay}.xbus_inbox"):
        return False
    return bool(
        await connection.fetchval(
            f"select not exists (select event_id from {original}.xbus_inbox"
            f" except select event_id from {replay}.xbus_inbox)"
        )
    )


async def _assert_flows(connection: asyncpg.Connection, schema: str, scenario: Scenario) -> None:
    rows = await connection.fetch(f"select flow_id, entity_id, state from {schema}.flows")
    states = {row["flow_id"]: (row["entity_id"], row["state"]) for row in rows}
    assert {flow: entity for flow, (entity, _) in states.items()} == scenario.flow_ids()
    assert {state for _, state in states.values()} == {"completed"}


async def _assert_service_state(connection: asyncpg.Connection, settings: Settings, scenario: Scenario) -> None:
    users = [o.event for o in scenario.users if isinstance(o.event, UserCreated)]
    accounts = [o.event for o in scenario.accounts if isinstance(o.event, TradingAccountOpened)]
    operators = [o.event for o in scenario.operators if isinstance(o.event, OperatorRegistered)]
    trading = {login.login_id: set() for login in users}  # login -> accounts it may trade
    for account in accounts:
        for login in account.logins:
            if "trade" in login.rights:
                trading.setdefault(login.login_id, set()).add(account.account_id)

    await connection.execute(f"set search_path to {settings.db_schema('authentication')}")
    for user in users:
        login = await authentication.login(connection, user.login_id)
        assert login is not None and (login.username, login.status) == (user.username, "active")

    await connection.execute(f"set search_path to {settings.db_schema('authorisation')}")
    for user in users:
        granted = {p.permission for p in await authorisation.permissions(connection, user.login_id, active_only=True)}
        expected = {f"role:{role}" for role in user.roles} | {f"market-data:{m}" for m in user.markets}
        expected |= {f"trade:{account}" for account in trading[user.login_id]}
        assert granted == expected, user.login_id
    for account in accounts:
        access = {
            (a.login_id, tuple(sorted(a.rights)))
            for a in await authorisation.account_access(connection, account.account_id)
        }
        assert access == {(login.login_id, tuple(sorted(login.rights))) for login in account.logins}, account.account_id

    await connection.execute(f"set search_path to {settings.db_schema('sessions')}")
    for user in users:
        limits = await sessions.limits(connection, user.login_id)
        if user.session_policy is None:
            assert limits is None or limits.pool is None, user.login_id
        else:
            assert limits is not None and limits.pool == user.session_policy.pool and limits.limits is not None

    await connection.execute(f"set search_path to {settings.db_schema('oms')}")
    for operator in operators:
        registered = await oms.operator(connection, operator.operator_id)
        assert registered is not None and registered.registered
    for account in accounts:
        held = await oms.account(connection, account.account_id)
        assert held is not None and (held.state, held.currency) == ("active", "AUD")

    await connection.execute(f"set search_path to {settings.db_schema('registry')}")
    for operator in operators:
        assert await registry.operator(connection, operator.operator_id) is not None
    for account in accounts:
        opened = await registry.account(connection, account.account_id)
        assert opened is not None and (opened.state, opened.investor_id) == ("active", account.investor.investor_id)
        assert {c: str(v) for c, v in (await registry.cash(connection, account.account_id)).items()} in (
            {"AUD": "0"},
            {"AUD": "0E-8"},
            {"AUD": "0.00000000"},
        )
        assert await registry.holdings(connection, account.account_id) == {}
    assert sum(OperatorSystem.PRODIGY in o.systems for o in operators) == len(scenario.manual_actions)
