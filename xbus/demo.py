"""The demo: the platform guide's provisioning operations as events, through every service at once.

It starts every installed service in this process, publishes the seeded scenario (operators,
users, trading accounts) in shuffled order, answers the Prodigy operators' manual step as a
person would, and waits until the tracker has seen every flow end. Event ids come from the seed,
so running the demo again publishes the same events, which the services' inboxes skip: it is
safe to repeat, and the second run ends at once with the same summary.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from consumers.runtime.discovery import find_services
from consumers.runtime.runner import ServiceRunner
from producers import Published, Publisher
from xbus.errors import XbusError
from xbus.platform import Endpoints, apply_catalogue, load_catalogue
from xbus.scenario import Scenario, build_scenario
from xbus.settings import Settings

TRACKER = "provisioning"


@dataclass(frozen=True)
class DemoOutcome:
    scenario: Scenario
    #: (kind, state) → number of flows.
    flows: Counter[tuple[str, str]]
    dead_letters: dict[str, int]
    seconds: float


async def run_demo(
    settings: Settings,
    endpoints: Endpoints,
    scenario: Scenario,
    progress: Callable[[int, int], None],
    timeout: float = 600.0,
) -> DemoOutcome:
    """Publish ``scenario`` with every service running; report each flow's end as the tracker saw it."""
    await apply_catalogue(settings, endpoints.kafka_bootstrap)
    catalogue = load_catalogue(settings)
    runners = [
        ServiceRunner(service, settings, catalogue, endpoints.kafka_bootstrap, endpoints.database_url)
        for service in find_services().values()
    ]
    if TRACKER not in {runner.service.name for runner in runners}:
        raise XbusError("the demo needs the provisioning tracker (consumers/provisioning) installed")
    started = time.monotonic()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stop)) for runner in runners]
    connection = await asyncpg.connect(endpoints.database_url)
    try:
        async with Publisher(settings, endpoints.kafka_bootstrap, catalogue) as publisher:
            results = await publisher.publish_many(scenario.shuffled(seed=1))
        failed = [r for r in results if not isinstance(r, Published)]
        if failed:
            raise XbusError(f"{len(failed)} demo events were not published: {failed[0]}")
        flow_ids = list(scenario.flow_ids())
        tracker = settings.db_schema(TRACKER)
        deadline = time.monotonic() + timeout
        while (ended := await _ended(connection, tracker, flow_ids)) < len(flow_ids):
            progress(ended, len(flow_ids))
            if time.monotonic() > deadline or any(task.done() for task in tasks):
                break
            await asyncio.sleep(0.5)
        progress(ended, len(flow_ids))
        flows = await _flow_states(connection, tracker, flow_ids)
        dead = {
            runner.service.name: int(
                await connection.fetchval(f"select count(*) from {runner.schema}.xbus_dead_letters")
            )
            for runner in runners
        }
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await connection.close()
    return DemoOutcome(scenario, flows, dead, time.monotonic() - started)


async def _ended(connection: asyncpg.Connection, schema: str, flow_ids: list[str]) -> int:
    if not await connection.fetchval("select to_regclass($1)", f"{schema}.flows"):
        return 0
    return int(
        await connection.fetchval(
            f"select count(*) from {schema}.flows where flow_id = any($1) and state <> 'open'", flow_ids
        )
    )


async def _flow_states(connection: asyncpg.Connection, schema: str, flow_ids: list[str]) -> Counter[tuple[str, str]]:
    rows = await connection.fetch(
        f"select kind, state, count(*) as n from {schema}.flows where flow_id = any($1) group by 1, 2", flow_ids
    )
    states: Counter[tuple[str, str]] = Counter({(r["kind"], r["state"]): r["n"] for r in rows})
    missing = len(flow_ids) - sum(states.values())
    if missing:
        states[("?", "not started")] = missing
    return states


def demo_scenario(operators: int, users: int, accounts: int) -> Scenario:
    return build_scenario(operators=operators, users=users, accounts=accounts, seed=2026)
