"""Session Management on the real stack: the platform's pools seeded, pools defined and changed by
events and followed by their logins; limits assigned, waiting for their pool, removed, ended and
restored; a login created twice, updated before its creation or after its deletion.

The platform's pools are the reference deployment's (``Config/Init/sessions-init.ps1``, plxtra/xosp):
``Pool Set XOSP Default`` sets no limit; ``Pool Set XOSP General -Sessions 1 -Connections 5 -Grace
'00:00:04' -Resource``."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict

import asyncpg
import pytest
import pytest_asyncio

from consumers.runtime.migrations import load_migrations, migrate
from consumers.sessions import queries
from consumers.sessions.pools import Limits
from consumers.sessions.service import SERVICE
from producers import Outgoing
from schemas.provisioning import StepFailed
from schemas.session_pools import SessionPoolChanged, SessionPoolDefined
from schemas.sessions import SessionLimitsAssigned, SessionLimitsChanged, SessionLimitsRemoved, SessionsEnded
from schemas.users import (
    SessionLimits,
    SessionPolicy,
    UserCreated,
    UserDeleted,
    UserDisabled,
    UserEnabled,
    UserSessionPolicyRemoved,
    UserUpdated,
)
from tests.conftest import Stack
from tests.support.service_under_test import ServiceUnderTest, module_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

DEFAULT = Limits(None, None, None, resource_scoped=False)
GENERAL = Limits(1, 5, 4, resource_scoped=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sessions(stack: Stack) -> AsyncIterator[ServiceUnderTest]:
    async with ServiceUnderTest(SERVICE, await module_settings(stack)) as service:
        yield service


def new_login() -> str:
    return str(uuid.uuid4())


def created(login: str, policy: SessionPolicy | None = None) -> UserCreated:
    return UserCreated(
        login_id=login, username=login, email=f"{login}@example.com", display_name="Someone", session_policy=policy
    )


def assigned(flow_id: str, login: str, pool: str, limits: Limits) -> SessionLimitsAssigned:
    return SessionLimitsAssigned(
        flow_id=flow_id,
        login_id=login,
        pool=pool,
        max_sessions=limits.max_sessions,
        max_connections=limits.max_connections,
        grace_period_seconds=limits.grace_period_seconds,
        resource_scoped=limits.resource_scoped,
    )


def new_pool() -> str:
    return f"Pool-{uuid.uuid4().hex[:12]}"


def defined(pool: str, limits: Limits) -> SessionPoolDefined:
    return SessionPoolDefined(
        pool=pool,
        max_sessions=limits.max_sessions,
        max_connections=limits.max_connections,
        grace_period_seconds=limits.grace_period_seconds,
        resource_scoped=limits.resource_scoped,
    )


def changed(pool: str, limits: Limits) -> SessionPoolChanged:
    return SessionPoolChanged(**defined(pool, limits).model_dump())


def limits_changed(login: str, pool: str, limits: Limits) -> SessionLimitsChanged:
    return SessionLimitsChanged(login_id=login, pool=pool, **asdict(limits))


async def test_the_platforms_pools_are_there_from_the_start(sessions: ServiceUnderTest) -> None:
    """sessions-init.ps1: ``Pool Set XOSP Default``; ``Pool Set XOSP General -Sessions 1 -Connections 5
    -Grace '00:00:04' -Resource``."""
    assert await queries.pool(sessions.db, "Default") == queries.Pool("Default", DEFAULT, None)
    assert await queries.pool(sessions.db, "General") == queries.Pool("General", GENERAL, None)
    assert await queries.pool(sessions.db, "Gold") is None


async def test_user_with_policy_gets_pool_limits_with_overrides(sessions: ServiceUnderTest) -> None:
    login = new_login()
    at = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)
    policy = SessionPolicy(pool="General", overrides=SessionLimits(max_sessions=3))
    handled = await sessions.handle(Outgoing(created(login, policy), time=at))

    in_force = Limits(3, 5, 4, resource_scoped=True)
    assert handled.follow_ups == [assigned(handled.flow_id, login, "General", in_force)]
    stored = await queries.limits(sessions.db, login)
    assert stored is not None
    assert (stored.pool, stored.overrides, stored.limits) == ("General", policy.overrides, in_force)
    assert stored.in_force
    assert stored.changed_at == at  # the event's time, not the clock


async def test_user_without_policy_gets_no_limits_but_is_known(sessions: ServiceUnderTest) -> None:
    login = new_login()
    handled = await sessions.handle(created(login))

    assert handled.follow_ups == []
    stored = await queries.limits(sessions.db, login)
    assert stored is not None
    assert (stored.status, stored.pool, stored.limits, stored.in_force) == ("created", None, None, False)


async def test_second_user_created_fails_its_step_and_keeps_the_first_policy(sessions: ServiceUnderTest) -> None:
    login = new_login()
    at = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)
    await sessions.handle(Outgoing(created(login, SessionPolicy(pool="General")), time=at))
    handled = await sessions.handle(created(login, SessionPolicy(pool="Default")))

    [failed] = handled.follow_ups
    assert isinstance(failed, StepFailed)
    assert (failed.flow_id, failed.service, failed.step) == (handled.flow_id, "sessions", "sessions.limits")
    assert f"login {login} already exists (created)" in failed.reason
    assert not await sessions.dead_lettered(handled.flow_id)
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.pool, stored.limits) == ("General", GENERAL)
    assert stored.changed_at == at and stored.in_force


async def test_update_of_a_login_never_created_waits_for_its_create(sessions: ServiceUnderTest) -> None:
    login = new_login()
    handled = await sessions.handle(UserUpdated(login_id=login, session_policy=SessionPolicy(pool="General")))

    assert handled.follow_ups == []
    assert not await sessions.dead_lettered(handled.flow_id)  # see test_pending_prerequisites.py
    assert await sessions.db.fetchval("select 1 from xbus_pending where event_id = $1", handled.flow_id)
    assert await queries.limits(sessions.db, login) is None

    await sessions.handle(created(login))  # the update is applied right after its creation
    assert not await sessions.db.fetchval("select 1 from xbus_pending where event_id = $1", handled.flow_id)
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.status, stored.pool, stored.limits) == ("created", "General", GENERAL)


async def test_a_login_disabled_before_its_creation_is_not_created_until_it_is(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(UserDisabled(login_id=login, reason="on leave"))
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.status, stored.disabled) == ("not_created", True)

    handled = await sessions.handle(created(login, SessionPolicy(pool="General")))
    assert handled.follow_ups == []  # created disabled: the limits come into force when it is enabled
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.status, stored.limits, stored.disabled) == ("created", GENERAL, True)


async def test_deleted_login_is_kept_marked_deleted_and_an_update_is_dead_lettered(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(created(login, SessionPolicy(pool="General")))
    at = dt.datetime(2025, 3, 2, 10, 0, tzinfo=dt.UTC)
    deleted = await sessions.handle(Outgoing(UserDeleted(login_id=login, reason="left the firm"), time=at))
    assert deleted.follow_ups == []
    stored = await queries.limits(sessions.db, login)
    assert stored is not None
    assert (stored.status, stored.pool, stored.overrides, stored.limits) == ("deleted", None, SessionLimits(), None)
    assert stored.changed_at == at and not stored.in_force

    updated = await sessions.handle(UserUpdated(login_id=login, session_policy=SessionPolicy(pool="Default")))
    assert updated.follow_ups == []
    assert await sessions.dead_lettered(updated.flow_id)
    reason = await sessions.db.fetchval(
        "select error_message from xbus_dead_letters where event_id = $1", updated.flow_id
    )
    assert f"login {login} is deleted" in reason and "xbus dlq discard sessions" in reason
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.status, stored.pool, stored.limits) == ("deleted", None, None)


async def test_deleting_a_login_never_created_changes_nothing(sessions: ServiceUnderTest) -> None:
    login = new_login()
    handled = await sessions.handle(UserDeleted(login_id=login))

    assert handled.follow_ups == []
    assert await queries.limits(sessions.db, login) is None


async def test_a_login_naming_a_pool_not_defined_yet_waits_and_gets_its_limits_when_it_is(
    sessions: ServiceUnderTest,
) -> None:
    login, pool = new_login(), new_pool()
    handled = await sessions.handle(created(login, SessionPolicy(pool=pool, overrides=SessionLimits(max_sessions=2))))

    assert handled.follow_ups == []
    assert not await sessions.dead_lettered(handled.flow_id)
    reason = await sessions.db.fetchval("select reason from xbus_pending where event_id = $1", handled.flow_id)
    assert f"session pool {pool!r} is not defined (known pools: Default, General" in reason
    assert await queries.limits(sessions.db, login) is None

    settings = Limits(3, 6, 9, resource_scoped=False)
    pooled = await sessions.handle(defined(pool, settings))  # the waiting creation is applied right after it
    assert pooled.follow_ups == []
    assert not await sessions.db.fetchval("select 1 from xbus_pending where event_id = $1", handled.flow_id)
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.pool, stored.limits) == (pool, Limits(2, 6, 9, resource_scoped=False))
    [follow_up] = await sessions.db.fetch("select value from xbus_outbox where key = $1", login.encode())
    in_force = Limits(2, 6, 9, resource_scoped=False)
    assert SessionLimitsAssigned.model_validate_json(follow_up["value"]) == assigned(
        handled.flow_id, login, pool, in_force
    )  # step sessions.limits of the creation's flow


async def test_disable_ends_sessions_even_without_limits(sessions: ServiceUnderTest) -> None:
    login = new_login()
    handled = await sessions.handle(UserDisabled(login_id=login, reason="left the firm"))

    assert handled.follow_ups == [SessionsEnded(flow_id=handled.flow_id, login_id=login, reason="left the firm")]


async def test_disable_ends_limits_and_enable_restores_them(sessions: ServiceUnderTest) -> None:
    login = new_login()
    policy = SessionPolicy(pool="Default", overrides=SessionLimits(grace_period_seconds=0))
    await sessions.handle(created(login, policy))

    disabled = await sessions.handle(UserDisabled(login_id=login, reason="audit"))
    assert disabled.follow_ups == [SessionsEnded(flow_id=disabled.flow_id, login_id=login, reason="audit")]
    ended = await queries.limits(sessions.db, login)
    assert ended is not None and ended.disabled and not ended.in_force
    assert (ended.pool, ended.ended_reason) == ("Default", "audit")  # the policy is kept

    enabled = await sessions.handle(UserEnabled(login_id=login))
    assert enabled.follow_ups == [assigned(enabled.flow_id, login, "Default", Limits(None, None, 0, False))]
    restored = await queries.limits(sessions.db, login)
    assert restored is not None and restored.in_force and restored.sessions_ended_at is None


async def test_enable_without_policy_reports_nothing(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(created(login), UserDisabled(login_id=login, reason="audit"))

    assert (await sessions.handle(UserEnabled(login_id=login))).follow_ups == []


async def test_new_policy_reassigns_the_limits(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(created(login))

    updated = await sessions.handle(UserUpdated(login_id=login, session_policy=SessionPolicy(pool="Default")))
    assert updated.follow_ups == [assigned(updated.flow_id, login, "Default", DEFAULT)]
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and stored.limits == DEFAULT and stored.in_force  # in force, and no limit


async def test_an_update_to_a_pool_not_defined_keeps_the_limits_in_force_while_it_waits(
    sessions: ServiceUnderTest,
) -> None:
    login = new_login()
    await sessions.handle(created(login, SessionPolicy(pool="General")))

    updated = await sessions.handle(UserUpdated(login_id=login, session_policy=SessionPolicy(pool=new_pool())))
    assert updated.follow_ups == []
    assert await sessions.db.fetchval("select 1 from xbus_pending where event_id = $1", updated.flow_id)
    stored = await queries.limits(sessions.db, login)
    assert stored is not None and (stored.pool, stored.limits) == ("General", GENERAL)


async def test_policy_given_while_disabled_comes_into_force_on_enable(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(created(login), UserDisabled(login_id=login, reason="audit"))

    updated = await sessions.handle(UserUpdated(login_id=login, session_policy=SessionPolicy(pool="General")))
    assert updated.follow_ups == []
    enabled = await sessions.handle(UserEnabled(login_id=login))
    assert enabled.follow_ups == [assigned(enabled.flow_id, login, "General", GENERAL)]


async def test_a_pool_change_reaches_the_logins_in_it_and_says_so_for_those_in_force(
    sessions: ServiceUnderTest,
) -> None:
    """sessions-init.ps1's ``Pool Set`` of a pool that exists gives it new settings; each login in it
    has them with its own overrides."""
    pool, plain, overridden, disabled, elsewhere = new_pool(), new_login(), new_login(), new_login(), new_login()
    await sessions.handle(defined(pool, Limits(3, 6, 9, resource_scoped=False)))
    await sessions.handle(
        created(plain, SessionPolicy(pool=pool)),
        created(overridden, SessionPolicy(pool=pool, overrides=SessionLimits(max_connections=2))),
        created(disabled, SessionPolicy(pool=pool)),
        UserDisabled(login_id=disabled, reason="on leave"),
        created(elsewhere, SessionPolicy(pool="General")),
    )

    at = dt.datetime(2025, 4, 1, 8, 0, tzinfo=dt.UTC)
    new = Limits(4, 8, None, resource_scoped=True)
    handled = await sessions.handle(Outgoing(changed(pool, new), time=at))
    assert sorted(handled.follow_ups, key=lambda event: event.aggregate_id) == sorted(
        [limits_changed(plain, pool, new), limits_changed(overridden, pool, Limits(4, 2, None, True))],
        key=lambda event: event.aggregate_id,
    )
    assert await queries.pool(sessions.db, pool) == queries.Pool(pool, new, at)
    for login, limits in [(plain, new), (overridden, Limits(4, 2, None, True)), (disabled, new), (elsewhere, GENERAL)]:
        stored = await queries.limits(sessions.db, login)
        assert stored is not None and stored.limits == limits, login
    enabled = await sessions.handle(UserEnabled(login_id=disabled))
    assert enabled.follow_ups == [assigned(enabled.flow_id, disabled, pool, new)]


async def test_a_platform_pool_is_changed_like_any_other(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(created(login, SessionPolicy(pool="General")))
    wider = Limits(2, 5, 4, resource_scoped=True)
    try:
        handled = await sessions.handle(changed("General", wider))
        assert limits_changed(login, "General", wider) in handled.follow_ups
        stored = await queries.limits(sessions.db, login)
        assert stored is not None and stored.limits == wider
    finally:  # the other tests of the module count on the platform's General
        await sessions.handle(changed("General", GENERAL))
    pool = await queries.pool(sessions.db, "General")
    assert pool is not None and pool.settings == GENERAL


async def test_a_definition_of_a_pool_that_exists_with_other_settings_is_dead_lettered(
    sessions: ServiceUnderTest,
) -> None:
    """Paritech.Sessions.sql, ``sms.PoolCreate``: a name that exists is not created again."""
    handled = await sessions.handle(defined("General", Limits(9, 9, 9, resource_scoped=False)))

    assert handled.follow_ups == []
    assert await sessions.dead_lettered(handled.flow_id)
    reason = await sessions.db.fetchval(
        "select error_message from xbus_dead_letters where event_id = $1", handled.flow_id
    )
    assert "session pool 'General' is defined already" in reason and "SessionPoolChanged" in reason
    pool = await queries.pool(sessions.db, "General")
    assert pool is not None and pool.settings == GENERAL


async def test_a_removed_policy_leaves_the_login_without_limits_and_says_so(sessions: ServiceUnderTest) -> None:
    login = new_login()
    await sessions.handle(created(login, SessionPolicy(pool="General", overrides=SessionLimits(max_sessions=2))))

    at = dt.datetime(2025, 4, 2, 8, 0, tzinfo=dt.UTC)
    removed = await sessions.handle(Outgoing(UserSessionPolicyRemoved(login_id=login), time=at))
    assert removed.follow_ups == [SessionLimitsRemoved(flow_id=removed.flow_id, login_id=login, pool="General")]
    stored = await queries.limits(sessions.db, login)
    assert stored is not None
    assert (stored.status, stored.pool, stored.overrides, stored.limits) == ("created", None, SessionLimits(), None)
    assert stored.changed_at == at and not stored.in_force
    assert (await sessions.handle(UserSessionPolicyRemoved(login_id=login))).follow_ups == []


async def test_the_platforms_pools_outlive_a_rebuild_emptying_the_tables(sessions: ServiceUnderTest) -> None:
    """``xbus rebuild`` truncates every table of the schema (xbus/rebuild/state.py) and reads the
    topics again: the platform's pools, which no event defines, must still be there."""
    await sessions.db.execute("truncate table pools")
    login = new_login()
    handled = await sessions.handle(created(login, SessionPolicy(pool="General")))

    assert handled.follow_ups == [assigned(handled.flow_id, login, "General", GENERAL)]


