"""Where a flow's time goes, hop by hop, read back from the services' own inbox and outbox rows.

flows.py times each flow from the publish of its root to the probe's receipt of its announcement.
That figure says how long, not where. Every service records when it applied an event (the
inbox's ``applied_at``: its transaction's start) and when its relay had a follow-up acknowledged
(the outbox's ``sent_at``); each follow-up carries its flow's id (``ce_correlationid``). So a
flow's path splits into five legs, each ending at the latest of its kind:

1. ``to_steps``: root published → the last step service's transaction starts (Kafka, the fetch,
   the service's poll and the wait for a worker and for its entity locks);
2. ``steps``: → the last step event acknowledged (the step transactions, NOTIFY, the relays);
3. ``to_tracker``: → the tracker's transaction that completes the flow starts;
4. ``tracker``: → the announcement acknowledged (that transaction, NOTIFY, the relay);
5. ``to_probe``: → the probe reads the announcement.

The clocks are the database's and the bench's on one machine. A leg can come out slightly
negative: a relay marks a row sent after the acknowledgement, and the next service may read the
record first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from services import percentiles  # bench/ is on sys.path

LEGS = ("to_steps", "steps", "to_tracker", "tracker", "to_probe")

_APPLIED = (
    "select event_id, extract(epoch from applied_at)::float8 as at from {schema}.xbus_inbox where event_id = any($1)"
)
_SENT = (
    "select headers, extract(epoch from sent_at)::float8 as at from {schema}.xbus_outbox"
    " where sent_at is not null order by id"
)
_CREATED = "select headers, extract(epoch from created_at)::float8 as at from {schema}.xbus_outbox order by id"


@dataclass(frozen=True)
class Timed:
    """A flow as the bench saw it: its root's id, and both ends on the epoch clock."""

    flow_id: str
    sent: float
    arrived: float


def epoch_of(perf_counter: float) -> float:
    """``time.perf_counter()`` reading ``perf_counter`` on the epoch clock the database uses."""
    return perf_counter + (time.time() - time.perf_counter())


async def legs(
    database_url: str, step_schemas: Sequence[str], tracker_schema: str, flows: Sequence[Timed]
) -> dict[str, object]:
    """Per leg, its percentiles over ``flows``; and for the slowest 1 % of flows, each leg's mean."""
    ids = [flow.flow_id for flow in flows]
    connection = await asyncpg.connect(database_url)
    try:
        root_applied: dict[str, float] = {}
        steps_sent: dict[str, float] = {}
        for schema in step_schemas:
            for row in await connection.fetch(_APPLIED.format(schema=schema), ids):
                root_applied[row["event_id"]] = max(row["at"], root_applied.get(row["event_id"], 0.0))
            for flow_id, at in _sent_by_flow(await connection.fetch(_SENT.format(schema=schema))):
                steps_sent[flow_id] = max(at, steps_sent.get(flow_id, 0.0))
        announced = dict(_sent_by_flow(await connection.fetch(_SENT.format(schema=tracker_schema))))
        completing = await connection.fetch(_CREATED.format(schema=tracker_schema))
    finally:
        await connection.close()
    started = dict(_sent_by_flow(completing))  # the completing transaction's start: its outbox row's created_at
    paths: list[dict[str, float]] = []
    for flow in flows:
        points = [flow.sent, root_applied.get(flow.flow_id), steps_sent.get(flow.flow_id)]
        points += [started.get(flow.flow_id), announced.get(flow.flow_id), flow.arrived]
        if all(point is not None for point in points):
            ends = [float(point) for point in points if point is not None]
            paths.append({leg: (ends[i + 1] - ends[i]) * 1000 for i, leg in enumerate(LEGS)})
    slowest = sorted(paths, key=lambda path: sum(path.values()))[-max(1, len(paths) // 100) :]
    return {
        "flows_traced": len(paths),
        "legs_ms": {leg: percentiles([path[leg] for path in paths]) for leg in LEGS},
        "slowest_1pct_mean_ms": {leg: round(sum(path[leg] for path in slowest) / len(slowest), 1) for leg in LEGS}
        if slowest
        else {},
    }


def _sent_by_flow(rows: Sequence[Mapping[str, object]]) -> list[tuple[str, float]]:
    """(flow id, time) of each outbox row: the flow is the row's ``ce_correlationid`` header."""
    found = []
    for row in rows:
        headers = dict(json.loads(str(row["headers"])))
        flow_id = headers.get("ce_correlationid")
        if isinstance(flow_id, str) and isinstance(row["at"], float):
            found.append((flow_id, row["at"]))
    return found
