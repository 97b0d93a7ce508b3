"""Scale-out: three `xbus run authorisation` and two `xbus run oms` processes share their groups'
partitions; one of each is killed with kill -9 mid-flow and restarted; the end state is exact.

The registry runs once beside them: the OMS and authorisation close an account on its
``RegistryAccountStateChanged``. The provisioning tracker does not run: no flow fails here, so
nothing it would publish (``ProvisioningFailed``) is read by either service.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from consumers.runtime.discovery import find_services
from consumers.runtime.records import headers_from_json
from infrastructure.embedded.processes import free_port
from infrastructure.endpoints import load_catalogue
from infrastructure.settings import Settings
from producers import Outgoing, Published, open_publisher
from tests.conftest import Stack
from tests.support.scale_out_scenario import ScaleOutScenario, build_scale_out
from tests.support.service_process import ServiceProcess, scalar, wait_for
from tests.support.service_under_test import module_settings

pytestmark = pytest.mark.integration

AUTHORISATION_INSTANCES, OMS_INSTANCES = 3, 2
SEED = 31
INBOX = "select count(*) from {schema}.xbus_inbox"
SORTED_RIGHTS = "array(select unnest(rights) order by 1)"
#: Long enough for a member's join, the embedded broker's half-session wait and a rebalance or two.
SETTLE_SECONDS = 120


async def test_instances_share_partitions_and_one_killed_mid_flow_changes_nothing(stack: Stack, tmp_path: Path) -> None:
    settings = await module_settings(stack)
    scenario = build_scale_out(operators=6, users=2400, accounts=1000, disables=120, closures=60, seed=SEED)
    authorisation = [_instance("authorisation", i, settings, tmp_path) for i in range(AUTHORISATION_INSTANCES)]
    oms = [_instance("oms", i, settings, tmp_path) for i in range(OMS_INSTANCES)]
    registry = ServiceProcess("registry", settings, tmp_path / "registry.log")
    processes = [*authorisation, *oms, registry]
    started = time.monotonic()
    for process in processes:
        process.start()
    try:
        await _share(settings, "authorisation", authorisation)
        await _share(settings, "oms", oms)
        await _publish(settings, scenario.provisioning.shuffled(seed=SEED))

        killed = {
            "authorisation": await _kill_and_restart_mid_flow(
                settings, "authorisation", authorisation, scenario.authorisation_applies(changes=False)
            ),
            "oms": await _kill_and_restart_mid_flow(settings, "oms", oms, scenario.oms_applies(changes=False)),
        }
        await _share(settings, "authorisation", authorisation)  # the restarted instance holds partitions again
        await _share(settings, "oms", oms)
        await _applied(settings, scenario, changes=False)
        await _publish(settings, [*scenario.disables, *scenario.closures])
        await _applied(settings, scenario, changes=True)
        for process in processes:  # one after the other, as a rolling deploy: each stop starts a rebalance
            assert process.stop() == 0, f"{process.spec} did not stop cleanly: see {process.log}"
    finally:
        for process in processes:
            if process.process is not None and process.process.poll() is None:
                process.process.kill()
    print(f"scale-out: applied when killed {killed}; {time.monotonic() - started:.0f} s")

    connection = await asyncpg.connect(settings.database_url or "")
    try:
        for name in ("authorisation", "oms", "registry"):
            schema = settings.db_schema(name)
            assert await connection.fetchval(f"select count(*) from {schema}.xbus_dead_letters") == 0, name
            assert await connection.fetchval(f"select count(*) from {schema}.xbus_parked") == 0, name
        await _assert_authorisation(connection, settings.db_schema("authorisation"), scenario)
        await _assert_oms(connection, settings.db_schema("oms"), scenario)
    finally:
        await connection.close()


def _instance(service: str, index: int, settings: Settings, tmp_path: Path) -> ServiceProcess:
    return ServiceProcess(service, settings, tmp_path / f"{service}-{index}.log", metrics_port=free_port())


async def _publish(settings: Settings, events: list[Outgoing]) -> None:
    async with open_publisher(settings) as publisher:
        results = await publisher.publish_many(events)
    failed = [result for result in results if not isinstance(result, Published)]
    assert not failed, failed[:3]


def _group_partitions(settings: Settings, service: str) -> set[str]:
    """Every partition of the topics the service reads, as its log names them."""
    catalogue = load_catalogue(settings)
    return {
        f"{settings.topic(topic)}[{partition}]"
        for topic in find_services()[service].topics(catalogue)
        for partition in range(catalogue.topic(topic).partitions)
    }


async def _share(settings: Settings, service: str, instances: list[ServiceProcess]) -> None:
    """Wait until the instances hold the group's partitions between them: each some, none twice."""
    everything = _group_partitions(settings, service)
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        held = [instance.assignment() for instance in instances]
        if all(held) and sum(map(len, held)) == len(everything) and set().union(*held) == everything:
            return
        counts = [len(partitions) for partitions in held]
        assert time.monotonic() < deadline, f"{service}: {counts} of {len(everything)} partitions held"
        await asyncio.sleep(0.5)


