"""What the service benches share: fresh worlds, services in processes of their own, the echo baseline.

`runtime.py` times one service against one echo; `flows.py` times the whole provisioning job
against a chain of echoes; `backlog.py` times each provisioning service alone on a backlog. They
start what they measure as production does, each service in a process of its own (and collect
the warnings those processes log the same way), and the latency benches measure their baseline
with the same EchoService, so that their floors are the same thing.

Run as a script, this file is one echo of such a chain (ServiceProcess gives it its settings):

    python bench/services.py --group bench.echo --to FOLLOW_UP_TOPIC INPUT_TOPIC [INPUT_TOPIC...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from infrastructure.brokers import group_member_options
from infrastructure.endpoints import Endpoints, apply_catalogue
from infrastructure.groups import topics_under
from infrastructure.kafka_clients import acks_all_producer, admin_client, client_options
from infrastructure.logs import configure_logging
from infrastructure.reader import topic_partitions
from infrastructure.settings import Settings, child_environment, load_settings

ROOT = Path(__file__).resolve().parent.parent
#: What ServiceRunner polls per getmany; the echo takes as much.
MAX_RECORDS = 500
#: The runner's stop grace (30 s) for batches under way, then time to leave the group.
STOP_SECONDS = 60


async def fresh_world(base: Settings, endpoints: Endpoints, name: str) -> Settings:
    """Settings with topics, groups and schemas no one has used: every side starts from scratch."""
    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={"topic_prefix": f"bench-{tag}-{name}.", "db_schema_prefix": f"bench_{tag}_{name}_"}
    )
    await apply_catalogue(settings, endpoints.kafka_bootstrap)
    return settings


async def drop_schemas(endpoints: Endpoints, schemas: Iterable[str]) -> None:
    """A bench's schemas, gone when it is done with them (its topics stay: the broker keeps those)."""
    connection = await asyncpg.connect(endpoints.database_url)
    try:
        for schema in schemas:
            await connection.execute(f'drop schema if exists "{schema}" cascade')
    finally:
        await connection.close()


async def drop_topics(settings: Settings, endpoints: Endpoints) -> None:
    """A world's topics, deleted when a bench is done with them. Most benches leave theirs to the
    broker, but one that makes many worlds (backlog.py: eleven a run) fills the embedded Apache
    Kafka's 512 MB heap with partitions: at about 14,000 it ran out of memory."""
    if not settings.topic_prefix.startswith("bench-"):
        raise ValueError(f"not a bench's world: {settings.topic_prefix!r}")
    async with admin_client(settings, endpoints.kafka_bootstrap) as admin:
        if topics := await topics_under(admin, settings.topic_prefix):
            await admin.delete_topics(topics)


