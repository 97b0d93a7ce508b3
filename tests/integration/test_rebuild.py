"""`xbus rebuild`: a service's state rebuilt from its topics, in place or as a shadow beside the
running service, compared, and swapped in.

Each test has topics, schemas and groups of its own, fed with a few hundred events of a dozen
logins (tests/support/logins_service.py), and a "live" run of the service that applied them all
and published their follow-ups before the rebuild starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import asyncpg
import pytest
from aiokafka import TopicPartition

from consumers.runtime import Service, UnitOfWork
from consumers.runtime.checksum import state_checksum
from infrastructure.endpoints import load_catalogue
from infrastructure.groups import committed_offsets, describe_group, list_groups, partitions_of_topics
from infrastructure.kafka_clients import admin_client, plain_consumer
from infrastructure.offsets import log_end_offsets
from infrastructure.settings import Settings, load_settings
from producers import Published, open_publisher
from schemas import Event
from schemas.users import UserCreated, UserDisabled, UserUpdated
from tests.conftest import Stack, XbusCli
from tests.support.all_services import eventually
from tests.support.logins_service import LOGINS, user_created
from tests.support.service_under_test import ServiceUnderTest, module_settings
from xbus.rebuild.run import RebuildRefused, rebuild, rebuild_shadow, shadow_settings, swap_shadow

pytestmark = pytest.mark.integration

LOGIN_COUNT = 12
UPDATES_PER_LOGIN = 25
#: Every third login ends disabled.
DISABLED = [f"login-{n}" for n in range(0, LOGIN_COUNT, 3)]
EVENT_COUNT = LOGIN_COUNT * (1 + UPDATES_PER_LOGIN) + len(DISABLED)
#: Short group sessions: a member that dies holds its partitions this long.
FAST_GROUPS = {"consumer_session_timeout_ms": 3_000, "consumer_heartbeat_interval_ms": 1_000}


async def suspend(event: UserDisabled, unit: UnitOfWork) -> None:
    """A changed behaviour: a disabled login is now 'suspended'."""
    await unit.execute(
        "update logins set status = 'suspended', changes = changes + 1 where login_id = $1", event.login_id
    )


CHANGED = dataclasses.replace(LOGINS, handlers={**LOGINS.handlers, UserDisabled: suspend})


def _events() -> list[Event]:
    logins = [f"login-{n}" for n in range(LOGIN_COUNT)]
    events: list[Event] = [
        UserCreated(login_id=login, username=login, email=f"{login}@example.com", display_name=login)
        for login in logins
    ]
    events += [
        UserUpdated(login_id=login, display_name=f"{login} v{version}")
        for version in range(UPDATES_PER_LOGIN)
        for login in logins
    ]
    return events + [UserDisabled(login_id=login, reason="left") for login in DISABLED]


async def _publish(settings: Settings, events: list[Event]) -> None:
    async with open_publisher(settings) as publisher:
        results = await publisher.publish_many(events)
    assert all(isinstance(result, Published) for result in results), results[:3]


async def _fed(stack: Stack) -> Settings:
    """Topics, schemas and groups of the test's own, with the events on the topics."""
    settings = (await module_settings(stack)).model_copy(update=FAST_GROUPS)
    await _publish(settings, _events())
    return settings


async def _applied(service: ServiceUnderTest, count: int) -> None:
    async def done() -> bool:
        inbox = await service.db.fetchval("select count(*) from xbus_inbox")
        unsent = await service.db.fetchval("select count(*) from xbus_outbox where sent_at is null")
        return bool(inbox == count and unsent == 0)

    await eventually(done, 30, f"{service.service.name} applied {count} events and published their follow-ups")


async def _run_live(settings: Settings, service: Service = LOGINS, count: int = EVENT_COUNT) -> None:
    """The service applies everything on its topics, publishes its follow-ups and stops."""
    async with ServiceUnderTest(service, settings) as live:
        await _applied(live, count)
    async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
        assert not (await describe_group(admin, settings.group(service.group_id))).active  # it left on stop


async def _checksum(settings: Settings, schema: str) -> str:
    connection = await asyncpg.connect(settings.database_url or "")
    try:
        return await state_checksum(connection, schema)
    finally:
        await connection.close()


