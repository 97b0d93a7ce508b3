"""How many statements the tracker's handlers send PostgreSQL per report, on the real database.

The tracker handles every record of its input (root events and every step report): on a backlog
its time is its own statements, one round trip each (bench/README.md, ``backlog.py``, run 5: 2,177
events/s against the trivial service's 6,135). These counts are the handlers' own statements on
the fast path, where the batch holds every event's flow lock before the first handler runs (the
handler's own ``lock_flow`` then costs nothing: ``UnitOfWork.held``); the runtime's per-batch
statements (BEGIN, the inbox claim, the batch's locks, the follow-ups, COMMIT) are not counted.
A count that grows fails here, so that it cannot grow back unseen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from consumers.provisioning.flows import FlowPlan, FlowState, started
from consumers.provisioning.service import SERVICE
from consumers.provisioning.store import PostgresFlows
from consumers.runtime.migrations import load_migrations, migrate
from consumers.runtime.service import Routing
from schemas import Envelope, Event
from schemas.accounts import Investor, TradingAccountOpened
from schemas.authentication import LoginProvisioned
from schemas.authorisation import AccountAccessGranted, PermissionsGranted
from schemas.oms import OmsAccountProvisioned
from schemas.operators import OperatorRegistered
from schemas.provisioning import FlowKind, StepWaiting, TradingAccountProvisioned, UserProvisioned
from schemas.registry import RegistryAccountOpened
from schemas.types import InvestorType
from schemas.users import UserCreated

pytestmark = pytest.mark.integration

ROUTING = Routing(follow_up_topic="provisioning.events", dead_letter_topic="provisioning.dlq", source="tests")


class Counted:
    """The tracker's handlers on one connection, each event in a transaction of its own, with the
    statements each handler sent."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.statements: list[str] = []

    async def handle(self, event: Event, *, event_id: str | None = None) -> tuple[int, list[Event]]:
        """How many statements handling ``event`` took, and the events it recorded."""
        envelope = Envelope.new(type=event.event_type, subject=event.aggregate_id, source="tests", id=event_id)
        self.statements.clear()
        async with self.connection.transaction():
            held = await SERVICE.hold_batch_locks(self.connection, [(event, envelope)])  # the batch's, as the fast path
            self.connection.add_query_logger(self._logged)
            try:
                recorded = await SERVICE.handle(event, envelope, self.connection, ROUTING, replayed=False, held=held)
            finally:
                self.connection.remove_query_logger(self._logged)
        return len(self.statements), [r.event for r in recorded]

    def _logged(self, query: Any) -> None:
        self.statements.append(query.query)


@pytest.fixture
async def tracker(database: tuple[asyncpg.Connection, str]) -> AsyncIterator[Counted]:
    connection, schema = database
    await migrate(connection, schema, load_migrations(SERVICE.migrations))
    await connection.execute(f"set search_path to {schema}")
    counted = Counted(connection)
    # asyncpg looks up the codec of an array type (the locks', the steps' columns) the first time a
    # connection meets it: three statements, once per connection, not per report. A flow of their
    # own first, so that the counts are the handlers' steady ones.
    await counted.handle(AccountAccessGranted(flow_id="warm", account_id="XS:9999", logins=()))
    await counted.handle(account_opened("XS:9999"), event_id="warm")
    await counted.handle(OmsAccountProvisioned(flow_id="warm", account_id="XS:9999", currency="AUD"))
    yield counted


def account_opened(account_id: str) -> TradingAccountOpened:
    return TradingAccountOpened(
        account_id=account_id,
        owner="XS",
        name="Account",
        classification="Retail",
        default_currency="AUD",
        investor=Investor(investor_id="INV1", full_name="Investor One", country="AU", type=InvestorType.INDIVIDUAL),
    )


