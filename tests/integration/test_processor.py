"""The partition processor on the real PostgreSQL: exactly-once effects, dead letters, parking."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from consumers.runtime import UnitOfWork, fields_locked_as
from consumers.runtime.inbox_outbox import outbox_channel
from consumers.runtime.migrations import load_migrations, migrate
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.records import StoredRecord, headers_from_json
from consumers.runtime.replay_marks import write_replay_marks
from consumers.runtime.service import Routing
from consumers.runtime.unit_of_work import hold_locks
from schemas import Envelope, Event
from schemas.users import UserCreated, UserDisabled, UserUpdated
from tests.conftest import Stack
from tests.support.logins_service import LOGINS

pytestmark = pytest.mark.integration

ROUTING = Routing(follow_up_topic="auth.events", dead_letter_topic="auth.dlq", source="tests")


@pytest.fixture
async def connection(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    schema = f"svc_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(stack.endpoints.database_url)
    await migrate(connection, schema, load_migrations(LOGINS.migrations))
    await connection.execute(f"set search_path to {schema}")
    try:
        yield connection
    finally:
        await connection.execute(f"drop schema {schema} cascade")
        await connection.close()


class Log:
    """Records as a partition would hold them, offsets counting up."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self, event: Event, *, event_id: str | None = None) -> StoredRecord:
        envelope = Envelope.new(type=event.event_type, subject=event.aggregate_id, source="tests", id=event_id)
        self.offset += 1
        return StoredRecord(
            "xosp.users",
            0,
            self.offset - 1,
            event.aggregate_id.encode(),
            event.model_dump_json().encode(),
            envelope.to_headers(),
        )


def created(login: str) -> UserCreated:
    return UserCreated(login_id=login, username=login, email=f"{login}@example.com", display_name=login)


async def logins(connection: asyncpg.Connection) -> dict[str, tuple[str, str, int]]:
    rows = await connection.fetch("select login_id, display_name, status, changes from logins")
    return {r["login_id"]: (r["display_name"], r["status"], r["changes"]) for r in rows}


async def test_duplicate_event_changes_nothing(connection: asyncpg.Connection) -> None:
    log, processor = Log(), BatchProcessor(LOGINS, ROUTING)
    first = log(created("u1"))
    outcome = await processor.process(connection, [first, log(UserDisabled(login_id="u1", reason="r"))])
    assert (outcome.applied, outcome.follow_ups) == (2, 1)
    again = await processor.process(connection, [first])
    assert (again.applied, again.duplicates) == (0, 1)
    assert await logins(connection) == {"u1": ("u1", "disabled", 1)}
    assert await connection.fetchval("select count(*) from xbus_outbox") == 1


async def test_follow_up_events_go_to_the_outbox_with_a_derived_id_and_the_flow(connection: asyncpg.Connection) -> None:
    log = Log()
    record = log(created("u1"))
    await BatchProcessor(LOGINS, ROUTING).process(connection, [record])
    row = await connection.fetchrow("select topic, key, value, headers::text as headers from xbus_outbox")
    envelope = Envelope.from_headers(headers_from_json(row["headers"]))
    cause = Envelope.from_headers(record.headers)
    assert (row["topic"], row["key"]) == ("auth.events", b"u1")
    assert json.loads(row["value"]) == {"login_id": "u1", "username": "u1", "status": "active", "flow_id": cause.id}
    assert envelope.type == "xosp.login.provisioned.v1"
    assert (envelope.causation_id, envelope.correlation_id, envelope.time) == (
        cause.id,
        cause.correlation_id,
        cause.time,
    )
    assert envelope.id == str(
        uuid.uuid5(
            uuid.UUID("6f0a7c1e-3b2d-4f5e-9a8b-7c6d5e4f3a2b"),
            f"{LOGINS.name}/{cause.id}/0/xosp.login.provisioned.v1/u1",
        )
    )


async def test_event_this_service_does_not_handle_is_ignored(connection: asyncpg.Connection) -> None:
    from schemas.users import UserEnabled

    outcome = await BatchProcessor(LOGINS, ROUTING).process(connection, [Log()(UserEnabled(login_id="u1"))])
    assert (outcome.ignored, outcome.applied) == (1, 0)