async def _kill_and_restart_mid_flow(
    settings: Settings, service: str, instances: list[ServiceProcess], total: int
) -> int:
    """Once every instance has applied events and about a third of the flow is in, kill -9 the
    first instance and start it again; return how many events were applied at the kill."""
    schema = settings.db_schema(service)
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        applied = [_applied_by(await instance.metrics(), service) for instance in instances]
        if all(applied) and await scalar(settings, schema, INBOX) >= total // 3:
            break
        assert time.monotonic() < deadline, f"{service}: instances applied {applied} events"
        await asyncio.sleep(0.2)
    instances[0].kill()
    at_kill = await scalar(settings, schema, INBOX)
    assert at_kill < total, f"{service}: the flow was over ({at_kill} of {total}) before the kill"
    instances[0].start()
    return at_kill


def _applied_by(metrics: str, service: str) -> float:
    """``xbus_events_total{outcome="applied"}`` of ``service`` in one process's metrics."""
    pattern = rf'^xbus_events_total{{outcome="applied",service="{service}"}} (\S+)$'
    found = re.search(pattern, metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _applied(settings: Settings, scenario: ScaleOutScenario, *, changes: bool) -> None:
    """Wait until both services have applied every event of the phase and published what it caused."""
    expected = {
        "authorisation": scenario.authorisation_applies(changes=changes),
        "oms": scenario.oms_applies(changes=changes),
    }
    for service, count in expected.items():
        await wait_for(settings, settings.db_schema(service), INBOX, count, timeout=SETTLE_SECONDS)
    unsent = "select count(*) from {schema}.xbus_outbox where sent_at is null"
    for service in (*expected, "registry"):
        await wait_for(settings, settings.db_schema(service), unsent, 0, timeout=SETTLE_SECONDS)


async def _rows(connection: asyncpg.Connection, query: str) -> set[tuple[object, ...]]:
    """The rows as a set of tuples, arrays as tuples: what the scenario's expectations are made of."""
    return {
        tuple(tuple(value) if isinstance(value, list) else value for value in row.values())
        for row in await connection.fetch(query)
    }


async def _emitted(connection: asyncpg.Connection, schema: str) -> Counter[str]:
    """Follow-ups by type (step reports left out), after checking no event id was recorded twice."""
    rows = await connection.fetch(f"select headers::text as headers from {schema}.xbus_outbox")
    headers = [{name: value.decode() for name, value in headers_from_json(row["headers"])} for row in rows]
    ids = [h["ce_id"] for h in headers]
    assert len(ids) == len(set(ids)), f"{schema}: a follow-up recorded twice"
    return Counter(h["ce_type"] for h in headers if not h["ce_type"].startswith("xosp.step."))


async def _assert_authorisation(connection: asyncpg.Connection, schema: str, scenario: ScaleOutScenario) -> None:
    inbox = {row["event_id"] for row in await connection.fetch(f"select event_id from {schema}.xbus_inbox")}
    assert len(inbox) == scenario.authorisation_applies(changes=True)
    assert {o.event_id for o in (*scenario.provisioning.users, *scenario.provisioning.accounts)} <= inbox
    assert {o.event_id for o in scenario.disables} <= inbox
    assert await _emitted(connection, schema) == scenario.authorisation_emits()
    assert await _rows(connection, f"select login_id, status from {schema}.logins") == scenario.authorisation_logins()
    assert await _rows(connection, f"select account_id, state from {schema}.accounts") == (
        scenario.authorisation_accounts()
    )
    access = (
        f"select to_code, from_code, {SORTED_RIGHTS}, revoked_by from {schema}.associations "
        "where from_type = 'User' and to_type = 'TradingAccount'"
    )
    assert await _rows(connection, access) == scenario.authorisation_access()
    permissions = await _rows(
        connection, f"select login_id, permission from {schema}.login_permissions where revoked_at is null"
    )
    assert permissions == scenario.authorisation_permissions()
    assert await connection.fetchval(f"select count(*) from {schema}.pending_access") == 0


async def _assert_oms(connection: asyncpg.Connection, schema: str, scenario: ScaleOutScenario) -> None:
    inbox = {row["event_id"] for row in await connection.fetch(f"select event_id from {schema}.xbus_inbox")}
    assert len(inbox) == scenario.oms_applies(changes=True)
    assert {o.event_id for o in (*scenario.provisioning.operators, *scenario.provisioning.accounts)} <= inbox
    assert await _emitted(connection, schema) == scenario.oms_emits()
    assert await _rows(connection, f"select operator_id, status from {schema}.operators") == scenario.oms_operators()
    assert await _rows(connection, f"select account_id, state, currency from {schema}.accounts") == (
        scenario.oms_accounts()
    )
    rights = f"select account_id, login_id, {SORTED_RIGHTS} from {schema}.account_rights"
    assert await _rows(connection, rights) == scenario.oms_rights()
    assert await connection.fetchval(f"select count(*) from {schema}.pending_closures") == 0
