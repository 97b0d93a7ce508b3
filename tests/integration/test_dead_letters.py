"""Dead letters end to end: a service running in-process on the real broker and PostgreSQL, and the
real `xbus dlq list | redrive | discard | purge` command in a subprocess.

The cause of each failure is a row in the service's ``refused_logins`` table (see
tests/support/refusing_service.py); deleting it is "fixing the cause" while the service runs.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from consumers.runtime.runner import ServiceRunner
from infrastructure.endpoints import load_catalogue
from infrastructure.kafka_clients import client_options
from infrastructure.settings import Settings
from producers import open_publisher
from producers.partitioning import partition_for
from schemas import Envelope, Event
from schemas.users import UserCreated, UserUpdated
from tests.conftest import CliResult, XbusCli
from tests.integration.test_publisher import read_all
from tests.support.refusing_service import REFUSING

pytestmark = pytest.mark.integration

SPEC = "tests.support.refusing_service:REFUSING"


class Dlq:
    """`xbus dlq ...` against this test's topics and schema, run off the event loop so the
    in-process service keeps consuming and heartbeating meanwhile."""

    def __init__(self, xbus: XbusCli, settings: Settings) -> None:
        self._xbus = xbus
        self._env = {
            "XBUS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
            "XBUS_DATABASE_URL": settings.database_url or "",
            "XBUS_DB_SCHEMA_PREFIX": settings.db_schema_prefix,
        }

    async def __call__(self, *args: str) -> CliResult:
        return await asyncio.to_thread(self._xbus, "dlq", *args, env=self._env)

    async def entries(self) -> list[dict[str, Any]]:
        result = await self("list", SPEC, "--json")
        assert result.code == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture
def dlq(xbus: XbusCli, service_settings: Settings) -> Dlq:
    return Dlq(xbus, service_settings)


class Schema:
    """Queries on the service's schema."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.db_schema(REFUSING.name)

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.settings.database_url or "", server_settings={"search_path": self.name})
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    async def value(self, query: str, *args: object) -> Any:
        rows = await self.fetch(query, *args)
        return rows[0][0]

    async def changes(self, login: str) -> list[str]:
        rows = await self.fetch("select display_name from login_changes where login_id = $1 order by seq", login)
        return [row["display_name"] for row in rows]

    async def refuse(self, *logins: str) -> None:
        await self.fetch("insert into refused_logins select unnest($1::text[])", list(logins))

    async def fix(self) -> None:
        await self.fetch("delete from refused_logins")

    async def settled(self) -> bool:
        """Everything the service wrote, dead letters included, is on Kafka."""
        return await self.value("select count(*) from xbus_outbox where sent_at is null") == 0


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[ServiceRunner]:
    runner = ServiceRunner(
        REFUSING, settings, load_catalogue(settings), settings.kafka_bootstrap or "", settings.database_url or ""
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield runner
    finally:
        stop.set()
        await task


async def migrated(settings: Settings) -> Schema:
    """The service's schema, migrated, so that a test can set up refusals before it consumes."""
    await ServiceRunner(
        REFUSING, settings, load_catalogue(settings), settings.kafka_bootstrap or "", settings.database_url or ""
    ).migrate()
    return Schema(settings)


def logins_on_one_partition(settings: Settings, count: int) -> list[str]:
    """Login ids whose events all land on one partition of xosp.users (murmur2 of the key)."""
    partitions = load_catalogue(settings).topic_for_type(UserCreated.event_type).partitions
    stem = uuid.uuid4().hex[:6]
    target = partition_for(f"{stem}-0".encode(), partitions)
    candidates = (f"{stem}-{i}" for i in range(10_000))
    chosen = [login for login in candidates if partition_for(login.encode(), partitions) == target]
    return chosen[:count]


def created(login: str) -> UserCreated:
    return UserCreated(login_id=login, username=login, email=f"{login}@example.com", display_name=login)


def updated(login: str, name: str) -> UserUpdated:
    return UserUpdated(login_id=login, display_name=name)


async def publish(settings: Settings, events: list[Event]) -> list[Any]:
    async with open_publisher(settings) as publisher:
        results = await publisher.publish_many(events)
    assert all(hasattr(r, "offset") for r in results), results
    return results


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {what}"
        await asyncio.sleep(0.2)


async def test_poison_event_is_dead_lettered_with_its_reason_and_redrive_applies_it_once(
    service_settings: Settings, dlq: Dlq
) -> None:
    settings = service_settings
    poisoned, other, later = logins_on_one_partition(settings, 3)
    schema = await migrated(settings)
    await schema.refuse(poisoned)
    results = await publish(
        settings,
        [created(poisoned), created(other), updated(poisoned, "fixed"), created(later), updated(other, "o2")],
    )
    poison = results[2]
    async with running(settings):
        await eventually(lambda: _count(schema, "xbus_inbox", 4), "the events after the poison one applied")
        await eventually(lambda: _count(schema, "xbus_dead_letters", 1), "the poison event dead-lettered")
        await eventually(schema.settled, "the dead letter published")
        assert await schema.changes(other) == ["o2"]
        assert await schema.value("select count(*) from logins where login_id = $1", later) == 1

        [dead] = await read_all(settings, "xosp.authentication.dlq")
        assert dead.key == poisoned
        assert dead.headers["ce_id"] == poison.event_id
        assert dead.headers["xbus_dlq_error_type"] == "RuntimeError"
        assert "refused by the test" in dead.headers["xbus_dlq_error_message"]
        assert dead.headers["xbus_dlq_topic"] == settings.topic("xosp.users")
        assert (dead.headers["xbus_dlq_partition"], dead.headers["xbus_dlq_offset"]) == (
            str(poison.partition),
            str(poison.offset),
        )
        assert dead.headers["xbus_dlq_attempts"] == str(REFUSING.max_attempts)
        assert dead.headers["xbus_dlq_service"] == "authentication"

        [entry] = await dlq.entries()
        assert (entry["event_id"], entry["key"], entry["status"]) == (poison.event_id, poisoned, "failed")
        assert (entry["error_type"], entry["attempts"], entry["redriven_at"]) == ("RuntimeError", 3, None)
        assert (entry["topic"], entry["partition"], entry["offset"]) == (poison.topic, poison.partition, poison.offset)
        assert entry["event_type"] == "xosp.user.updated.v1"
        table = await dlq("list", SPEC)
        assert table.code == 0, table.stderr
        assert poison.event_id in table.stdout and "1 waiting for a redrive" in table.stdout

        await schema.fix()
        first = await dlq("redrive", SPEC, "--id", poison.event_id)
        assert first.code == 0, first.stderr
        assert f"applied {poison.event_id}" in first.stdout and "1 applied, 0 failed again" in first.stdout
        assert await _applied(schema, poison.event_id)  # the command waited for the service to apply it

        second = await dlq("redrive", SPEC, "--id", poison.event_id)
        assert second.code == 0, second.stderr
        assert "already applied" in second.stdout and "1 skipped" in second.stdout
        [entry] = await dlq.entries()
        assert entry["status"] == "applied" and entry["redriven_at"] is not None

    assert await schema.changes(poisoned) == ["fixed"]
    assert await schema.value("select display_name from logins where login_id = $1", poisoned) == "fixed"
    assert await schema.value("select count(*) from xbus_inbox") == 5
    copies = [e for e in await read_all(settings, "xosp.users") if e.headers["ce_id"] == poison.event_id]
    assert len(copies) == 1  # the original only: a redrive re-publishes nothing on a topic others read


async def test_failing_event_of_a_key_parks_that_keys_later_events_and_redrive_applies_them_in_order(
    service_settings: Settings, dlq: Dlq
) -> None:
    settings = service_settings
    key, other, third = logins_on_one_partition(settings, 3)
    schema = await migrated(settings)
    await schema.refuse(key)
    await publish(settings, [created(key), created(other), created(third)])
    results = await publish(
        settings,
        [
            updated(key, "k1"),
            updated(key, "k2"),
            updated(other, "o1"),
            updated(key, "k3"),
            updated(third, "t1"),
            updated(key, "k4"),
            updated(other, "o2"),
        ],
    )
    failing = results[0].event_id
    async with running(settings):
        await eventually(lambda: _count(schema, "xbus_parked", 3), "k2, k3, k4 parked")
        await eventually(lambda: _count(schema, "xbus_inbox", 6), "the other logins' updates applied")
        assert await schema.changes(other) == ["o1", "o2"] and await schema.changes(third) == ["t1"]
        assert await schema.changes(key) == []
        [entry] = await dlq.entries()
        assert (entry["event_id"], entry["blocking"], entry["parked"]) == (failing, True, 3)

        # redriven before the cause is fixed: it fails again and its successors stay parked
        too_soon = await dlq("redrive", SPEC, "--id", failing)
        assert too_soon.code == 1 and "failed again" in too_soon.stdout and "refused by the test" in too_soon.stdout
        assert await _attempts(schema, failing, 2 * REFUSING.max_attempts)
        [entry] = await dlq.entries()
        assert (entry["status"], entry["blocking"], entry["parked"]) == ("failed", True, 3)
        assert await schema.changes(key) == []

        await schema.fix()
        redriven = await dlq("redrive", SPEC, "--id", failing)
        assert redriven.code == 0, redriven.stderr
        assert await schema.changes(key) == ["k1", "k2", "k3", "k4"]
        assert await schema.value("select count(*) from xbus_parked") == 0
        assert await schema.value("select count(*) from xbus_blocked_keys") == 0
        [entry] = await dlq.entries()
        assert (entry["status"], entry["blocking"], entry["parked"]) == ("applied", False, 0)

        await publish(settings, [updated(key, "k5")])  # the key is free: a new event applies at once
        await eventually(lambda: _changes(schema, key, 5), "a later update of the key applied")
    assert await schema.changes(key) == ["k1", "k2", "k3", "k4", "k5"]
    assert await schema.value("select count(*) from xbus_parked") == 0


async def test_malformed_record_of_a_blocked_key_does_not_take_the_block_from_the_first_failure(
    service_settings: Settings, dlq: Dlq
) -> None:
    settings = service_settings
    [key] = logins_on_one_partition(settings, 1)
    schema = await migrated(settings)
    await schema.refuse(key)
    [_, failing, *_] = await publish(settings, [created(key), updated(key, "k1"), updated(key, "k2")])
    await _publish_raw(settings, key.encode(), b"{}", [("ce_type", b"xosp.user.updated.v1")], failing.partition)
    await publish(settings, [updated(key, "k3")])
    async with running(settings):
        await eventually(lambda: _count(schema, "xbus_dead_letters", 2), "the failure and the malformed record")
        await eventually(lambda: _count(schema, "xbus_parked", 2), "k2 and k3 parked")
        await schema.fix()
        assert (await dlq("redrive", SPEC, "--id", failing.event_id)).code == 0
        await eventually(lambda: _changes(schema, key, 3), "the key's updates applied")
        entries = {entry["event_id"]: entry for entry in await dlq.entries()}
    assert await schema.changes(key) == ["k1", "k2", "k3"]
    assert entries.pop(failing.event_id)["status"] == "applied"
    [malformed] = entries.values()
    assert (malformed["error_type"], malformed["status"], malformed["blocking"]) == ("EnvelopeError", "failed", False)


async def test_redrive_all_applies_every_waiting_dead_letter_keyless_ones_too(
    service_settings: Settings, dlq: Dlq
) -> None:
    settings = service_settings
    first, second, keyless = logins_on_one_partition(settings, 3)
    schema = await migrated(settings)
    await schema.refuse(first, second, keyless)
    await publish(settings, [created(first), created(second), created(keyless)])
    await publish(settings, [updated(first, "f1"), updated(second, "s1")])
    await _publish_without_key(settings, updated(keyless, "n1"))
    async with running(settings):
        await eventually(lambda: _count(schema, "xbus_dead_letters", 3), "three dead letters")
        entries = {entry["key"]: entry for entry in await dlq.entries()}
        assert set(entries) == {first, second, None}
        assert (entries[None]["blocking"], entries[first]["blocking"]) == (False, True)

        await schema.fix()
        result = await dlq("redrive", SPEC, "--all")
        assert result.code == 0, result.stderr
        assert "3 applied, 0 failed again, 0 waiting, 0 skipped" in result.stdout
        assert await _count(schema, "xbus_inbox", 6)
        assert [await schema.changes(login) for login in (first, second, keyless)] == [["f1"], ["s1"], ["n1"]]
        assert {entry["status"] for entry in await dlq.entries()} == {"applied"}

        again = await dlq("redrive", SPEC, "--all")
        assert again.code == 0, again.stderr
        assert "no dead letters waiting for a redrive or discard" in again.stdout


async def test_redrive_of_an_unknown_id_fails_and_redrives_nothing(service_settings: Settings, dlq: Dlq) -> None:
    settings = service_settings
    [login] = logins_on_one_partition(settings, 1)
    schema = await migrated(settings)
    await schema.refuse(login)
    [_, failing] = await publish(settings, [created(login), updated(login, "x")])
    async with running(settings):
        await eventually(lambda: _count(schema, "xbus_dead_letters", 1), "the update dead-lettered")
    await schema.fix()

    unknown = await dlq("redrive", SPEC, "--id", failing.event_id, "--id", "no-such-event")
    assert unknown.code == 1
    assert "no dead letter with id no-such-event" in unknown.stderr and "Traceback" not in unknown.stderr
    [entry] = await dlq.entries()
    assert (entry["status"], entry["redriven_at"]) == ("failed", None)

    neither = await dlq("redrive", SPEC)
    assert neither.code == 1 and "--id ID (repeatable) or --all" in neither.stderr
    both = await dlq("redrive", SPEC, "--all", "--id", failing.event_id)
    assert both.code == 1 and "not both" in both.stderr


async def test_a_redrive_asked_while_the_service_is_down_is_carried_out_when_it_runs(
    service_settings: Settings, dlq: Dlq
) -> None:
    settings = service_settings
    [login] = logins_on_one_partition(settings, 1)
    schema = await migrated(settings)
    await schema.refuse(login)
    [_, failing] = await publish(settings, [created(login), updated(login, "x")])
    async with running(settings):
        await eventually(lambda: _count(schema, "xbus_dead_letters", 1), "the update dead-lettered")
    await schema.fix()

    asked = await dlq("redrive", SPEC, "--all", "--wait", "1")  # the service is stopped
    assert asked.code == 0, asked.stderr
    assert "no member of authentication has carried out the redrive yet" in asked.stdout
    assert "0 applied, 0 failed again, 1 waiting" in asked.stdout
    [entry] = await dlq.entries()
    assert entry["status"] == "redriven"
    again = await dlq("redrive", SPEC, "--id", failing.event_id, "--wait", "0")  # asking twice is harmless
    assert again.code == 0 and "1 waiting" in again.stdout

    async with running(settings):
        await eventually(lambda: _applied(schema, failing.event_id), "the redriven event applied")
    assert await schema.changes(login) == ["x"]
    [entry] = await dlq.entries()
    assert entry["status"] == "applied"


async def test_a_redrive_reaches_the_failing_service_only(service_settings: Settings, dlq: Dlq) -> None:
    """It once re-published a garbage record on the shared topic, where every other service
    reading it dead-lettered it again."""
    settings = service_settings
    [login] = logins_on_one_partition(settings, 1)
    schema = await migrated(settings)
    await _publish_raw(settings, login.encode(), b"{not json", _headers_with({}), 0)
    async with running(settings):
        await eventually(lambda: _count(schema, "xbus_dead_letters", 1), "the garbage dead-lettered")
        ends = await _topic_ends(settings)
        result = await dlq("redrive", SPEC, "--all")
        assert result.code == 1 and "failed again" in result.stdout and "ValidationError" in result.stdout
        assert await _topic_ends(settings) == ends
    [entry] = await dlq.entries()
    assert (entry["status"], entry["attempts"]) == ("failed", 2)


async def test_discard_throws_an_event_away_with_who_and_why_and_releases_its_key_in_order(
    service_settings: Settings, dlq: Dlq
) -> None:
    settings = service_settings
    key, other = logins_on_one_partition(settings, 2)
    schema = await migrated(settings)
    await schema.refuse(key)
    await publish(settings, [created(key), created(other)])
    [failing, *_] = await publish(settings, [updated(key, "wrong"), updated(key, "k2"), updated(key, "k3")])
    async with running(settings):
        await eventually(lambda: _count(schema, "xbus_parked", 2), "k2 and k3 parked behind the failure")
        await schema.fix()
        without_reason = await dlq("discard", SPEC, "--id", failing.event_id, "--reason", " ")
        assert without_reason.code == 1 and "say why" in without_reason.stderr
        unknown = await dlq("discard", SPEC, "--id", "no-such-event", "--reason", "typo")
        assert unknown.code == 1 and "no dead letter with id no-such-event" in unknown.stderr

        result = await dlq(
            "discard", SPEC, "--id", failing.event_id, "--reason", "sent by mistake (ticket 42)", "--by", "ops-ann"
        )
        assert result.code == 0, result.stderr
        assert f"discarded {failing.event_id}" in result.stdout and "1 discarded" in result.stdout
        assert await schema.changes(key) == ["k2", "k3"]  # released in order; the discarded one never applied
        assert await schema.value("select count(*) from xbus_blocked_keys") == 0

        [entry] = await dlq.entries()
        assert (entry["status"], entry["discarded_by"], entry["discard_reason"]) == (
            "discarded",
            "ops-ann",
            "sent by mistake (ticket 42)",
        )
        assert entry["discarded_at"] is not None and (entry["blocking"], entry["parked"]) == (False, 0)
        redrive = await dlq("redrive", SPEC, "--id", failing.event_id)
        assert (
            "discarded by ops-ann" in redrive.stdout
            and "0 applied, 0 failed again, 0 waiting, 1 skipped" in redrive.stdout
        )
        assert (await dlq("purge", SPEC, "--applied-before", "0s")).stdout.startswith("0 purged")  # the audit stays
        table = await dlq("list", SPEC)
        assert "discarded" in table.stdout and "0 waiting for a redrive or discard" in table.stdout
    assert await schema.changes(key) == ["k2", "k3"]


async def _topic_ends(settings: Settings) -> int:
    return len(await read_all(settings, "xosp.users"))


async def test_listing_a_service_that_never_ran_here_says_so(service_settings: Settings, dlq: Dlq) -> None:
    result = await dlq("list", SPEC)
    assert result.code == 1
    assert f"schema {service_settings.db_schema('authentication')} has no dead-letter table" in result.stderr


async def _publish_without_key(settings: Settings, event: Event) -> None:
    """A record with a good envelope and no key, as a producer outside xosp-bus could write it."""
    envelope = Envelope.new(type=event.event_type, subject=event.aggregate_id, source="tests")
    await _publish_raw(settings, None, event.model_dump_json().encode(), envelope.to_headers(), 0)


async def _publish_raw(
    settings: Settings, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]], partition: int
) -> None:
    producer = AIOKafkaProducer(**client_options(settings, settings.kafka_bootstrap or ""), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic("xosp.users"), value, key=key, partition=partition, headers=headers)
    finally:
        await producer.stop()


