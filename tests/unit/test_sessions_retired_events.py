"""``xosp.session_limits.assigned.v1``, retired for v2 (whose limits may be absent: the platform's
``Default`` pool sets none), is still read: the records already on ``xosp.sessions.events`` and in
dead letters replay as they did."""

from __future__ import annotations

from consumers.provisioning.service import SERVICE as TRACKER
from schemas import event_types
from schemas.sessions import SessionLimitsAssigned, SessionLimitsAssignedV1

V1_RECORD = (
    b'{"flow_id": "f-1", "login_id": "pk-1", "pool": "General", "max_sessions": 10, "max_connections": 50,'
    b' "grace_period_seconds": 120}'
)


def test_a_v1_record_still_parses_as_it_was_written() -> None:
    event = event_types.parse("xosp.session_limits.assigned.v1", V1_RECORD)
    assert isinstance(event, SessionLimitsAssignedV1)
    limits = (event.max_sessions, event.max_connections, event.grace_period_seconds)
    assert (event.pool, limits) == ("General", (10, 50, 120))


def test_the_tracker_takes_v1_and_v2_alike_as_the_sessions_limits_step() -> None:
    assert SessionLimitsAssigned.event_type == "xosp.session_limits.assigned.v2"
    assert TRACKER.by_type[SessionLimitsAssignedV1.event_type] is TRACKER.by_type[SessionLimitsAssigned.event_type]
