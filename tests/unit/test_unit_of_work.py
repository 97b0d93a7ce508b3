"""Follow-up ids: the same follow-up of the same cause is the same event on every run (a replay's
republished follow-ups are duplicates downstream); another event at the same position is not."""

from __future__ import annotations

import datetime as dt
from typing import cast

from consumers.runtime.unit_of_work import DbConnection, UnitOfWork
from schemas import Envelope
from schemas.users import UserDisabled, UserEnabled

CAUSE = Envelope(
    id="cause-1",
    source="test",
    type="xosp.user.created.v1",
    time=dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
    subject="u1",
    correlation_id="cause-1",
    causation_id="cause-1",
)


def _ids(service: str, *events: UserEnabled | UserDisabled) -> list[str]:
    unit = UnitOfWork(cast(DbConnection, None), CAUSE, "test", service)
    for event in events:
        unit.record(event)
    return [recorded.envelope.id for recorded in unit.recorded]


def test_the_same_follow_ups_of_the_same_cause_get_the_same_ids() -> None:
    events = (UserEnabled(login_id="u1"), UserDisabled(login_id="u1", reason="r"))
    assert _ids("sessions", *events) == _ids("sessions", *events)
    assert len(set(_ids("sessions", *events))) == 2


def test_another_event_at_the_same_position_gets_another_id() -> None:
    first = _ids("sessions", UserEnabled(login_id="u1"))
    assert first != _ids("sessions", UserEnabled(login_id="u2"))  # another key
    assert first != _ids("sessions", UserDisabled(login_id="u1", reason="r"))  # another type
    assert first != _ids("authentication", UserEnabled(login_id="u1"))  # another service
