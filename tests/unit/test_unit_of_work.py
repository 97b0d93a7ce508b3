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


class _Statements:
    """Stands in for a connection: what was executed, with its arguments."""

    def __init__(self) -> None:
        self.executed: list[tuple[object, ...]] = []

    async def execute(self, query: str, *args: object) -> str:
        self.executed.append(args)
        return "SELECT 1"


async def test_a_lock_the_batch_holds_already_costs_no_statement_and_the_others_are_taken() -> None:
    """The fast path takes every event's declared locks before the first handler; a handler that
    locks the same name again (the tracker's flow) must not pay a round trip for it."""
    connection = _Statements()
    unit: UnitOfWork[None] = UnitOfWork(
        cast(DbConnection, connection), CAUSE, "test", "svc", held=frozenset({"flow:1"})
    )
    await unit.lock("flow:1")
    assert connection.executed == []
    await unit.lock("flow:1", "flow:2")
    assert connection.executed == [(["svc:flow:2"], [False])]
