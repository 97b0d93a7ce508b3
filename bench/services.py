"""What the latency benches share: fresh worlds, services in processes of their own, the echo baseline.

`runtime.py` times one service against one echo; `flows.py` times the whole provisioning job
against a chain of echoes. Both start what they measure as production does, each service in a
process of its own, and both measure their baseline with the same EchoService, so that the two
benches' floors are the same thing.

Run as a script, this file is one echo of such a chain (ServiceProcess gives it its settings):

    python bench/services.py --group bench.echo --to FOLLOW_UP_TOPIC INPUT_TOPIC [INPUT_TOPIC...]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from infrastructure.brokers import group_member_options
from infrastructure.endpoints import Endpoints, apply_catalogue
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


class ServiceProcess:
    """A service in a process of its own, pointed at the bench's broker, database and prefixes.

    Its metrics endpoint picks a free port: a bench runs several of these at once. Its warnings
    go to the bench's stderr, or as JSON lines to ``log``, for a bench that counts them.
    """

    def __init__(self, settings: Settings, endpoints: Endpoints, command: list[str], log: Path | None = None) -> None:
        self._command = command
        self._log = log
        self._env = {
            **child_environment(settings, endpoints.kafka_bootstrap, endpoints.database_url),
            "XBUS_LOG_LEVEL": "warning",
            "XBUS_METRICS_PORT": "0",
            **({"XBUS_LOG_FORMAT": "json"} if log else {}),
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

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.signal_stop()
        self.wait()


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