async def test_poison_event_is_dead_lettered_and_the_rest_of_the_batch_applies(connection: asyncpg.Connection) -> None:
    log = Log()
    bad_headers = StoredRecord("xosp.users", 0, 99, b"x", b"{}", [("ce_id", b"1")])
    bad_json = log(created("u9"))
    bad_json = StoredRecord(bad_json.topic, 0, bad_json.offset, b"u9", b'{"login_id": 5}', bad_json.headers)
    records = [
        log(created("u1")),
        bad_headers,
        bad_json,
        log(UserDisabled(login_id="ghost", reason="r")),
        log(created("u2")),
    ]
    outcome = await BatchProcessor(LOGINS, ROUTING).process(connection, records)
    assert (outcome.applied, outcome.dead_lettered) == (2, 3)
    assert set(await logins(connection)) == {"u1", "u2"}
    dead = {r["error_type"]: r for r in await connection.fetch("select * from xbus_dead_letters")}
    assert set(dead) == {"EnvelopeError", "ValidationError", "DomainError"}
    assert "login ghost is unknown" in dead["DomainError"]["error_message"]
    assert "login_id" in dead["ValidationError"]["error_message"]
    dlq = await connection.fetch("select headers::text as headers from xbus_outbox where topic = 'auth.dlq'")
    assert len(dlq) == 3
    headers = dict(headers_from_json(dlq[-1]["headers"]))
    assert headers["xbus_dlq_error_type"] == b"DomainError"
    assert {"xbus_dlq_topic", "xbus_dlq_partition", "xbus_dlq_offset", "xbus_dlq_attempts", "xbus_dlq_time"} <= set(
        headers
    )


async def test_a_handler_bug_is_retried_then_dead_lettered_with_its_attempts(connection: asyncpg.Connection) -> None:
    log = Log()
    await BatchProcessor(LOGINS, ROUTING, retry_backoff=0.001).process(
        connection, [log(created("u1")), log(UserUpdated(login_id="u1", display_name="boom"))]
    )
    row = await connection.fetchrow("select error_type, attempts from xbus_dead_letters")
    assert (row["error_type"], row["attempts"]) == ("RuntimeError", LOGINS.max_attempts)
    assert await logins(connection) == {"u1": ("u1", "active", 0)}


async def test_failing_event_of_a_key_parks_later_events_of_that_key_only(connection: asyncpg.Connection) -> None:
    log, processor = Log(), BatchProcessor(LOGINS, ROUTING, retry_backoff=0.001)
    await processor.process(connection, [log(created("k")), log(created("other"))])
    failing = log(UserUpdated(login_id="k", display_name="boom"))
    later = [log(UserUpdated(login_id="k", display_name=f"v{i}")) for i in range(3)]
    outcome = await processor.process(
        connection, [failing, later[0], log(UserDisabled(login_id="other", reason="r")), *later[1:]]
    )
    assert (outcome.dead_lettered, outcome.parked, outcome.applied) == (1, 3, 1)
    assert await logins(connection) == {"k": ("k", "active", 0), "other": ("other", "disabled", 1)}

    # the cause is fixed (here: the redriven event is the same but the handler now accepts it)
    fixed = StoredRecord(
        failing.topic,
        0,
        50,
        failing.key,
        UserUpdated(login_id="k", display_name="fixed").model_dump_json().encode(),
        failing.headers,
    )
    await connection.execute("update xbus_dead_letters set redriven_at = now()")
    outcome = await processor.process(connection, [fixed])
    assert (outcome.applied, outcome.released) == (4, 3)
    assert await logins(connection) == {"k": ("v2", "active", 4), "other": ("other", "disabled", 1)}
    assert await connection.fetchval("select count(*) from xbus_parked") == 0
    assert await connection.fetchval("select count(*) from xbus_blocked_keys") == 0


