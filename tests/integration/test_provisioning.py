"""The provisioning tracker alone on the real stack: flows open on upstream events and close on the
services' reports, published here by hand in the orders the services could produce."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import Awaitable
from decimal import Decimal

import asyncpg
import pytest

from consumers.provisioning.queries import flows_of
from consumers.provisioning.service import SERVICE
from consumers.provisioning.store import PostgresFlows
from consumers.runtime.migrations import load_migrations, migrate
from infrastructure.settings import Settings
from producers import Outgoing
from schemas.accounts import AccountLoginLinked, FundsWithdrawn, Investor, TradingAccountOpened
from schemas.authentication import LoginDisabled, LoginProvisioned
from schemas.authorisation import AccessRevoked, AccountAccessGranted, AccountLogin, PermissionsGranted, RevokedScope
from schemas.oms import OmsAccountProvisioned, OmsOperatorRegistered
from schemas.operators import ManualActionCompleted, OperatorRegistered
from schemas.provisioning import (
    ChangeApplied,
    ManualActionRequired,
    OperatorProvisioned,
    ProvisioningFailed,
    ProvisioningOverdue,
    ProvisioningStalled,
    StepFailed,
    StepWaiting,
    TradingAccountProvisioned,
    UserProvisioned,
)
from schemas.registry import RegistryAccountOpened
from schemas.sessions import SessionLimitsAssigned, SessionsEnded
from schemas.types import AccountRight, InvestorType, OmsFeature, OperatorSystem, PositiveMoney
from schemas.users import SessionPolicy, UserCreated, UserDisabled, UserEnabled, UserUpdated
from tests.conftest import XbusCli
from tests.integration.test_runtime import eventually
from tests.support.tracker import Tracker, new_id, running_tracker, state, steps

pytestmark = pytest.mark.integration


def user(login_id: str, policy: bool = False) -> UserCreated:
    return UserCreated(
        login_id=login_id,
        username=login_id,
        email=f"{login_id}@example.com",
        display_name=login_id,
        session_policy=SessionPolicy(pool="General") if policy else None,
    )


def account(account_id: str) -> TradingAccountOpened:
    return TradingAccountOpened(
        account_id=account_id,
        owner=account_id.split(":")[0],
        name="Account",
        classification="Retail",
        default_currency="AUD",
        investor=Investor(investor_id="INV1", full_name="Investor One", country="AU", type=InvestorType.INDIVIDUAL),
    )


async def test_user_flow_completes_when_every_required_step_reported(service_settings: Settings) -> None:
    flow_id = new_id()
    async with running_tracker(service_settings) as tracker:
        await tracker.publish(Outgoing(user("u1", policy=True), event_id=flow_id))
        await tracker.publish(
            LoginProvisioned(login_id="u1", username="u1", flow_id=flow_id),
            PermissionsGranted(flow_id=flow_id, login_id="u1", permissions=("role:motif-user",)),
        )
        flow = await tracker.flow_when("user", "u1", lambda f: steps(f)["authorisation.permissions"] == "done")
        assert steps(flow) == {
            "authentication.login": "done",
            "authorisation.permissions": "done",
            "sessions.limits": "expected",
        }
        assert flow.state == "open" and flow.started_by == UserCreated.event_type
        await tracker.publish(
            SessionLimitsAssigned(
                flow_id=flow_id,
                login_id="u1",
                pool="General",
                max_sessions=10,
                max_connections=50,
                grace_period_seconds=120,
            )
        )
        flow = await tracker.flow_when("user", "u1", state("completed"))
        assert flow.completed_at is not None
        [done] = await tracker.published(UserProvisioned)
    assert done.data == {
        "flow_id": flow_id,
        "login_id": "u1",
        "steps": ["authentication.login", "authorisation.permissions", "sessions.limits"],
    }
    assert done.key == flow_id


async def test_session_step_is_expected_only_with_a_policy(service_settings: Settings) -> None:
    async with running_tracker(service_settings) as tracker:
        await tracker.publish(
            user("plain"),
            user("pooled", policy=True),
            user("later"),
            UserUpdated(login_id="later", session_policy=SessionPolicy(pool="Default")),
            UserEnabled(login_id="later"),
            UserEnabled(login_id="plain"),
        )
        plain = await _flows_when_count(tracker, "plain", 2)
        [pooled] = await _flows_when_count(tracker, "pooled", 1)
        later = await _flows_when_count(tracker, "later", 2)
    assert [flow.started_by for flow in plain] == [UserCreated.event_type, UserEnabled.event_type]
    assert list(steps(plain[0])) == ["authentication.login", "authorisation.permissions"]
    assert list(steps(pooled)) == ["authentication.login", "authorisation.permissions", "sessions.limits"]
    assert list(steps(plain[1])) == ["authentication.enable", "authorisation.enable"]
    assert list(steps(later[1])) == ["authentication.enable", "authorisation.enable", "sessions.limits"]


async def _flows_when_count(tracker: Tracker, login_id: str, count: int) -> list:
    async def enough() -> bool:
        return len(await tracker.flows("user", login_id)) == count

    await eventually(enough, timeout=30)
    return await tracker.flows("user", login_id)


async def test_report_before_the_flow_starts_is_counted(service_settings: Settings) -> None:
    flow_id, untracked = new_id(), new_id()
    async with running_tracker(service_settings) as tracker:
        await tracker.publish(
            AccountAccessGranted(flow_id=flow_id, account_id="XS:0001", logins=()),
            OmsAccountProvisioned(flow_id=flow_id, account_id="XS:0001", currency="AUD"),
            RegistryAccountOpened(flow_id=flow_id, account_id="XS:0001", investor_id="INV1", currency="AUD"),
            # the PermissionsGranted of a UserUpdated: a flow the tracker never tracks
            PermissionsGranted(flow_id=untracked, login_id="u9", permissions=("role:motif-user",)),
        )
        await eventually(lambda: _equals(tracker.scalar("select count(*) from {schema}.early_reports"), 4))
        assert await tracker.flows("account", "XS:0001") == []
        await tracker.publish(Outgoing(account("XS:0001"), event_id=flow_id))
        flow = await tracker.flow_when("account", "XS:0001", state("completed"))
        assert set(steps(flow).values()) == {"done"}
        [provisioned] = await tracker.published(TradingAccountProvisioned)
        assert provisioned.data["flow_id"] == flow_id
        assert await tracker.scalar("select count(*) from {schema}.early_reports") == 1  # the untracked one, inert


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_operator_with_prodigy_waits_for_manual_action(service_settings: Settings) -> None:
    flow_id = new_id()
    operator = OperatorRegistered(
        operator_id="op1",
        login_id="u1",
        systems=(OperatorSystem.OMS, OperatorSystem.PRODIGY),
        oms_features=(OmsFeature.OPERATOR,),
        exchanges=("XSX",),
    )
    async with running_tracker(service_settings) as tracker:
        await tracker.publish(Outgoing(operator, event_id=flow_id))
        registered = OmsOperatorRegistered(flow_id=flow_id, operator_id="op1", features=(OmsFeature.OPERATOR,))
        await tracker.publish(registered)
        flow = await tracker.flow_when("operator", "op1", lambda f: steps(f)["oms.operator"] == "done")
        assert steps(flow) == {"oms.operator": "done", "prodigy.operator": "manual"}
        [required] = await tracker.published(ManualActionRequired)
        assert required.data["step"] == "prodigy.operator" and required.data["system"] == "prodigy"
        assert required.data["operator_id"] == "op1" and "XSX" in required.data["instructions"]
        assert await tracker.published(OperatorProvisioned) == []
        await tracker.publish(
            ManualActionCompleted(operator_id="op1", flow_id=flow_id, step="prodigy.operator", done_by="ops")
        )
        await tracker.flow_when("operator", "op1", state("completed"))
        [provisioned] = await tracker.published(OperatorProvisioned)
    assert provisioned.data["steps"] == ["oms.operator", "prodigy.operator"]


async def test_a_manual_action_not_asked_of_its_operator_is_dead_lettered_and_changes_nothing(
    service_settings: Settings,
) -> None:
    flow_id = new_id()
    operator = OperatorRegistered(
        operator_id="op4", login_id="u4", systems=(OperatorSystem.OMS, OperatorSystem.PRODIGY)
    )
    wrong_operator = ManualActionCompleted(operator_id="op5", flow_id=flow_id, step="prodigy.operator", done_by="ops")
    service_step = ManualActionCompleted(operator_id="op6", flow_id=flow_id, step="oms.operator", done_by="ops")
    async with running_tracker(service_settings) as tracker:
        await tracker.publish(Outgoing(operator, event_id=flow_id))
        await tracker.flow_when("operator", "op4", lambda f: steps(f)["prodigy.operator"] == "manual")
        await tracker.publish(Outgoing(wrong_operator, event_id=new_id()), Outgoing(service_step, event_id=new_id()))
        await eventually(lambda: _equals(tracker.scalar("select count(*) from {schema}.xbus_dead_letters"), 2))
        schema = tracker.schema
        reasons = await tracker.connection.fetch(
            f'select key, error_type, error_message from "{schema}".xbus_dead_letters order by key'
        )
        [flow] = await tracker.flows("operator", "op4")
        assert steps(flow) == {"oms.operator": "expected", "prodigy.operator": "manual"}
        await tracker.publish(OmsOperatorRegistered(flow_id=flow_id, operator_id="op4", features=()))
        await tracker.publish(
            ManualActionCompleted(operator_id="op4", flow_id=flow_id, step="prodigy.operator", done_by="ops")
        )
        await tracker.flow_when("operator", "op4", state("completed"))
    assert [(r["key"], r["error_type"]) for r in reasons] == [("op5", "DomainError"), ("op6", "DomainError")]
    assert "was asked of operator op4, not op5" in reasons[0]["error_message"]
    assert "oms.operator of flow" in reasons[1]["error_message"]
    assert "taken by the oms service" in reasons[1]["error_message"]


async def test_step_failed_fails_the_flow_once(service_settings: Settings) -> None:
    flow_id = new_id()
    withdrawal = FundsWithdrawn(
        account_id="XS:0002", amount=PositiveMoney(amount=Decimal("100.00"), currency="AUD"), reference="bank-1"
    )
    refusal = StepFailed(flow_id=flow_id, service="registry", step="registry.cash", reason="settled cash is 0.00 AUD")
    async with running_tracker(service_settings) as tracker:
        await tracker.publish(Outgoing(withdrawal, event_id=flow_id))
        await tracker.report("xosp.registry.events", refusal)
        await tracker.report("xosp.registry.events", refusal)  # a second refusal (another event id)
        flow = await tracker.flow_when("account", "XS:0002", state("failed"))
        await eventually(lambda: _equals(tracker.scalar("select count(*) from {schema}.xbus_inbox"), 3))
        [failed] = await tracker.published(ProvisioningFailed)
        assert await tracker.published(ChangeApplied) == []
    [step] = flow.steps
    assert (step.state, step.reason) == ("failed", "settled cash is 0.00 AUD")
    assert failed.data == {
        "flow_id": flow_id,
        "kind": "account",
        "entity_id": "XS:0002",
        "service": "registry",
        "step": "registry.cash",
        "reason": "settled cash is 0.00 AUD",
    }


async def test_waiting_step_is_shown_then_cleared(service_settings: Settings) -> None:
    flow_id = new_id()
    link = AccountLoginLinked(account_id="XS:0003", login_id="u7", rights=(AccountRight.VIEW,))
    waiting = StepWaiting(
        flow_id=flow_id,
        service="authorisation",
        step="authorisation.access",
        reason="login unknown",
        waiting_for=("login:u7",),
    )
    async with running_tracker(service_settings) as tracker:
        await tracker.publish(Outgoing(link, event_id=flow_id))
        await tracker.report("xosp.authorisation.events", waiting)
        flow = await tracker.flow_when("account", "XS:0003", lambda f: steps(f)["authorisation.access"] == "waiting")
        [step] = flow.steps
        assert step.reason == "login unknown (waiting for login:u7)" and step.time is not None
        granted = AccountAccessGranted(
            flow_id=flow_id, account_id="XS:0003", logins=(AccountLogin(login_id="u7", rights=(AccountRight.VIEW,)),)
        )
        await tracker.publish(granted)
        flow = await tracker.flow_when("account", "XS:0003", state("completed"))
        [applied] = await tracker.published(ChangeApplied)
    [step] = flow.steps
    assert (step.state, step.reason) == ("done", None)
    assert applied.data["change"] == AccountLoginLinked.event_type


async def test_silent_flow_is_reported_overdue_once(service_settings: Settings) -> None:
    settings = service_settings.model_copy(update={"provisioning_overdue_seconds": 1.0})
    [overdue_timer] = SERVICE.timers
    assert overdue_timer.name == "overdue"
    quick = dataclasses.replace(SERVICE, timers=(dataclasses.replace(overdue_timer, interval_seconds=0.2),))
    flow_id = new_id()
    async with running_tracker(settings, quick) as tracker:
        await tracker.publish(Outgoing(UserDisabled(login_id="u5", reason="left"), event_id=flow_id))
        await tracker.publish(LoginDisabled(flow_id=flow_id, login_id="u5", reason="left"))
        await tracker.flow_when("user", "u5", lambda f: f.overdue_at is not None)
        ticks = tracker.runner.timers.ticks
        await eventually(lambda: _true(tracker.runner.timers.ticks >= ticks + 3))  # more ticks: nothing new
        [overdue] = await tracker.published(ProvisioningOverdue, ProvisioningStalled)
        assert overdue.envelope is not None and overdue.envelope.type == "xosp.provisioning.overdue.v1"
        assert overdue.data["silent_steps"] == ["authorisation.revoke", "sessions.end"]
        assert overdue.data["silent_seconds"] >= 1
        assert overdue.envelope.causation_id == flow_id
        await tracker.publish(
            AccessRevoked(flow_id=flow_id, scope=RevokedScope.LOGIN, subject_id="u5", login_ids=("u5",), reason="left"),
            SessionsEnded(flow_id=flow_id, login_id="u5", reason="left"),
        )
        await tracker.flow_when("user", "u5", state("completed"))  # a late report still completes it
        assert len(await tracker.published(ProvisioningOverdue, ProvisioningStalled)) == 1
        assert len(await tracker.published(ChangeApplied)) == 1


async def test_a_flow_reported_stalled_before_the_rename_keeps_its_time_as_overdue_at(
    database: tuple[asyncpg.Connection, str],
) -> None:
    connection, schema = database
    migrations = load_migrations(SERVICE.migrations)
    before = [m for m in migrations if m.version != "0002_overdue"]
    assert len(before) == len(migrations) - 1
    await migrate(connection, schema, before)
    at = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    await connection.execute(
        "insert into flows (flow_id, kind, entity_id, started_by, correlation_id, started_at, stalled_at) "
        "values ('f-old', 'user', 'u-old', 'xosp.user.disabled.v1', 'f-old', $1, $2)",
        at - dt.timedelta(minutes=5),
        at,
    )

    assert await migrate(connection, schema, migrations) == ["0002_overdue"]
    [flow] = await flows_of(connection, "user", "u-old", schema=schema)
    assert flow.overdue_at == at and flow.to_json()["overdue_at"] == "2025-03-04T05:06:07.000000Z"


async def test_a_prodigy_step_open_before_steps_named_their_operator_is_asked_of_the_operator_it_registers(
    database: tuple[asyncpg.Connection, str],
) -> None:
    connection, schema = database
    migrations = load_migrations(SERVICE.migrations)
    before = [m for m in migrations if m.version != "0003_asked_of"]
    assert len(before) == len(migrations) - 1
    await migrate(connection, schema, before)
    await connection.execute(
        "insert into flows (flow_id, kind, entity_id, started_by, correlation_id, started_at) "
        "values ('f-op', 'operator', 'op-old', 'xosp.operator.registered.v1', 'f-op', now())"
    )
    await connection.execute(
        "insert into steps (flow_id, step, position, service, state, reason) values "
        "('f-op', 'oms.operator', 0, 'oms', 'expected', null), "
        "('f-op', 'prodigy.operator', 1, 'prodigy', 'manual', 'register op-old in Prodigy')"
    )

    assert await migrate(connection, schema, migrations) == ["0003_asked_of"]
    flow = await PostgresFlows(connection).flow("f-op")
    assert flow is not None
    assert [(step.name, step.asked_of) for step in flow.steps] == [
        ("oms.operator", None),
        ("prodigy.operator", "op-old"),
    ]


async def _true(value: bool) -> bool:
    return value


async def test_status_shows_every_flow_of_an_entity_with_its_steps(service_settings: Settings, xbus: XbusCli) -> None:
    flow_id = new_id()
    env = {"XBUS_DB_SCHEMA_PREFIX": service_settings.db_schema_prefix}
    async with running_tracker(service_settings) as tracker:
        await tracker.publish(Outgoing(user("cli1"), event_id=flow_id))
        await tracker.publish(LoginProvisioned(login_id="cli1", username="cli1", flow_id=flow_id))
        await tracker.flow_when("user", "cli1", lambda f: steps(f)["authentication.login"] == "done")
    as_json = await asyncio.to_thread(xbus, "status", "user", "cli1", "--json", env=env)
    assert as_json.code == 0, as_json.stderr
    [flow] = json.loads(as_json.stdout)["flows"]
    assert (flow["flow_id"], flow["started_by"], flow["state"]) == (flow_id, UserCreated.event_type, "open")
    assert [(s["step"], s["service"], s["state"]) for s in flow["steps"]] == [
        ("authentication.login", "authentication", "done"),
        ("authorisation.permissions", "authorisation", "expected"),
    ]
    table = await asyncio.to_thread(xbus, "status", "user", "cli1", env=env)
    assert table.code == 0, table.stderr
    assert flow_id in table.stdout and "authorisation.permissions" in table.stdout and "expected" in table.stdout
    missing = await asyncio.to_thread(xbus, "status", "operator", "nobody", env=env)
    assert missing.code == 1
    assert missing.stderr.strip() == "xbus: the provisioning tracker has no flow for operator 'nobody'"