class ServiceProcess:
    """A service in a process of its own, pointed at the bench's broker, database and prefixes.

    Its metrics endpoint picks a free port: a bench runs several of these at once. Its warnings
    go to the bench's stderr, or as JSON lines to ``log``, for a bench that counts them.
    ``environment`` holds further settings (``XBUS_...``) a bench needs the process to run with.
    """

    def __init__(
        self,
        settings: Settings,
        endpoints: Endpoints,
        command: list[str],
        log: Path | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self._command = command
        self._log = log
        self._env = {
            **child_environment(settings, endpoints.kafka_bootstrap, endpoints.database_url),
            "XBUS_LOG_LEVEL": "warning",
            "XBUS_METRICS_PORT": "0",
            **({"XBUS_LOG_FORMAT": "json"} if log else {}),
            **(environment or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self._log is None:
            self._process = subprocess.Popen(self._command, env=self._env, cwd=ROOT)
            return
        with self._log.open("ab") as log:  # the child keeps its own copy of the descriptor
            self._process = subprocess.Popen(self._command, env=self._env, cwd=ROOT, stdout=log, stderr=log)

    def signal_stop(self) -> None:
        """SIGTERM: the service finishes its batches under way and leaves its group."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        assert self._process is not None
        self._process.wait(timeout=STOP_SECONDS)

    def exited(self) -> bool:
        """Whether the process has ended: a bench that waits for it to drain stops waiting then."""
        return self._process is not None and self._process.poll() is not None

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.signal_stop()
        self.wait()


def xbus_run(service: str) -> list[str]:
    """The command that runs ``service`` as production does (a name, or ``module:attribute``)."""
    return [sys.executable, "-m", "xbus", "run", service]


@dataclass(frozen=True)
class Logged:
    """A warning or error a process logged: the services' own word on where time went (batches
    split for making no progress, deadlocks retried)."""

    at: float
    process: str
    event: str
    #: The class of the error it names, if any (``DeadlockDetectedError``): which failure was retried.
    error: str = ""


@dataclass
class Started:
    """Processes a bench started: whether any has ended, and (once they are stopped) what they logged."""

    processes: dict[str, ServiceProcess]
    warnings: list[Logged]

    def exited(self) -> list[str]:
        """The names of those that have ended (a service that fails at start-up ends at once)."""
        return [name for name, process in self.processes.items() if process.exited()]


@contextlib.asynccontextmanager
async def started_processes(
    settings: Settings,
    endpoints: Endpoints,
    commands: Mapping[str, list[str]],
    environment: Mapping[str, str] | None = None,
) -> AsyncIterator[Started]:
    """``commands`` each in a process of its own, logging JSON to a file; all stopped at the end,
    together, and then what they logged is in ``warnings``."""
    with tempfile.TemporaryDirectory(prefix="bench-services-") as logs:
        processes = {
            name: ServiceProcess(settings, endpoints, command, Path(logs, f"{name}.log"), environment)
            for name, command in commands.items()
        }
        started = Started(processes, [])
        try:
            for process in processes.values():
                process.start()
            yield started
        finally:
            for process in processes.values():
                process.signal_stop()
            for process in processes.values():
                await asyncio.to_thread(process.wait)
            for name in processes:
                started.warnings.extend(logged(name, Path(logs, f"{name}.log")))


def logged(process: str, log: Path) -> Iterator[Logged]:
    """The warnings and errors of a process's JSON log; a line that is not JSON (a traceback) counts as one."""
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            yield Logged(time.time(), process, "(a line that is not JSON)")
            continue
        if entry.get("level") in ("warning", "error", "critical"):
            at = dt.datetime.fromisoformat(entry["timestamp"]).timestamp()
            yield Logged(at, process, entry["event"], str(entry.get("error", "")).split("(", 1)[0])


def tally(
    warnings: list[Logged], since: float, until: float = float("inf"), *, errors: bool = False
) -> dict[str, dict[str, int]]:
    """Process -> warning -> how many, logged between ``since`` and ``until`` (epoch seconds); with
    ``errors``, a warning that names an error is counted by that error's class too."""
    counts: dict[str, Counter[str]] = {}
    for entry in warnings:
        if since <= entry.at < until:
            said = f"{entry.event} ({entry.error})" if errors and entry.error else entry.event
            counts.setdefault(entry.process, Counter())[said] += 1
    return {process: dict(events) for process, events in sorted(counts.items())}


def echo_command(inputs: Sequence[str], follow_up: str, group: str) -> list[str]:
    """The command that runs one EchoService (catalogue topic names; the prefix comes from the settings)."""
    return [sys.executable, str(Path(__file__).resolve()), "--group", group, "--to", follow_up, *inputs]


class EchoService:
    """The latency baseline: the least any service that answers each event with a follow-up must
    do on this broker, with none of the runtime and no database.

    A consumer group member with the runner's settings (fetch wait, session) reads the input
    topics; per poll it sends one record per event to the follow-up topic, keyed like the event,
    with the relay's producer (acks=all, no linger), waits for the acknowledgements and commits
    the offsets. A service's latency over this one is what its transaction, its outbox and its
    relay cost.
    """

    def __init__(self, settings: Settings, bootstrap: str, inputs: Sequence[str], follow_up: str, group: str) -> None:
        self._settings = settings
        self._bootstrap = bootstrap
        self._inputs = [settings.topic(name) for name in inputs]
        self._follow_up = settings.topic(follow_up)
        self._group = settings.group(group)

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            *self._inputs, **await group_member_options(self._settings, self._bootstrap, self._group)
        )
        await consumer.start()
        try:
            async with acks_all_producer(self._settings, self._bootstrap, linger_ms=0) as producer:
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
                    sent = [
                        await producer.send(self._follow_up, b"{}", key=record.key)
                        for records in batches.values()
                        for record in records
                    ]
                    if sent:
                        await asyncio.gather(*sent)
                        await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
        finally:
            await consumer.stop()


async def read_as_downstream(
    settings: Settings,
    endpoints: Endpoints,
    topic: str,
    arrive: Callable[[list[ConsumerRecord[bytes, bytes]]], None],
    stop: asyncio.Event,
) -> None:
    """Hand every record of ``topic`` (a catalogue name) to ``arrive`` until ``stop`` is set, read as
    a downstream service would, with a short fetch wait so that the probe's own share of a latency
    figure stays small."""
    consumer = AIOKafkaConsumer(
        **client_options(settings, endpoints.kafka_bootstrap),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    try:
        # from the admin client: a group-less consumer's metadata names only topics it was told of on
        # Apache Kafka (Tansu's names every topic)
        async with admin_client(settings, endpoints.kafka_bootstrap) as admin:
            consumer.assign(await topic_partitions(admin, settings.topic(topic)))
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=50)).values():
                arrive(records)
    finally:
        await consumer.stop()


def percentiles(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    if not ordered:
        return {}

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": round(ordered[-1], 1)}


async def serve_echo(inputs: Sequence[str], follow_up: str, group: str) -> None:
    """An echo's process: settings from XBUS_* as ServiceProcess sets them; SIGTERM stops it."""
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await EchoService(settings, settings.kafka_bootstrap or "", inputs, follow_up, group).run(stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one echo service of a latency bench's baseline")
    parser.add_argument("--group", required=True, help="its consumer group (prefixed like the topics)")
    parser.add_argument("--to", required=True, help="the catalogue topic it answers on")
    parser.add_argument("inputs", nargs="+", help="the catalogue topics it reads")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as `xbus run` does
        runner.run(serve_echo(args.inputs, args.to, args.group))