async def test_a_redrive_carried_out_fails_again_and_a_discard_releases_the_key_in_order(
    connection: asyncpg.Connection,
) -> None:
    log, processor = Log(), BatchProcessor(LOGINS, ROUTING, retry_backoff=0.001)
    await processor.process(connection, [log(created("k"))])
    failing = log(UserUpdated(login_id="k", display_name="boom"))
    later = [log(UserUpdated(login_id="k", display_name=f"v{i}")) for i in range(2)]
    await processor.process(connection, [failing, *later])
    [event_id] = [row["event_id"] for row in await connection.fetch("select event_id from xbus_dead_letters")]
    assert await processor.carry_out(connection, event_id) is None  # nothing asked yet

    await connection.execute("update xbus_dead_letters set redriven_at = now()")
    again = await processor.carry_out(connection, event_id)
    assert again is not None and (again.dead_lettered, again.applied, again.released) == (1, 0, 0)
    row = await connection.fetchrow("select attempts, redriven_at from xbus_dead_letters")
    assert (row["attempts"], row["redriven_at"]) == (2 * LOGINS.max_attempts, None)
    assert await connection.fetchval("select count(*) from xbus_outbox where topic = 'auth.dlq'") == 2

    await connection.execute("update xbus_dead_letters set discard_requested_at = now(), discarded_by = 'me'")
    discarded = await processor.carry_out(connection, event_id)
    assert discarded is not None and (discarded.applied, discarded.released) == (2, 2)
    assert await logins(connection) == {"k": ("v1", "active", 2)}
    assert await connection.fetchval("select discarded_at is not null from xbus_dead_letters") is True
    assert await connection.fetchval("select count(*) from xbus_blocked_keys") == 0
    assert await processor.carry_out(connection, event_id) is None  # done: asked again, nothing happens
    assert (await processor.process(connection, [failing])).duplicates == 1  # a redelivery stays discarded


async def test_a_record_that_breaks_the_runtime_outside_any_handler_is_dead_lettered_alone(
    connection: asyncpg.Connection,
) -> None:
    """Not a refusal: an error the paths have no rule for (here the service's own ``locks``).
    It once stopped the service, and stopped it again at every restart."""

    def locks(event: Event, _: Envelope) -> list[str]:
        if event.aggregate_id == "boom":
            raise ZeroDivisionError("no lock for that key")
        return [f"login:{event.aggregate_id}"]

    log = Log()
    processor = BatchProcessor(dataclasses.replace(LOGINS, locks=locks), ROUTING, retry_backoff=0.001)
    batch = [log(created("a")), log(created("boom")), log(created("c"))]
    outcome = await processor.process(connection, batch)

    assert (outcome.applied, outcome.dead_lettered) == (2, 1)
    assert set(await logins(connection)) == {"a", "c"}
    row = await connection.fetchrow("select event_id, key, error_type, error_message from xbus_dead_letters")
    assert (row["key"], row["error_type"]) == ("boom", "ZeroDivisionError")
    assert "the runtime could not apply it: no lock for that key" in row["error_message"]
    again = await processor.process(connection, batch)  # read again: nothing applied or dead-lettered twice
    assert (again.duplicates, again.dead_lettered) == (3, 0)
    assert await connection.fetchval("select attempts from xbus_dead_letters") == 1


async def test_a_redelivered_dead_lettered_event_is_not_dead_lettered_twice(connection: asyncpg.Connection) -> None:
    record = Log()(UserDisabled(login_id="ghost", reason="r"))
    processor = BatchProcessor(LOGINS, ROUTING)
    await processor.process(connection, [record])
    again = await processor.process(connection, [record])
    assert again.duplicates == 1
    assert await connection.fetchval("select count(*) from xbus_outbox where topic = 'auth.dlq'") == 1


async def test_migrations_apply_once_and_are_recorded(connection: asyncpg.Connection, stack: Stack) -> None:
    schema = await connection.fetchval("select current_schema()")
    versions = [r["version"] for r in await connection.fetch("select version from xbus_migrations order by version")]
    assert versions == ["0000_runtime", "0000_runtime_held_events", "0000_runtime_replay_marks", "0001_logins"]
    other = await asyncpg.connect(stack.endpoints.database_url)
    try:
        assert await migrate(other, schema, load_migrations(LOGINS.migrations)) == []
    finally:
        await other.close()


