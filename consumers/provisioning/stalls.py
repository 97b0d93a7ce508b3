"""Stall detection: the tracker's timer, since a step that never reports sends no event.

It is the one part of the tracker that reads the wall clock (the tick's time, ``unit.cause.time``
of a timer's unit): stalling is about time passing. Each flow is reported once; the event's id
depends only on the flow (``record_about``), so a tick run again gives the same event. A flow
rebuilt from replayed topics may be reported as soon as the tracker runs again, since its start
time is its event's.
"""

from __future__ import annotations

import datetime as dt

from consumers.runtime import Timer, TimerUnit
from schemas.provisioning import ProvisioningStalled

#: Stalls are found within this long of XBUS_PROVISIONING_STALL_SECONDS.
CHECK_INTERVAL_SECONDS = 10.0


async def report_stalls(unit: TimerUnit) -> None:
    now = unit.cause.time
    after = dt.timedelta(seconds=unit.settings.provisioning_stall_seconds)
    for flow in await unit.store.mark_stalled(now, after):
        unit.record_about(
            flow.flow_id,
            ProvisioningStalled(
                flow_id=flow.flow_id,
                kind=flow.kind,
                entity_id=flow.entity_id,
                silent_steps=flow.silent_steps,
                silent_seconds=max(0, int((now - flow.started_at).total_seconds())),
            ),
            correlation_id=flow.correlation_id,
            causation_id=flow.flow_id,
        )


STALLS = Timer("stalls", CHECK_INTERVAL_SECONDS, report_stalls)