async def test_an_account_flow_costs_one_statement_to_start_and_two_per_report(tracker: Counted) -> None:
    """A root event: the flow's lock, then the flow, its steps and any early report in one statement.
    A report of a known open flow: the lock, the flow read with its steps, and its one write; the
    last one completes the flow in that same write and announces it from what it read."""
    flow_id = "f-account"
    assert await tracker.handle(account_opened("XS:0001"), event_id=flow_id) == (1, [])
    assert await tracker.handle(AccountAccessGranted(flow_id=flow_id, account_id="XS:0001", logins=())) == (2, [])
    provisioned = OmsAccountProvisioned(flow_id=flow_id, account_id="XS:0001", currency="AUD")
    assert await tracker.handle(provisioned) == (2, [])
    assert await tracker.handle(provisioned) == (1, [])  # a second report of a done step writes nothing
    opened = RegistryAccountOpened(flow_id=flow_id, account_id="XS:0001", investor_id="INV1", currency="AUD")
    assert await tracker.handle(opened) == (
        2,
        [
            TradingAccountProvisioned(
                flow_id=flow_id, account_id="XS:0001", steps=("authorisation.access", "oms.account", "registry.account")
            )
        ],
    )
    state = await tracker.connection.fetchval("select state from flows where flow_id = $1", flow_id)
    assert state == "completed"


async def test_a_user_flow_costs_two_statements_to_start_and_two_per_report(tracker: Counted) -> None:
    """``UserCreated`` also remembers whether its login has a session policy (one statement more)."""
    flow_id = "f-user"
    created = UserCreated(login_id="u1", username="u1", email="u1@example.com", display_name="U One")
    assert await tracker.handle(created, event_id=flow_id) == (2, [])
    waiting = StepWaiting(
        flow_id=flow_id, service="authorisation", step="authorisation.permissions", reason="no role", waiting_for=()
    )
    assert await tracker.handle(waiting) == (2, [])
    assert await tracker.handle(LoginProvisioned(login_id="u1", username="u1", flow_id=flow_id)) == (2, [])
    count, announced = await tracker.handle(PermissionsGranted(flow_id=flow_id, login_id="u1", permissions=()))
    assert (count, announced) == (
        2,
        [UserProvisioned(flow_id=flow_id, login_id="u1", steps=("authentication.login", "authorisation.permissions"))],
    )


async def test_an_early_report_costs_one_statement_and_its_flow_one_more_to_apply_them(tracker: Counted) -> None:
    """A report before its flow: the lock, and the flow looked up and the report kept in one
    statement. The root then takes its early reports back in the statement that starts the flow,
    and writes what they changed in one more."""
    flow_id = "f-early"
    assert await tracker.handle(AccountAccessGranted(flow_id=flow_id, account_id="XS:0002", logins=())) == (1, [])
    assert await tracker.handle(OmsAccountProvisioned(flow_id=flow_id, account_id="XS:0002", currency="AUD")) == (1, [])
    assert await tracker.handle(account_opened("XS:0002"), event_id=flow_id) == (2, [])
    steps = await tracker.connection.fetch(
        "select step, state from steps where flow_id = $1 order by position", flow_id
    )
    assert [(row["step"], row["state"]) for row in steps] == [
        ("authorisation.access", "done"),
        ("oms.account", "done"),
        ("registry.account", "expected"),
    ]
    assert await tracker.connection.fetchval("select count(*) from early_reports") == 0


async def test_a_flow_that_expects_no_step_completes_in_the_statement_after_its_start(tracker: Counted) -> None:
    """A deployment without the registry plans no step for an operator registered in the registry
    alone (flows.plan): its flow is complete as it starts, and the write that says so has no step
    to write, only the flow's state and time."""
    connection = tracker.connection
    cause = Envelope.new(type=OperatorRegistered.event_type, subject="op9", source="tests", id="f-none")
    flow = started("f-none", FlowPlan(FlowKind.OPERATOR, "op9", ()), cause)
    store = PostgresFlows(connection)
    async with connection.transaction():
        assert await store.start(flow) == []
        await store.save(flow, dataclasses.replace(flow, state=FlowState.COMPLETED), cause.time)
    row = await connection.fetchrow("select state, completed_at, failed_at from flows where flow_id = 'f-none'")
    assert (row["state"], row["completed_at"], row["failed_at"]) == ("completed", cause.time, None)
    assert await connection.fetchval("select count(*) from steps where flow_id = 'f-none'") == 0