async def test_purge_deletes_dead_letters_applied_since_and_keeps_those_waiting(
    service_settings: Settings, dlq: Dlq
) -> None:
    settings = service_settings
    fixed, waiting = logins_on_one_partition(settings, 2)
    schema = await migrated(settings)
    await schema.refuse(fixed, waiting)
    await publish(settings, [created(fixed), created(waiting)])
    results = await publish(settings, [updated(fixed, "f1"), updated(waiting, "w1")])
    async with running(settings):
        await eventually(lambda: _count(schema, "xbus_dead_letters", 2), "both updates dead-lettered")
        await schema.fetch("delete from refused_logins where login_id = $1", fixed)
        assert (await dlq("redrive", SPEC, "--id", results[0].event_id)).code == 0
        await eventually(lambda: _applied(schema, results[0].event_id), "the fixed update applied")
    too_recent = await dlq("purge", SPEC, "--applied-before", "1h")
    assert too_recent.code == 0, too_recent.stderr
    assert "0 purged, 2 dead letters left" in too_recent.stdout
    purged = await dlq("purge", SPEC, "--applied-before", "0s")
    assert purged.code == 0, purged.stderr
    assert "1 purged, 1 dead letter left" in purged.stdout
    [entry] = await dlq.entries()
    assert (entry["event_id"], entry["status"], entry["blocking"]) == (results[1].event_id, "failed", True)
    refused = await dlq("purge", SPEC, "--applied-before", "soon")
    assert refused.code != 0 and "--applied-before" in refused.stderr