async def test_the_migration_gives_logins_their_platform_pools_limits(stack: Stack) -> None:
    """Limits assigned before the pools were the platform's (Default 5/20/60 s, General 10/50/120 s,
    invented) become the platform's, with each login's overrides; a login without limits keeps none."""
    schema = f"t{uuid.uuid4().hex[:8]}_sessions_migration"
    migrations = load_migrations(SERVICE.migrations)
    before = [m for m in migrations if m.version < "0003"]
    connection = await asyncpg.connect(stack.endpoints.database_url or "")
    try:
        await migrate(connection, schema, before)
        await connection.execute(f'set search_path to "{schema}"')
        await connection.execute(
            """
            insert into logins (login_id, pool, override_max_sessions, max_sessions, max_connections,
                                grace_period_seconds, changed_at)
            values ('general', 'General', 3, 3, 50, 120, now()),
                   ('default', 'Default', null, 5, 20, 60, now()),
                   ('refused', 'Gold', null, null, null, null, now()),
                   ('none', null, null, null, null, null, now())
            """
        )
        assert await migrate(connection, schema, migrations) == [m.version for m in migrations if m not in before]
        for login, pool, limits in [
            ("general", "General", Limits(3, 5, 4, resource_scoped=True)),
            ("default", "Default", DEFAULT),
            ("refused", "Gold", None),
            ("none", None, None),
        ]:
            stored = await queries.limits(connection, login)
            assert stored is not None and (stored.pool, stored.limits) == (pool, limits), login
    finally:
        await connection.execute(f'drop schema if exists "{schema}" cascade')
        await connection.close()
