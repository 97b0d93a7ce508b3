"""`xbus monitor` on the real stack: /v1/lag, /v1/lag/history and /metrics of a running `xbus monitor`.

Two groups under the module's prefix: the logins service, running and caught up (OK), and a group
with no members whose offsets were set back to 0 on `xosp.users` (STOP, lagging by exactly what
was published). test_lag_page.py watches the same set-up in a browser.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from infrastructure.brokers import broker_traits
from infrastructure.endpoints import Endpoints, load_catalogue
from infrastructure.groups import commit_offsets, partitions_of_topics
from infrastructure.kafka_clients import admin_client
from infrastructure.settings import Settings
from producers import Published, Publisher
from schemas.users import UserCreated
from tests.conftest import ROOT, Stack
from tests.support.logins_service import LOGINS
from tests.support.service_process import process_env
from tests.support.service_under_test import ServiceUnderTest, module_settings
from xbus.lag.model import GroupReport, LagReport, PartitionLag, PartitionReport, Status
from xbus.lag.watch import LagOptions, LagWatcher
from xbus.monitor import LagSampler, create_app
from xbus.monitor.metrics import lag_metrics

pytestmark = pytest.mark.integration
#: The async tests share the module's loop: the monitored set-up is made once per module.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

USERS = 12


@dataclass(frozen=True)
class TwoGroups:
    settings: Settings
    #: The logins service's group: running, caught up.
    running: str
    #: A group with no members, committed at 0 on every partition of the users topic.
    stopped: str
    users_topic: str
    #: Records per partition of the users topic: the stopped group's lag on each.
    published: dict[int, int]


@asynccontextmanager
async def two_groups(stack: Stack) -> AsyncIterator[TwoGroups]:
    settings = await module_settings(stack)
    bootstrap = settings.kafka_bootstrap or ""
    users_topic = settings.topic("xosp.users")
    async with ServiceUnderTest(LOGINS, settings) as service:
        async with Publisher(settings, bootstrap, load_catalogue(settings)) as publisher:
            results = await publisher.publish_many([user(f"u{i:02d}-{uuid.uuid4().hex[:6]}") for i in range(USERS)])
        published = [result for result in results if isinstance(result, Published)]
        assert len(published) == USERS, results
        stopped = settings.group("monitor-test.stopped")
        async with admin_client(settings, bootstrap) as admin:
            partitions = await partitions_of_topics(admin, [users_topic])
        await commit_offsets(settings, bootstrap, stopped, {tp: 0 for tp in partitions})
        counts = Counter(result.partition for result in published)
        await eventually(lambda: _logins_stored(service, USERS))
        yield TwoGroups(
            settings=settings,
            running=settings.group(LOGINS.group_id),
            stopped=stopped,
            users_topic=users_topic,
            published={tp.partition: counts[tp.partition] for tp in partitions},
        )


def user(login: str) -> UserCreated:
    return UserCreated(login_id=login, username=login, email=f"{login}@example.com", display_name=login)


async def _logins_stored(service: ServiceUnderTest, count: int) -> bool:
    return int(await service.db.fetchval("select count(*) from logins")) == count


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


@asynccontextmanager
async def monitor_process(settings: Settings, log: Path, *args: str) -> AsyncIterator[str]:
    """`xbus monitor --port 0 ARGS` in a process of its own; yields the URL it prints. Stopped with
    SIGTERM, which must end it cleanly."""
    env = process_env(settings)
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "xbus", "monitor", "--port", "0", *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        assert "http://127.0.0.1:" in line, f"no URL printed: {line!r}; log: {log.read_text()[-2000:]}"
        yield line.split(" on ", 1)[1].split()[0]
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
    assert code == 0, f"xbus monitor exited {code} on SIGTERM; log: {log.read_text()[-2000:]}"


async def get_json(url: str) -> Any:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    response.raise_for_status()
    return response.json()


def groups_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {group["group"]: group for group in report["groups"]}


async def settled(url: str, groups: TwoGroups) -> dict[str, Any]:
    """The latest report once the running group is OK and the stopped one STOP (judged over the window)."""
    report: dict[str, Any] = {}

    async def judged() -> bool:
        nonlocal report
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{url}v1/lag")
        if response.status_code == 503:  # served before the first sample is taken
            return False
        response.raise_for_status()
        report = response.json()
        statuses = {name: group["status"] for name, group in groups_by_name(report).items()}
        return statuses == {groups.running: "OK", groups.stopped: "STOP"}

    await eventually(judged)
    return report


@asynccontextmanager
async def monitored_groups(stack: Stack, log: Path) -> AsyncIterator[tuple[TwoGroups, str]]:
    """The two groups, watched by `xbus monitor` (short interval and window: STOP within a second or two)."""
    async with (
        two_groups(stack) as groups,
        monitor_process(groups.settings, log, "--interval", "0.3", "--window", "3") as url,
    ):
        yield groups, url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def monitored(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[TwoGroups, str]]:
    async with monitored_groups(stack, tmp_path_factory.mktemp("monitor") / "monitor.log") as watched:
        yield watched


@in_module_loop
async def test_lag_report_shows_a_caught_up_service_and_a_stopped_group_behind_by_all_it_did_not_read(
    monitored: tuple[TwoGroups, str],
) -> None:
    groups, url = monitored
    report = await settled(url, groups)

    assert set(report) >= {"taken_at", "retention_enforced", "business", "groups", "interval_seconds"}
    by_name = groups_by_name(report)
    stopped, running = by_name[groups.stopped], by_name[groups.running]
    assert (stopped["lag"], stopped["members"], stopped["state"]) == (USERS, [], "Empty")
    lagging = {p["partition"]: p for p in stopped["partitions"] if p["topic"] == groups.users_topic}
    assert {n: p["lag"] for n, p in lagging.items()} == groups.published
    assert all(p["committed"] == 0 and p["log_end"] == groups.published[n] for n, p in lagging.items())
    assert all((p["lag_seconds"] > 0) == (p["lag"] > 0) for p in lagging.values())
    assert {p["status"] for p in lagging.values() if p["lag"] > 0} == {"STOP"}
    assert running["lag"] == 0 and running["members"], running
    assert {p["status"] for p in running["partitions"]} == {"OK"}


@in_module_loop
async def test_metrics_export_lag_messages_seconds_and_status_per_partition(monitored: tuple[TwoGroups, str]) -> None:
    groups, url = monitored
    await settled(url, groups)
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}metrics")).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    for partition, records in groups.published.items():
        labels = {"group": groups.stopped, "topic": groups.users_topic, "partition": str(partition)}
        assert value("xbus_consumer_lag_messages", **labels) == records
        assert value("xbus_consumer_status", **labels) == (Status.STOP if records else Status.OK)
        seconds = value("xbus_consumer_lag_seconds", **labels)
        assert seconds is not None and (seconds > 0) == (records > 0)
    assert value("xbus_consumer_group_status", group=groups.stopped) == Status.STOP
    assert value("xbus_consumer_group_status", group=groups.running) == Status.OK
    assert {labels for name, labels in samples if name == "xbus_consumer_group_status"} == {
        (("group", groups.running),),
        (("group", groups.stopped),),
    }


@in_module_loop
async def test_history_gains_a_point_per_group_with_each_sample(monitored: tuple[TwoGroups, str]) -> None:
    groups, url = monitored
    first = (await get_json(f"{url}v1/lag/history"))["groups"]

    async def grown() -> bool:
        later = (await get_json(f"{url}v1/lag/history"))["groups"]
        return all(len(later[g]) > len(first.get(g, [])) for g in (groups.running, groups.stopped))

    await eventually(grown)
    points = (await get_json(f"{url}v1/lag/history"))["groups"][groups.stopped]
    assert all(point["lag"] == USERS for point in points)
    assert [point["t"] for point in points] == sorted(point["t"] for point in points)


@in_module_loop
async def test_before_its_first_sample_the_monitor_answers_503_with_a_problem(
    monitored: tuple[TwoGroups, str],
) -> None:
    groups, _ = monitored
    bootstrap = groups.settings.kafka_bootstrap or ""
    endpoints = Endpoints(
        bootstrap, groups.settings.database_url or "", (await broker_traits(groups.settings, bootstrap)).kind
    )
    async with LagWatcher(groups.settings, endpoints, LagOptions(groups=(groups.stopped,))) as watcher:
        sampler = LagSampler(watcher, interval=1.0)
        transport = httpx.ASGITransport(app=create_app(sampler))
        async with httpx.AsyncClient(transport=transport, base_url="http://monitor") as client:
            lag, health = await client.get("/v1/lag"), await client.get("/healthz")
            await sampler.sample()
            after = await client.get("/v1/lag")

    assert (lag.status_code, lag.headers["content-type"]) == (503, "application/problem+json")
    assert lag.json()["status"] == 503 and "no lag sample" in lag.json()["detail"]
    assert health.status_code == 503
    assert after.status_code == 200
    assert [group["group"] for group in after.json()["groups"]] == [groups.stopped]


@in_module_loop
async def test_a_failing_sample_is_counted_and_retried_without_ending_the_sampler(
    monitored: tuple[TwoGroups, str],
) -> None:
    groups, _ = monitored
    nowhere = "postgresql://xbus@127.0.0.1:9/none"  # port 9 (discard): nothing answers PostgreSQL there
    bootstrap = groups.settings.kafka_bootstrap or ""
    endpoints = Endpoints(bootstrap, nowhere, (await broker_traits(groups.settings, bootstrap)).kind)
    async with LagWatcher(groups.settings, endpoints, LagOptions(groups=(groups.stopped,))) as watcher:
        sampler = LagSampler(watcher, interval=0.1)
        stop = asyncio.Event()
        running = asyncio.create_task(sampler.run(stop))

        async def failed_twice() -> bool:
            return sampler.failures >= 2

        await eventually(failed_twice)
        still_running = not running.done()
        stop.set()
        await running

    assert still_running
    assert sampler.latest is None and sampler.last_error is not None


def partition(topic: str, number: int, lag: int) -> PartitionReport:
    measured = PartitionLag(topic, number, 0, 0, lag, lag, float(lag), None, None)
    return PartitionReport(measured, Status.OK, "test", None, False)


def test_a_partition_no_longer_reported_is_no_longer_exported() -> None:
    both = GroupReport("g", "Stable", (), Status.OK, (partition("t", 0, 3), partition("t", 1, 5)))
    one = GroupReport("g", "Stable", (), Status.OK, (partition("t", 0, 3),))

    def exported(report: LagReport) -> set[tuple[str, ...]]:
        families = {family.name: family for family in lag_metrics(report)}
        return {tuple(s.labels.values()) for s in families["xbus_consumer_lag_messages"].samples}

    assert exported(LagReport(1.0, (both,), {}, False)) == {("g", "t", "0"), ("g", "t", "1")}
    assert exported(LagReport(2.0, (one,), {}, False)) == {("g", "t", "0")}
