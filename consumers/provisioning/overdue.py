"""Overdue flows: the tracker's timer, since a step that never reports sends no event.

It is the one part of the tracker that reads the wall clock (the tick's time, ``unit.cause.time``
of a timer's unit): a flow becomes overdue as time passes. Each flow is reported once; the
event's id depends only on the flow (``record_about``), so a tick run again gives the same event.
A flow rebuilt from replayed topics may be reported as soon as the tracker runs again, since its
start time is its event's.
"""

from __future__ import annotations

import datetime as dt

from consumers.runtime import Timer, TimerUnit
from schemas.provisioning import ProvisioningOverdue

#: Overdue flows are found within this long of XBUS_PROVISIONING_OVERDUE_SECONDS.
CHECK_INTERVAL_SECONDS = 10.0


async def report_overdue(unit: TimerUnit) -> None:
    now = unit.cause.time
    after = dt.timedelta(seconds=unit.settings.provisioning_overdue_seconds)
    for flow in await unit.store.mark_overdue(now, after):
        unit.record_about(
            flow.flow_id,
            ProvisioningOverdue(
                flow_id=flow.flow_id,
                kind=flow.kind,
                entity_id=flow.entity_id,
                silent_steps=flow.silent_steps,
                silent_seconds=max(0, int((now - flow.started_at).total_seconds())),
            ),
            correlation_id=flow.correlation_id,
            causation_id=flow.flow_id,
        )


OVERDUE = Timer("overdue", CHECK_INTERVAL_SECONDS, report_overdue)