async def _fetch(settings: Settings, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(settings.database_url or "")
    try:
        return await connection.fetch(query)
    finally:
        await connection.close()


async def _follow_up_ends(settings: Settings) -> dict[TopicPartition, int]:
    topic = settings.topic(LOGINS.follow_up_topic(load_catalogue(settings)))
    async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
        partitions = await partitions_of_topics(admin, [topic])
    async with plain_consumer(settings, settings.kafka_bootstrap or "") as consumer:
        return await log_end_offsets(consumer, partitions)


async def _committed(settings: Settings, group: str) -> dict[TopicPartition, int | None]:
    async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
        partitions = await partitions_of_topics(
            admin, [settings.topic(t) for t in LOGINS.topics(load_catalogue(settings))]
        )
        return await committed_offsets(admin, group, partitions)


async def test_rebuild_reproduces_the_same_checksum_and_publishes_nothing(stack: Stack) -> None:
    settings = await _fed(stack)
    await _run_live(settings)
    schema = settings.db_schema(LOGINS.name)
    before = await _checksum(settings, schema)
    follow_ups = await _follow_up_ends(settings)
    replayed: list[bool] = []

    async def watching_created(event: Event, unit: UnitOfWork) -> None:
        replayed.append(unit.replayed)
        await user_created(event, unit)

    watched = dataclasses.replace(LOGINS, handlers={**LOGINS.handlers, UserCreated: watching_created})

    report = await rebuild(watched, settings, stack.endpoints)

    assert report.checksum == before
    assert (report.events, report.applied, report.dead_lettered) == (EVENT_COUNT, EVENT_COUNT, 0)
    assert [(t.table, t.rows) for t in report.tables] == [("logins", LOGIN_COUNT)]
    assert replayed == [True] * LOGIN_COUNT, "events read before the reset reach handlers as replayed"
    assert (report.marked_sent, report.to_publish) == (LOGIN_COUNT, 0)
    assert await _follow_up_ends(settings) == follow_ups, "a rebuild publishes nothing"
    assert await _committed(settings, report.group) == report.target
    [counts] = await _fetch(
        settings,
        f"select (select count(*) from {schema}.xbus_inbox) as inbox,"
        f" (select count(*) from {schema}.xbus_outbox where sent_at is null) as unsent,"
        f" (select count(*) from {schema}.xbus_replay_marks) as marks,"
        f" to_regclass('{schema}.xbus_rebuild_published') as kept",
    )
    assert dict(counts) == {"inbox": EVENT_COUNT, "unsent": 0, "marks": 0, "kept": None}


async def test_rebuild_refuses_while_the_service_runs_and_names_its_member(stack: Stack) -> None:
    settings = await _fed(stack)
    async with ServiceUnderTest(LOGINS, settings) as live:
        await _applied(live, EVENT_COUNT)
        schema = settings.db_schema(LOGINS.name)
        before = await _checksum(settings, schema)
        async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
            [member] = (await describe_group(admin, settings.group(LOGINS.group_id))).members
        with pytest.raises(RebuildRefused, match="must be stopped") as refused:
            await rebuild(LOGINS, settings, stack.endpoints)
        assert member.member_id in str(refused.value)
        assert await _checksum(settings, schema) == before
        assert await live.db.fetchval("select count(*) from xbus_inbox") == EVENT_COUNT


async def test_shadow_rebuild_beside_the_running_service_reports_no_difference(stack: Stack) -> None:
    settings = await _fed(stack)
    async with ServiceUnderTest(LOGINS, settings) as live:
        await _applied(live, EVENT_COUNT)
        follow_ups = await _follow_up_ends(settings)

        report = await rebuild_shadow(LOGINS, settings, stack.endpoints)

        assert report.identical and all(table.identical for table in report.diff), report.diff
        assert [(t.table, t.live_rows, t.shadow_rows) for t in report.diff] == [("logins", LOGIN_COUNT, LOGIN_COUNT)]
        assert report.shadow.checksum == await _checksum(settings, settings.db_schema(LOGINS.name))
        assert await _follow_up_ends(settings) == follow_ups, "a shadow publishes nothing"
        shadow_schema = shadow_settings(settings).db_schema(LOGINS.name)
        [unsent] = await _fetch(settings, f"select count(*) from {shadow_schema}.xbus_outbox where sent_at is null")
        assert unsent[0] == LOGIN_COUNT
        await live.handle(UserCreated(login_id="late", username="late", email="late@example.com", display_name="L"))

        with pytest.raises(RebuildRefused, match="exists already"):
            await rebuild_shadow(LOGINS, settings, stack.endpoints)


async def test_shadow_of_a_changed_handler_shows_the_rows_that_differ(stack: Stack) -> None:
    settings = await _fed(stack)
    await _run_live(settings)

    report = await rebuild_shadow(CHANGED, settings, stack.endpoints)

    assert not report.identical
    [logins] = report.diff
    assert (logins.table, logins.identical) == ("logins", False)
    assert (logins.live_rows, logins.shadow_rows) == (LOGIN_COUNT, LOGIN_COUNT)
    assert (logins.only_live, logins.only_shadow) == (len(DISABLED), len(DISABLED))
    assert logins.live_examples and all("disabled" in row for row in logins.live_examples)
    assert logins.shadow_examples and all("suspended" in row for row in logins.shadow_examples)


async def test_swap_puts_the_shadow_and_its_offsets_in_place(stack: Stack) -> None:
    settings = await _fed(stack)
    await _run_live(settings)
    schema, group = settings.db_schema(LOGINS.name), settings.group(LOGINS.group_id)
    live_checksum = await _checksum(settings, schema)
    shadow = await rebuild_shadow(CHANGED, settings, stack.endpoints)
    # Two more logins while the service is stopped: the swap reads them into the shadow first.
    await _publish(
        settings,
        [UserCreated(login_id=f"new-{n}", username=f"n{n}", email=f"n{n}@example.com", display_name="N") for n in "ab"],
    )
    follow_ups = await _follow_up_ends(settings)

    swapped = await swap_shadow(CHANGED, settings, stack.endpoints)

    assert swapped.caught_up == 2
    assert await _checksum(settings, swapped.backup_schema) == live_checksum
    assert await _checksum(settings, schema) == swapped.checksum != shadow.shadow.checksum
    statuses = await _fetch(settings, f"select status, count(*) from {schema}.logins group by status order by 1")
    assert [tuple(row) for row in statuses] == [
        ("active", LOGIN_COUNT - len(DISABLED) + 2),
        ("suspended", len(DISABLED)),
    ]
    offsets = await _committed(settings, group)
    assert offsets == swapped.offsets_after
    shadow_group = shadow_settings(settings).group(LOGINS.group_id)
    assert set((await _committed(settings, shadow_group)).values()) == {None}  # deleted: no lag report shows it
    async with admin_client(settings, settings.kafka_bootstrap or "") as admin:
        assert shadow_group not in await list_groups(admin)
    assert sum(offset or 0 for offset in offsets.values()) == EVENT_COUNT + 2
    assert (swapped.marked_sent, swapped.to_publish) == (LOGIN_COUNT, 2)
    with pytest.raises(RebuildRefused, match="no shadow"):
        await swap_shadow(CHANGED, settings, stack.endpoints)

    async with ServiceUnderTest(CHANGED, settings) as restarted:  # publishes the two follow-ups never published
        await _applied(restarted, EVENT_COUNT + 2)
    after = await _follow_up_ends(settings)
    assert sum(after.values()) - sum(follow_ups.values()) == 2
    assert restarted.runner.stats.applied == restarted.runner.stats.duplicates == 0


async def test_cli_rebuilds_a_stopped_service_and_compares_a_shadow(stack: Stack, xbus: XbusCli) -> None:
    settings = await _fed(stack)
    await _run_live(settings)
    before = await _checksum(settings, settings.db_schema(LOGINS.name))
    env = {
        "XBUS_TOPIC_PREFIX": settings.topic_prefix,
        "XBUS_DB_SCHEMA_PREFIX": settings.db_schema_prefix,
        "XBUS_CONSUMER_SESSION_TIMEOUT_MS": "3000",
        "XBUS_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
    }
    service = "tests.support.logins_service:LOGINS"

    rebuilt = await asyncio.to_thread(xbus, "rebuild", service, env=env)
    shadow = await asyncio.to_thread(xbus, "rebuild", service, "--shadow", "--json", env=env)

    assert rebuilt.code == 0, rebuilt.stderr
    assert f"state checksum {before}" in rebuilt.stdout
    assert f"{EVENT_COUNT} events read, {EVENT_COUNT} applied" in rebuilt.stdout
    assert shadow.code == 0, shadow.stderr
    report = json.loads(shadow.stdout)
    assert (report["identical"], report["shadow"]["checksum"]) == (True, before)
    refused = await asyncio.to_thread(xbus, "rebuild", "market_data", env=env)
    assert refused.code == 1 and "projection(s) instruments" in refused.stderr, refused.stderr
    unknown = await asyncio.to_thread(xbus, "rebuild", "nosuch", env=env)
    assert unknown.code == 1 and "unknown service 'nosuch'" in unknown.stderr, unknown.stderr


def test_shadow_lives_beside_the_live_schema_and_group() -> None:
    settings = load_settings(topic_prefix="p.", db_schema_prefix="s_")
    shadow = shadow_settings(settings)
    assert (shadow.db_schema("oms"), shadow.group("xbus.oms")) == ("s_shadow_oms", "p.shadow.xbus.oms")
    assert shadow.topic("xosp.users") == settings.topic("xosp.users")
