"""Change flows through every real service: a disable cascade, refusals with reasons, compensation.

Each step is published as an upstream system would, and the outcome is read where a user would
read it: the tracker's flow (`xbus status`'s query API) and each service's own state.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import asyncpg
import pytest

from consumers.authentication import queries as authentication
from consumers.authorisation import queries as authorisation
from consumers.oms import queries as oms
from consumers.provisioning.queries import FlowView, flows_of
from consumers.registry import queries as registry
from consumers.sessions import queries as sessions
from infrastructure.settings import Settings
from producers import Outgoing, Published, open_publisher
from schemas import Event
from schemas.accounts import (
    AccountLogin,
    FundsDeposited,
    FundsWithdrawn,
    Investor,
    TradingAccountClosed,
    TradingAccountOpened,
)
from schemas.types import AccountRight, InvestorType, PositiveMoney
from schemas.users import SessionPolicy, UserCreated, UserDisabled
from tests.support.all_services import SERVICES, eventually, running

pytestmark = pytest.mark.integration


class Platform:
    """Publishes upstream events and answers how the flow each one started ended."""

    def __init__(self, settings: Settings, connection: asyncpg.Connection) -> None:
        self.settings, self.connection = settings, connection
        self.tracker = settings.db_schema("provisioning")
        self._clock = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)

    async def send(self, event: Event) -> str:
        """Publish ``event``; return its flow id once the tracker has seen that flow end."""
        self._clock += dt.timedelta(seconds=1)  # event times in the order sent, as upstream would
        async with open_publisher(self.settings) as p:
            [result] = await p.publish_many([Outgoing(event, time=self._clock)])
        assert isinstance(result, Published), result
        await eventually(lambda: self._ended(result.event_id), 60, f"the flow of {event.event_type} ended")
        return result.event_id

    async def flow(self, kind: str, entity: str, flow_id: str) -> FlowView:
        [flow] = [f for f in await flows_of(self.connection, kind, entity, schema=self.tracker) if f.flow_id == flow_id]
        return flow

    async def in_schema(self, service: str) -> asyncpg.Connection:
        await self.connection.execute(f"set search_path to {self.settings.db_schema(service)}")
        return self.connection

    async def _ended(self, flow_id: str) -> bool:
        if not await self.connection.fetchval("select to_regclass($1)", f"{self.tracker}.flows"):
            return False
        state = await self.connection.fetchval(f"select state from {self.tracker}.flows where flow_id = $1", flow_id)
        return state in ("completed", "failed")


def aud(amount: str) -> PositiveMoney:
    return PositiveMoney(amount=Decimal(amount), currency="AUD")


def opened(account: str, investor: str, name: str, login: str) -> TradingAccountOpened:
    return TradingAccountOpened(
        account_id=account,
        owner="XS",
        name=f"Account {account}",
        classification="Retail",
        default_currency="AUD",
        investor=Investor(investor_id=investor, full_name=name, country="AU", type=InvestorType.INDIVIDUAL),
        logins=(AccountLogin(login_id=login, rights=(AccountRight.VIEW, AccountRight.TRADE)),),
    )


async def test_disable_cascade_refusals_with_reasons_and_compensation_across_every_service(
    service_settings: Settings,
) -> None:
    connection = await asyncpg.connect(service_settings.database_url or "")
    platform = Platform(service_settings, connection)
    try:
        async with running(service_settings, SERVICES):
            await _disabling_a_user_revokes_access_everywhere_and_is_recorded_as_a_cascade(platform)
            await _cash_rules_refuse_with_reasons_and_a_closed_account_is_closed_everywhere(platform)
            await _a_failed_opening_is_compensated_by_the_services_that_did_their_part(platform)
        for service in SERVICES:
            schema = service_settings.db_schema(service)
            assert await connection.fetchval(f"select count(*) from {schema}.xbus_dead_letters") == 0, service
    finally:
        await connection.close()


async def _disabling_a_user_revokes_access_everywhere_and_is_recorded_as_a_cascade(platform: Platform) -> None:
    alice = UserCreated(
        login_id="alice",
        username="alice",
        email="alice@example.com",
        display_name="Alice",
        markets=("XSX",),
        session_policy=SessionPolicy(pool="General"),
    )
    created = await platform.send(alice)
    assert (await platform.flow("user", "alice", created)).state == "completed"
    account = await platform.send(opened("XS:9001", "INV-9001", "Alice Nguyen", "alice"))
    assert (await platform.flow("account", "XS:9001", account)).state == "completed"

    disabled = await platform.send(UserDisabled(login_id="alice", reason="left the firm"))
    flow = await platform.flow("user", "alice", disabled)
    assert flow.state == "completed"
    assert {(s.step, s.state) for s in flow.steps} == {
        ("authentication.disable", "done"),
        ("authorisation.revoke", "done"),
        ("sessions.end", "done"),
    }
    login = await authentication.login(await platform.in_schema("authentication"), "alice")
    assert login is not None and login.status == "disabled"
    db = await platform.in_schema("authorisation")
    assert await authorisation.permissions(db, "alice", active_only=True) == []
    limits = await sessions.limits(await platform.in_schema("sessions"), "alice")
    assert limits is not None and limits.sessions_ended_at is not None


async def _cash_rules_refuse_with_reasons_and_a_closed_account_is_closed_everywhere(platform: Platform) -> None:
    bob = UserCreated(login_id="bob", username="bob", email="bob@example.com", display_name="Bob")
    await platform.send(bob)
    await platform.send(opened("XS:9002", "INV-9002", "Bob Okafor", "bob"))
    deposit = await platform.send(FundsDeposited(account_id="XS:9002", amount=aud("100.50"), reference="BANK-1"))
    assert (await platform.flow("account", "XS:9002", deposit)).state == "completed"

    refused_close = await platform.send(TradingAccountClosed(account_id="XS:9002", reason="customer request"))
    flow = await platform.flow("account", "XS:9002", refused_close)
    assert flow.state == "failed"
    [failed] = [s for s in flow.steps if s.state == "failed"]
    assert failed.step == "registry.account_state" and "100.5" in (failed.reason or "")
    assert (await oms.account(await platform.in_schema("oms"), "XS:9002")).state == "active"  # type: ignore[union-attr]
    assert await authorisation.account_access(await platform.in_schema("authorisation"), "XS:9002")

    too_much = await platform.send(FundsWithdrawn(account_id="XS:9002", amount=aud("150"), reference="BANK-2"))
    flow = await platform.flow("account", "XS:9002", too_much)
    assert flow.state == "failed"
    [refused] = [s for s in flow.steps if s.state == "failed"]
    assert "exceeds settled cash" in (refused.reason or "")
    emptied = await platform.send(FundsWithdrawn(account_id="XS:9002", amount=aud("100.50"), reference="BANK-3"))
    assert (await platform.flow("account", "XS:9002", emptied)).state == "completed"
    assert await registry.cash(await platform.in_schema("registry"), "XS:9002") == {"AUD": Decimal("0")}

    closed = await platform.send(TradingAccountClosed(account_id="XS:9002", reason="customer request"))
    flow = await platform.flow("account", "XS:9002", closed)
    assert flow.state == "completed"
    assert {s.step for s in flow.steps} == {"registry.account_state", "oms.account_state", "authorisation.revoke"}
    assert (await registry.account(await platform.in_schema("registry"), "XS:9002")).state == "closed"  # type: ignore[union-attr]
    assert (await oms.account(await platform.in_schema("oms"), "XS:9002")).state == "closed"  # type: ignore[union-attr]
    access = await authorisation.account_access(await platform.in_schema("authorisation"), "XS:9002")
    assert all(a.revoked_at is not None for a in access)


async def _a_failed_opening_is_compensated_by_the_services_that_did_their_part(platform: Platform) -> None:
    carol = UserCreated(login_id="carol", username="carol", email="carol@example.com", display_name="Carol")
    await platform.send(carol)
    await platform.send(opened("XS:9003", "INV-9003", "Carol Smith", "carol"))
    # the same investor id under another name: the registry refuses, the others must undo their part
    conflicting = await platform.send(opened("XS:9004", "INV-9003", "Someone Else", "carol"))
    flow = await platform.flow("account", "XS:9004", conflicting)
    assert flow.state == "failed"
    [failed] = [s for s in flow.steps if s.state == "failed"]
    assert (failed.service, failed.step) == ("registry", "registry.account")
    await eventually(lambda: _compensated(platform, "XS:9004"), 30, "the OMS and authorisation undid the opening")
    assert await registry.account(await platform.in_schema("registry"), "XS:9004") is None


async def _compensated(platform: Platform, account: str) -> bool:
    held = await oms.account(await platform.in_schema("oms"), account)
    access = await authorisation.account_access(await platform.in_schema("authorisation"), account)
    return held is not None and held.state == "closed" and all(a.revoked_at is not None for a in access)