async def test_a_batch_holds_the_locks_of_all_its_events_before_the_first_handler_runs(
    connection: asyncpg.Connection,
) -> None:
    """Two batches that touch the same entities in another order must not deadlock: with
    ``Service.locks`` each batch holds all its events' locks (taken in sorted order) before any
    handler runs, so the first handler already sees the last event's lock held."""
    seen: list[set[int]] = []

    async def held(event: Event, unit: UnitOfWork) -> None:
        rows = await unit.fetch(
            "select objid from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and granted"
        )
        seen.append({row["objid"] for row in rows})

    service = dataclasses.replace(LOGINS, handlers={UserCreated: held}, locks=fields_locked_as("login", "login_id"))
    log = Log()
    await BatchProcessor(service, ROUTING).process(connection, [log(created("zed")), log(created("amy"))])

    expected = set()
    for name in ("login:amy", "login:zed"):
        lock = await connection.fetchval("select hashtextextended($1, 0)", f"{service.name}:{name}")
        expected.add(lock & 0xFFFFFFFF)  # pg_locks shows a bigint key's low half as objid
    assert len(seen) == 2 and expected <= seen[0]


async def test_a_batch_takes_all_its_locks_in_one_statement(connection: asyncpg.Connection) -> None:
    """A tracker batch names hundreds of flows: a round trip per lock was much of its backlog time."""
    statements: list[str] = []

    def logged(query: Any) -> None:
        statements.append(query.query)

    connection.add_query_logger(logged)
    try:
        async with connection.transaction():
            await hold_locks(connection, "svc", [f"flow:{n:03d}" for n in range(200)])
            held = await connection.fetchval(
                "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and granted"
            )
    finally:
        connection.remove_query_logger(logged)
    assert held == 200
    assert len([query for query in statements if "pg_advisory_xact_lock" in query]) == 1


async def test_a_clean_batch_takes_the_fast_path_with_the_same_effects(connection: asyncpg.Connection) -> None:
    log, processor = Log(), BatchProcessor(LOGINS, ROUTING)
    batch = [log(created(f"u{n}")) for n in range(5)] + [log(UserDisabled(login_id="u0", reason="r"))]
    outcome = await processor.process(connection, batch)
    assert outcome.fast
    assert (outcome.applied, outcome.follow_ups, outcome.duplicates) == (6, 5, 0)
    assert (await logins(connection))["u0"] == ("u0", "disabled", 1)
    assert await connection.fetchval("select count(*) from xbus_inbox") == 6
    outbox = await connection.fetch("select key, headers::text as headers from xbus_outbox order by id")
    assert [row["key"] for row in outbox] == [f"u{n}".encode() for n in range(5)]  # in the order recorded
    again = await processor.process(connection, [*batch, log(created("u5"))])  # duplicates skipped at once
    assert (again.fast, again.applied, again.duplicates) == (True, 1, 6)


async def test_a_batch_with_a_refused_event_falls_back_and_nothing_of_the_fast_attempt_remains(
    connection: asyncpg.Connection,
) -> None:
    log, processor = Log(), BatchProcessor(LOGINS, ROUTING)
    # u1 is created, then an update of a login nobody created is refused, then u2 is created
    batch = [log(created("u1")), log(UserUpdated(login_id="ghost", display_name="G")), log(created("u2"))]
    outcome = await processor.process(connection, batch)
    assert not outcome.fast
    assert (outcome.applied, outcome.dead_lettered) == (2, 1)
    assert set(await logins(connection)) == {"u1", "u2"}  # each once: the rolled-back attempt left nothing
    assert await connection.fetchval("select count(*) from xbus_inbox") == 2
    assert await connection.fetchval("select count(*) from xbus_outbox where topic = 'auth.events'") == 2


