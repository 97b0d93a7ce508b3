"""Business lag: how long the oldest provisioning flow of each kind has been waiting to complete.

Consumer lag says whether services keep up with their topics; it cannot say that a new user has
waited ten minutes for a step that no service will ever report. The provisioning tracker knows:
a flow is open from its starting event until every expected step is done (or one fails).
"""

from __future__ import annotations

import asyncpg

from consumers.provisioning.queries import oldest_open_flows
from consumers.provisioning.service import SERVICE as TRACKER
from infrastructure.settings import Settings
from schemas.provisioning import FlowKind


async def business_lag(connection: asyncpg.Connection, settings: Settings, now: float) -> dict[str, float | None]:
    """Age in seconds at ``now`` (Unix time) of the oldest open flow per kind, None for a kind with
    none open; empty when the tracker has never run against this database (no flows table)."""
    schema = settings.db_schema(TRACKER.name)
    if await connection.fetchval("select to_regclass($1)", f"{schema}.flows") is None:
        return {}
    oldest = await oldest_open_flows(connection, schema=schema)
    return {kind.value: None if kind not in oldest else max(now - oldest[kind].timestamp(), 0.0) for kind in FlowKind}
