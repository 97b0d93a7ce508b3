"""The authentication service on the real stack: logins, and the step each flow gets reported.

One service runs for the module (tests/support/service_under_test.py); each test uses logins of
its own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from consumers.authentication import queries
from consumers.authentication.service import SERVICE
from producers import Outgoing
from schemas.authentication import LoginDisabled, LoginEnabled, LoginProvisioned
from schemas.provisioning import StepFailed
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated
from tests.conftest import Stack
from tests.support.service_under_test import ServiceUnderTest, module_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def authentication(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await module_settings(stack)) as service:
        yield service


def new_login() -> str:
    return str(uuid.uuid4())


def created(login: str, **fields: object) -> UserCreated:
    values: dict[str, object] = {
        "login_id": login,
        "username": f"name-{login}",
        "email": f"{login}@example.com",
        "display_name": "Someone",
        **fields,
    }
    return UserCreated.model_validate(values)


async def test_created_user_becomes_an_active_login_reported_for_its_flow(
    authentication: ServiceUnderTest,
) -> None:
    login = new_login()
    at = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)
    handled = await authentication.handle(Outgoing(created(login, credential_ref="vault:key-1"), time=at))

    assert handled.follow_ups == [LoginProvisioned(login_id=login, username=f"name-{login}", flow_id=handled.flow_id)]
    stored = await queries.login(authentication.db, login)
    assert stored is not None
    assert (stored.email, stored.display_name, stored.status, stored.credential_ref) == (
        f"{login}@example.com",
        "Someone",
        "active",
        "vault:key-1",
    )
    assert (stored.created_flow_id, stored.created_at, stored.updated_at) == (handled.flow_id, at, at)


async def test_second_user_created_for_an_existing_login_fails_its_step_and_changes_nothing(
    authentication: ServiceUnderTest,
) -> None:
    login = new_login()
    await authentication.handle(created(login))
    handled = await authentication.handle(created(login, display_name="Impostor"))

    [failed] = handled.follow_ups
    assert isinstance(failed, StepFailed)
    assert (failed.flow_id, failed.service, failed.step) == (handled.flow_id, "authentication", "authentication.login")
    assert "already exists" in failed.reason
    assert not await authentication.dead_lettered(handled.flow_id)
    stored = await queries.login(authentication.db, login)
    assert stored is not None and stored.display_name == "Someone"


async def test_update_changes_only_the_fields_present_and_reports_nothing(authentication: ServiceUnderTest) -> None:
    login = new_login()
    await authentication.handle(created(login))
    handled = await authentication.handle(UserUpdated(login_id=login, display_name="Renamed"))

    assert handled.follow_ups == []
    stored = await queries.login(authentication.db, login)
    assert stored is not None
    assert (stored.username, stored.email, stored.display_name) == (f"name-{login}", f"{login}@example.com", "Renamed")


async def test_disable_and_enable_report_their_steps_with_their_flows(authentication: ServiceUnderTest) -> None:
    login = new_login()
    await authentication.handle(created(login))

    disabled = await authentication.handle(UserDisabled(login_id=login, reason="left the firm"))
    assert disabled.follow_ups == [LoginDisabled(flow_id=disabled.flow_id, login_id=login, reason="left the firm")]
    stored = await queries.login(authentication.db, login)
    assert stored is not None and (stored.status, stored.status_reason) == ("disabled", "left the firm")

    enabled = await authentication.handle(UserEnabled(login_id=login))
    assert enabled.follow_ups == [LoginEnabled(flow_id=enabled.flow_id, login_id=login)]
    stored = await queries.login(authentication.db, login)
    assert stored is not None and (stored.status, stored.status_reason) == ("active", None)


async def test_disabling_or_enabling_an_unknown_login_fails_the_step_without_dead_letter(
    authentication: ServiceUnderTest,
) -> None:
    login = new_login()
    for event, step in ((UserDisabled(login_id=login, reason="x"), "disable"), (UserEnabled(login_id=login), "enable")):
        handled = await authentication.handle(event)
        assert handled.follow_ups == [
            StepFailed(
                flow_id=handled.flow_id,
                service="authentication",
                step=f"authentication.{step}",
                reason=f"login {login} is unknown to the authentication server",
            )
        ]
        assert not await authentication.dead_lettered(handled.flow_id)


async def test_deleted_login_is_kept_marked_deleted_and_cannot_be_enabled(authentication: ServiceUnderTest) -> None:
    login = new_login()
    await authentication.handle(created(login))
    deleted = await authentication.handle(UserDeleted(login_id=login, reason="account closed"))
    assert deleted.follow_ups == []

    enabled = await authentication.handle(UserEnabled(login_id=login))
    [failed] = enabled.follow_ups
    assert isinstance(failed, StepFailed)
    assert (failed.step, failed.reason) == ("authentication.enable", f"login {login} was deleted")
    stored = await queries.login(authentication.db, login)
    assert stored is not None and (stored.status, stored.status_reason) == ("deleted", "account closed")
    assert login in [found.login_id for found in await queries.logins(authentication.db, status="deleted")]


async def test_deleting_a_login_never_created_changes_nothing(authentication: ServiceUnderTest) -> None:
    login = new_login()
    handled = await authentication.handle(UserDeleted(login_id=login))

    assert handled.follow_ups == []
    assert await queries.login(authentication.db, login) is None


async def test_update_of_a_login_never_created_waits_for_its_create(authentication: ServiceUnderTest) -> None:
    handled = await authentication.handle(UserUpdated(login_id=new_login(), display_name="Nobody"))

    assert not await authentication.dead_lettered(handled.flow_id)  # see test_pending_prerequisites.py
    assert await authentication.db.fetchval("select 1 from xbus_pending where event_id = $1", handled.flow_id)
