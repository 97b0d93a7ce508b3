"""Stuck-but-alive detection and the per-process endpoint (/healthz, /readyz, /metrics), on the real stack."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from structlog.testing import capture_logs

from consumers.runtime import Service, UnitOfWork
from consumers.runtime.projection import Projection
from consumers.runtime.runner import ServiceRunner
from consumers.runtime.stall import PartitionState
from consumers.runtime.unit_of_work import DbConnection
from consumers.runtime.watchdog import process_health
from infrastructure.brokers import broker_traits, member_timing
from infrastructure.embedded.processes import free_port
from infrastructure.endpoints import load_catalogue
from infrastructure.kafka_clients import client_options
from infrastructure.process_endpoint import ProcessEndpoint
from infrastructure.settings import Settings
from schemas.authentication import LoginProvisioned
from schemas.users import UserCreated
from tests.conftest import Stack, XbusCli
from tests.integration.test_runtime import count, eventually, publish, user
from tests.support.logins_service import LOGINS
from tests.support.service_process import ServiceProcess, scalar
from xbus.lag.model import Status
from xbus.lag.watch import LagOptions, LagWatcher

pytestmark = pytest.mark.integration


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def http(port: int, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(get, port, path)


def hanging_logins(release: asyncio.Event, entered: asyncio.Event | None = None) -> Service:
    """The logins service, except that a user named "hang" waits until ``release`` is set."""

    async def user_created(event: UserCreated, unit: UnitOfWork) -> None:
        if event.username == "hang":
            if entered is not None:
                entered.set()
            await release.wait()
        await LOGINS.handlers[UserCreated](event, unit)

    return Service(name=LOGINS.name, handlers={UserCreated: user_created}, migrations=LOGINS.migrations)


async def test_a_partition_stuck_in_a_handler_is_reported_stalled_until_it_moves(service_settings: Settings) -> None:
    settings = service_settings.model_copy(update={"stall_after_seconds": 2.0, "health_interval_seconds": 0.3})
    release = asyncio.Event()
    runner = ServiceRunner(
        hanging_logins(release),
        settings,
        load_catalogue(settings),
        settings.kafka_bootstrap or "",
        settings.database_url or "",
    )
    await runner.migrate()
    hang = user("hang")
    others = [user(f"u{i:03d}") for i in range(60)]
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    with ProcessEndpoint("127.0.0.1", 0, lambda: process_health([runner.health()])) as endpoint:
        try:
            await eventually(lambda: _status_is(endpoint.port, "/readyz", 200))
            await publish(settings, [hang, *others])
            await eventually(lambda: _status_is(endpoint.port, "/healthz", 503), timeout=30)
            with capture_logs() as logs:
                status, body = await http(endpoint.port, "/healthz")
            assert status == 503
            [said] = [entry for entry in logs if entry["event"] == "health probe answered 503"]
            assert said["path"] == "/healthz" and said["why"].startswith("authentication is stalled: stalled ")
            [service] = json.loads(body)["services"]
            assert service["status"] == "stalled"
            stalled = [p for p in service["partitions"] if p["state"] == "stalled"]
            assert len(stalled) == 1 and stalled[0]["lag"] >= 1
            [stuck] = stalled
            # the other partitions kept flowing: every user not behind "hang" on its partition is applied
            applied = await count(settings, "select count(*) from logins")
            assert 0 < applied < len(others) + 1
            _, metrics = await http(endpoint.port, "/metrics")
            gauge = (
                f'xbus_partition_stalled{{partition="{stuck["partition"]}",service="authentication",'
                f'topic="{stuck["topic"]}"}} 1.0'
            )
            assert gauge in metrics
            release.set()
            await eventually(lambda: _status_is(endpoint.port, "/healthz", 200), timeout=30)
            await eventually(lambda: _applied(settings, len(others) + 1))
            _, metrics = await http(endpoint.port, "/metrics")
            assert gauge.replace("} 1.0", "} 0.0") in metrics
        finally:
            release.set()
            stop.set()
            await task


def slow_logins(seconds_per_event: float) -> Service:
    """The logins service, each event taking ``seconds_per_event`` of its handler's own (a call to
    something slow that answers), so that one batch of a backlog outlasts the stall time."""

    async def user_created(event: UserCreated, unit: UnitOfWork) -> None:
        await asyncio.sleep(seconds_per_event)
        await LOGINS.handlers[UserCreated](event, unit)

    return Service(name=LOGINS.name, handlers={UserCreated: user_created}, migrations=LOGINS.migrations)


async def test_a_backlog_drained_in_batches_longer_than_the_stall_time_raises_no_alarm(
    service_settings: Settings, stack: Stack
) -> None:
    """Busy is not stuck (issue 18): a partition whose batch keeps completing statements is working,
    however long the batch takes to commit. /healthz stays 200, no partition is reported stalled,
    and `xbus lag`, stalled after a time longer than a batch (it cannot see a batch under way, only
    commits), says catching up."""
    # A statement that waits over a second for a core on a machine running the whole suite is, by
    # design, no progress, and its group is split: that rule has tests of its own (test_lock_waits,
    # test_processor); here the split limit is out of its way, so that only the watchdog is judged.
    # The stall time is under a batch (up to about 8 s at 24 ms an event), with room for a fetch
    # that the broker answers late on a machine running the whole suite: a partition whose records
    # have not arrived yet has no batch under way (CI on Tansu once saw three such partitions idle
    # for 3 s, the stall time then, at 12 ms an event).
    settings = service_settings.model_copy(
        update={"stall_after_seconds": 5.0, "health_interval_seconds": 0.2, "batch_split_seconds": 5.0}
    )
    service = slow_logins(0.024)
    bootstrap, database_url = settings.kafka_bootstrap or "", settings.database_url or ""
    runner = ServiceRunner(service, settings, load_catalogue(settings), bootstrap, database_url)
    await runner.migrate()
    backlog = [user(f"b{i:04d}") for i in range(1_200)]
    await publish(settings, backlog)
    stop = asyncio.Event()
    probes: list[int] = []
    since_commit: list[float] = []
    lag_statuses: set[Status] = set()
    options = LagOptions(groups=(settings.group(service.group_id),), window=3, stall_seconds=30.0)
    with capture_logs() as logs, ProcessEndpoint("127.0.0.1", 0, lambda: process_health([runner.health()])) as endpoint:
        async with LagWatcher(settings, stack.endpoints, options) as watcher:
            task = asyncio.create_task(runner.run(stop))
            try:
                await eventually(lambda: _status_is(endpoint.port, "/readyz", 200))  # in the group
                while not await _applied(settings, len(backlog)):
                    status, body = await http(endpoint.port, "/healthz")
                    probes.append(status)
                    seconds = json.loads(body)["services"][0]["seconds_since_commit"]
                    since_commit.append(seconds or 0.0)
                    lag_statuses |= {group.status for group in (await watcher.report()).groups}
                    await asyncio.sleep(0.1)
            finally:
                stop.set()
                await task
    assert max(since_commit) > settings.stall_after_seconds  # the batches did outlast the stall time
    alarms = [
        entry for entry in logs if entry["event"].startswith("partition stalled") or entry.get("path") == "/healthz"
    ]
    warned = [entry for entry in logs if entry.get("log_level") == "warning" and entry.get("path") != "/readyz"]
    assert len(probes) > 20 and set(probes) == {200}, (alarms, warned)
    assert not alarms
    assert lag_statuses <= {Status.OK, Status.WARN}


async def test_a_projection_partition_stuck_in_its_fold_is_reported_stalled_until_it_moves(
    service_settings: Settings,
) -> None:
    """The service's watchdog watches its projections' partitions too (their own consumer group):
    the logins service with a projection of its own follow-ups whose save waits on "hang"."""
    settings = service_settings.model_copy(update={"stall_after_seconds": 2.0, "health_interval_seconds": 0.3})
    release = asyncio.Event()

    async def load(connection: DbConnection, keys: Sequence[str]) -> dict[str, str]:
        return {}

    async def save(connection: DbConnection, states: Mapping[str, str]) -> None:
        if "hang" in states:
            await release.wait()

    projection: Projection[str] = Projection(
        name="hangs",
        topics=r"xosp\.authentication\.events",
        events=(LoginProvisioned,),
        fold=lambda state, event: event.aggregate_id,
        load=load,
        save=save,
    )
    service = dataclasses.replace(LOGINS, background=(projection,))
    runner = ServiceRunner(
        service, settings, load_catalogue(settings), settings.kafka_bootstrap or "", settings.database_url or ""
    )
    await runner.migrate()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    follow_ups = settings.topic("xosp.authentication.events")
    try:
        await publish(settings, [user("hang"), *(user(f"p{i:02d}") for i in range(30))])
        await eventually(lambda: _true(runner.health().status == "stalled"), timeout=30)
        stalled = [p for p in runner.health().partitions if p.state is PartitionState.STALLED]
        assert len(stalled) == 1 and stalled[0].topic == follow_ups and stalled[0].lag >= 1
        assert all(p.lag == 0 for p in runner.health().partitions if p.topic != follow_ups)  # the service's own
        release.set()
        await eventually(lambda: _true(runner.health().status == "ok"), timeout=30)
    finally:
        release.set()
        stop.set()
        await task


async def _true(value: bool) -> bool:
    return value


async def _status_is(port: int, path: str, expected: int) -> bool:
    return (await http(port, path))[0] == expected


async def _caught_up(port: int) -> bool:
    [service] = json.loads((await http(port, "/healthz"))[1])["services"]
    return {p["lag"] for p in service["partitions"]} == {0}


async def _applied(settings: Settings, expected: int) -> bool:
    schema = settings.db_schema(LOGINS.name)
    return await scalar(settings, schema, "select count(*) from {schema}.xbus_inbox") == expected


async def test_xbus_run_serves_metrics_and_health_on_its_port(service_settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    process = ServiceProcess("tests.support.logins_service:LOGINS", service_settings, tmp_path / "run.log", port)
    process.start()
    try:
        await publish(service_settings, [user(f"m{i:03d}") for i in range(30)])
        await eventually(lambda: _applied(service_settings, 30))
        await eventually(lambda: _status_is(port, "/readyz", 200))
        await eventually(lambda: _caught_up(port))  # the watchdog samples every few seconds
        status, body = await http(port, "/healthz")
        assert status == 200
        [service] = json.loads(body)["services"]
        assert service["service"] == "authentication" and service["status"] == "ok"
        assert service["partitions"] and {p["lag"] for p in service["partitions"]} == {0}
        _, metrics = await http(port, "/metrics")
        assert 'xbus_events_total{outcome="applied",service="authentication"} 30.0' in metrics
        assert 'xbus_outbox_published_total{service="authentication"} 30.0' in metrics
        assert "xbus_batch_duration_seconds_bucket" in metrics
        assert "xbus_outbox_publish_latency_seconds_count" in metrics
        assert (await http(port, "/nowhere"))[0] == 404
    finally:
        assert process.stop() == 0


def test_xbus_run_on_a_taken_port_stops_with_one_line(xbus: XbusCli) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        result = xbus(
            "run", "tests.support.logins_service:LOGINS", env={"XBUS_METRICS_PORT": str(taken.getsockname()[1])}
        )
    assert result.code == 2
    assert "XBUS_METRICS_PORT" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_batch_stuck_at_stop_is_abandoned_after_the_grace_and_re_read(service_settings: Settings) -> None:
    settings = service_settings.model_copy(update={"stop_grace_seconds": 1.0})
    release, entered, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    catalogue, bootstrap, url = load_catalogue(settings), settings.kafka_bootstrap or "", settings.database_url or ""
    stuck = ServiceRunner(hanging_logins(release, entered), settings, catalogue, bootstrap, url)
    await stuck.migrate()
    await publish(settings, [user("hang"), *(user(f"g{i:02d}") for i in range(20))])
    task = asyncio.create_task(stuck.run(stop))
    try:
        await asyncio.wait_for(entered.wait(), timeout=60)
        stop.set()
        await asyncio.wait_for(task, timeout=20)  # returns although the handler never does
    finally:
        release.set()
    schema = settings.db_schema(LOGINS.name)
    assert await scalar(settings, schema, "select count(*) from {schema}.logins where login_id = 'hang'") == 0

    stop = asyncio.Event()
    task = asyncio.create_task(ServiceRunner(LOGINS, settings, catalogue, bootstrap, url).run(stop))
    try:
        await eventually(lambda: _applied(settings, 21))  # the abandoned batch was re-read
    finally:
        stop.set()
        await task


async def test_a_stop_while_a_rebalance_waits_for_a_stuck_batch_still_ends_the_runner(
    service_settings: Settings,
) -> None:
    """A member joining makes the runner give its partitions up, which waits for the batch under
    way; aiokafka's poll waits for that rebalance whatever its timeout. A stop then must still
    end the runner: the stuck batch is abandoned after the grace and the group left."""
    settings = service_settings.model_copy(update={"stop_grace_seconds": 1.0})
    release, entered, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    bootstrap = settings.kafka_bootstrap or ""
    stuck = ServiceRunner(
        hanging_logins(release, entered), settings, load_catalogue(settings), bootstrap, settings.database_url or ""
    )
    await stuck.migrate()
    await publish(settings, [user("hang")])
    timing = member_timing(settings, await broker_traits(settings, bootstrap))
    newcomer = AIOKafkaConsumer(
        *stuck.topics,
        **client_options(settings, bootstrap),
        group_id=settings.group(stuck.service.group_id),
        session_timeout_ms=timing.session_timeout_ms,
        heartbeat_interval_ms=timing.heartbeat_interval_ms,
    )
    task = asyncio.create_task(stuck.run(stop))
    try:
        await asyncio.wait_for(entered.wait(), timeout=60)
        # its join starts the rebalance the stuck batch holds up; start() returns once it has joined
        joining = asyncio.create_task(newcomer.start())
        await asyncio.sleep(3 * timing.heartbeat_interval_ms / 1000)  # the runner has heard of it
        stop.set()
        await asyncio.wait_for(task, timeout=30)  # returns although the rebalance cannot finish in time
    finally:
        release.set()
        await asyncio.gather(joining, return_exceptions=True)
        await newcomer.stop()
    assert await scalar(settings, settings.db_schema(LOGINS.name), "select count(*) from {schema}.logins") == 0