async def _count(schema: Schema, table: str, expected: int) -> bool:
    return await schema.value(f"select count(*) from {table}") == expected


async def _applied(schema: Schema, event_id: str) -> bool:
    return bool(await schema.value("select count(*) from xbus_inbox where event_id = $1", event_id))


async def _attempts(schema: Schema, event_id: str, expected: int) -> bool:
    value = await schema.value("select attempts from xbus_dead_letters where event_id = $1", event_id)
    return bool(value == expected)


async def _changes(schema: Schema, login: str, expected: int) -> bool:
    return len(await schema.changes(login)) == expected


def _headers_with(replaced: dict[str, bytes], extra: list[tuple[str, bytes]] | None = None) -> list[tuple[str, bytes]]:
    """A good envelope's headers with some values replaced, and maybe headers of no CloudEvents name."""
    good = Envelope.new(type=UserCreated.event_type, subject="s", source="tests").to_headers()
    return [(name, replaced.get(name, value)) for name, value in good] + (extra or [])


async def test_records_postgresql_cannot_store_are_dead_lettered_and_the_service_goes_on(
    service_settings: Settings, dlq: Dlq
) -> None:
    """U+0000 is valid JSON and UTF-8 but no PostgreSQL text can hold it: in a key, an event id, a
    header or a payload it once stopped every service that read it, at every restart."""
    settings = service_settings
    good, other = logins_on_one_partition(settings, 2)
    partition = partition_for(good.encode(), load_catalogue(settings).topic_for_type(UserCreated.event_type).partitions)
    schema = await migrated(settings)
    nul = "a\x00b"
    payload = json.dumps({"login_id": nul, "username": "a", "email": "a@b.co", "display_name": "A"}).encode()
    await _publish_raw(settings, nul.encode(), payload, _headers_with({}), partition)  # the event
    await _publish_raw(settings, b"b\x00", payload, _headers_with({"ce_subject": nul.encode()}), partition)
    bad_id = _headers_with({"ce_id": b"x\x00y"})
    await _publish_raw(settings, b"k", created(other).model_dump_json().encode(), bad_id, partition)
    traced = _headers_with({}, extra=[("trace", b"\x00\x01")])
    await _publish_raw(settings, good.encode(), created(good).model_dump_json().encode(), traced, partition)
    await publish(settings, [updated(good, "after")])
    async with running(settings) as runner:
        await eventually(lambda: _changes(schema, good, 1), "the events after the poison applied")
        await eventually(lambda: _count(schema, "xbus_dead_letters", 3), "the three poisoned records dead-lettered")
        assert runner.failure is None
        entries = await dlq.entries()
    assert await schema.changes(good) == ["after"]
    reasons = sorted(entry["error_type"] for entry in entries)
    assert reasons == ["CharacterNotInRepertoireError", "EnvelopeError", "EnvelopeError"], entries
    assert "\x00" not in json.dumps(entries)
