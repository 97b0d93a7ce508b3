"""The authentication service's rules, on a FakeUnitOfWork over an in-memory store: what each
event does to a login and what it reports, with no broker and no database (the real-stack tests
in tests/integration/test_authentication*.py prove the SQL and the runtime)."""

from __future__ import annotations

import pytest

from consumers.authentication import handlers
from consumers.authentication.store import Logins
from consumers.runtime import DomainError, FakeUnitOfWork, MissingPrerequisite
from schemas import Event
from schemas.authentication import LoginDisabled, LoginEnabled, LoginProvisioned
from schemas.provisioning import StepFailed
from schemas.users import UserCreated, UserDeleted, UserDisabled, UserEnabled, UserUpdated
from tests.support.memory_authentication import MemoryLogins

CREATED = UserCreated(login_id="pk-1", username="pk", email="pk@example.com", display_name="P K")


async def _handle(event: Event, logins: MemoryLogins) -> FakeUnitOfWork[Logins]:
    unit: FakeUnitOfWork[Logins] = FakeUnitOfWork.handling(event, logins, service="authentication")
    await handlers_of[type(event)](event, unit)
    return unit


handlers_of = {
    UserCreated: handlers.user_created,
    UserUpdated: handlers.user_updated,
    UserDisabled: handlers.user_disabled,
    UserEnabled: handlers.user_enabled,
    UserDeleted: handlers.user_deleted,
}


async def _existing(status: str = "active") -> MemoryLogins:
    logins = MemoryLogins()
    await _handle(CREATED, logins)
    if status != "active":
        logins.rows["pk-1"].status = status
    return logins


async def test_a_new_login_is_stored_active_and_reported_provisioned_in_its_flow() -> None:
    logins = MemoryLogins()
    unit = await _handle(CREATED, logins)
    assert unit.events == [LoginProvisioned(login_id="pk-1", username="pk", flow_id=unit.cause.id)]
    stored = logins.rows["pk-1"]
    assert (stored.status, stored.username, stored.created_flow_id) == ("active", "pk", unit.cause.id)
    assert stored.updated_at == unit.cause.time  # the event's time, never the clock


@pytest.mark.parametrize("status", ["active", "disabled", "deleted"])
async def test_a_login_created_twice_fails_its_step_and_changes_nothing(status: str) -> None:
    logins = await _existing(status)
    again = CREATED.model_copy(update={"username": "other"})
    unit = await _handle(again, logins)
    [failed] = unit.events
    assert isinstance(failed, StepFailed)
    assert (failed.flow_id, failed.service, failed.step) == (unit.cause.id, "authentication", "authentication.login")
    assert f"login pk-1 already exists ({status})" in failed.reason
    assert logins.rows["pk-1"].username == "pk"


async def test_an_update_changes_the_fields_it_carries_and_reports_nothing() -> None:
    logins = await _existing()
    unit = await _handle(UserUpdated(login_id="pk-1", display_name="Pat K"), logins)
    assert unit.events == []
    stored = logins.rows["pk-1"]
    assert (stored.display_name, stored.username, stored.updated_at) == ("Pat K", "pk", unit.cause.time)


async def test_an_update_of_a_login_never_created_waits_for_its_creation() -> None:
    with pytest.raises(MissingPrerequisite) as waiting:
        await _handle(UserUpdated(login_id="pk-1", username="x"), MemoryLogins())
    assert waiting.value.waits_for == "pk-1"
    assert "publish the login's UserCreated" in str(waiting.value)


async def test_an_update_of_a_deleted_login_is_refused_for_a_person() -> None:
    logins = await _existing("deleted")
    with pytest.raises(DomainError, match="login pk-1 is deleted") as refused:
        await _handle(UserUpdated(login_id="pk-1", username="x"), logins)
    assert not isinstance(refused.value, MissingPrerequisite)
    assert logins.rows["pk-1"].username == "pk"


async def test_disabling_keeps_the_reason_and_reports_it() -> None:
    logins = await _existing()
    unit = await _handle(UserDisabled(login_id="pk-1", reason="left the firm"), logins)
    assert unit.events == [LoginDisabled(flow_id=unit.cause.id, login_id="pk-1", reason="left the firm")]
    assert (logins.rows["pk-1"].status, logins.rows["pk-1"].status_reason) == ("disabled", "left the firm")


async def test_enabling_makes_the_login_active_again_and_reports_it() -> None:
    logins = await _existing("disabled")
    unit = await _handle(UserEnabled(login_id="pk-1"), logins)
    assert unit.events == [LoginEnabled(flow_id=unit.cause.id, login_id="pk-1")]
    assert logins.rows["pk-1"].status == "active"


@pytest.mark.parametrize(
    ("event", "step"),
    [
        (UserDisabled(login_id="pk-1", reason="r"), "authentication.disable"),
        (UserEnabled(login_id="pk-1"), "authentication.enable"),
    ],
)
@pytest.mark.parametrize(
    ("status", "why"), [(None, "is unknown to the authentication server"), ("deleted", "was deleted")]
)
async def test_a_status_change_of_an_unknown_or_deleted_login_fails_its_step(
    event: Event, step: str, status: str | None, why: str
) -> None:
    logins = MemoryLogins() if status is None else await _existing(status)
    unit = await _handle(event, logins)
    [failed] = unit.events
    assert isinstance(failed, StepFailed)
    assert (failed.step, failed.reason) == (step, f"login pk-1 {why}")
    assert status is None or logins.rows["pk-1"].status == status


async def test_a_deletion_keeps_the_row_marked_deleted_and_reports_nothing() -> None:
    logins = await _existing()
    unit = await _handle(UserDeleted(login_id="pk-1", reason="gdpr"), logins)
    assert unit.events == []
    assert (logins.rows["pk-1"].status, logins.rows["pk-1"].status_reason) == ("deleted", "gdpr")


async def test_deleting_a_login_never_created_changes_nothing() -> None:
    logins = MemoryLogins()
    unit = await _handle(UserDeleted(login_id="pk-1"), logins)
    assert (unit.events, logins.rows) == ([], {})


async def test_the_handlers_reach_their_state_only_through_the_store() -> None:
    unit: FakeUnitOfWork[Logins] = FakeUnitOfWork.handling(CREATED, MemoryLogins(), service="authentication")
    with pytest.raises(AssertionError, match="no database"):
        await unit.fetchval("select 1")