@pytest.mark.parametrize("path", ["fast", "record by record"])
async def test_an_event_another_transaction_applies_meanwhile_is_a_duplicate_not_an_error(
    connection: asyncpg.Connection, stack: Stack, path: str
) -> None:
    """The same event read on two partitions at once (a replayed follow-up, say): the second
    transaction waits for the first one's inbox row and skips the event, on either path."""
    log, processor = Log(), BatchProcessor(LOGINS, ROUTING)
    record = log(created("u1"))
    event_id = Envelope.from_headers(record.headers).id
    # a record without an envelope sends the batch record by record before anything is claimed
    batch = [record] if path == "fast" else [StoredRecord("xosp.users", 0, 99, b"x", b"{}", []), record]
    schema = await connection.fetchval("select current_schema()")
    other = await asyncpg.connect(stack.endpoints.database_url)
    try:
        applying = other.transaction()
        await applying.start()
        await other.execute(
            f'insert into {schema}.xbus_inbox (event_id, topic, partition, "offset") values ($1, $2, 1, 0)',
            event_id,
            record.topic,
        )
        processing = asyncio.create_task(processor.process(connection, batch))
        while not await other.fetchval("select exists (select 1 from pg_locks where not granted)"):
            assert not processing.done(), processing.result()
            await asyncio.sleep(0.02)
        await applying.commit()
        outcome = await processing
    finally:
        await other.close()
    assert (outcome.fast, outcome.applied, outcome.duplicates) == (path == "fast", 0, 1)
    assert await logins(connection) == {}


async def test_a_batch_that_writes_outbox_rows_wakes_the_relay_when_it_commits_on_either_path(
    connection: asyncpg.Connection, stack: Stack
) -> None:
    """The NOTIFY rides on the statement that writes the rows: a clean batch (fast path) and one
    with a dead letter (record by record) each wake the relay; a batch of duplicates writes
    nothing and wakes nothing."""
    log, processor = Log(), BatchProcessor(LOGINS, ROUTING)
    listener = await asyncpg.connect(stack.endpoints.database_url)
    woken: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(outbox_channel(LOGINS.name), lambda *args: woken.put_nowait(args[2]))
    try:
        clean = [log(created("u1")), log(created("u2"))]
        assert (await processor.process(connection, clean)).fast
        assert await asyncio.wait_for(woken.get(), 10) == outbox_channel(LOGINS.name)
        refused = [log(UserUpdated(login_id="ghost", display_name="G"))]
        assert (await processor.process(connection, refused)).dead_lettered == 1
        await asyncio.wait_for(woken.get(), 10)
        assert (await processor.process(connection, clean)).duplicates == 2
        await asyncio.sleep(0.5)
        assert woken.empty()
    finally:
        await listener.close()


async def test_replay_marks_are_read_once_and_again_after_forget(connection: asyncpg.Connection) -> None:
    """Marks are written only while the group has no member, so the runner reads them when it
    (re)joins, not per batch; records below a mark reach their handler as replayed."""
    replayed: list[bool] = []

    async def note(event: Event, unit: UnitOfWork) -> None:
        replayed.append(unit.replayed)

    log = Log()
    processor = BatchProcessor(dataclasses.replace(LOGINS, handlers={UserCreated: note}), ROUTING)
    await processor.process(connection, [log(created("u0"))])
    await write_replay_marks(connection, {TopicPartition("xosp.users", 0): 100})
    await processor.process(connection, [log(created("u1"))])  # the marks read before are kept
    processor.forget_replay_marks()  # as on joining the group again
    await processor.process(connection, [log(created("u2"))])
    assert replayed == [False, False, True]


async def test_a_fast_attempt_rolled_back_is_counted_and_logged_with_why(connection: asyncpg.Connection) -> None:
    """A rolled-back attempt redone another way is work done twice: counted by reason, logged with why."""
    counter = {"service": LOGINS.name, "reason": "unusual"}
    before = REGISTRY.get_sample_value("xbus_batches_redone_total", counter) or 0.0
    log, processor = Log(), BatchProcessor(LOGINS, ROUTING)
    with capture_logs() as logs:
        outcome = await processor.process(
            connection, [log(created("u1")), log(UserUpdated(login_id="ghost", display_name="G"))]
        )
    assert not outcome.fast
    assert REGISTRY.get_sample_value("xbus_batches_redone_total", counter) == before + 1
    [said] = [entry for entry in logs if entry["event"] == "batch applied record by record"]
    assert said["why"] == "the handler of xosp.user.updated.v1 raised DomainError"
