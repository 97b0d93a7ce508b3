"""The consumer runtime against a hand-written aiokafka + asyncpg consumer, and its follow-up latency.

Throughput: a ServiceRunner running the logins test service (a row per UserCreated and one
LoginProvisioned follow-up; tests/support/logins_service.py) against a raw consumer doing the
same writes with none of the runtime's machinery, each reading the same pre-published events
from scratch (its own topics, consumer group and PostgreSQL schema). Both are clocked from their
first applied event to their last, rounds alternate which side goes first, and the median of the
rounds is reported with the ratio (target >= 0.7): the ratio is what the runtime's guarantees
(envelope checks, dedup, dead-letter and parking checks, savepoints, its relay) cost.

Latency: the same service run by `xbus run` in a process of its own, as in production, fed a
steady rate of UserCreated while a probe here times each event from the call that publishes it
to the arrival of its LoginProvisioned follow-up (target p99 <= 50 ms). The probe's own Kafka
settings (linger 1 ms, fetch wait 5 ms) keep its share of the figure small; a per-stage
breakdown from PostgreSQL and record timestamps shows where the rest goes. The same probe first
times a baseline in this run: EchoService, a bare aiokafka consumer that answers each event with
a record and has no database (what no service on this broker and machine can beat); the ratio
of the two p99s is what the runtime's transaction, outbox and relay add.

Contention: with ``--hog N`` the latency part runs twice, on a quiet machine and then beside N
busy-loop processes (each wants a core all the time, as a neighbour's batch job would), and both
rows are printed: the runtime and the echo baseline under the same contention, so the ratio says
how much worse the runtime's transaction, outbox and relay fare than a bare consumer when cores
are scarce.

Usage: python bench/runtime.py [--events N] [--rounds R] [--rate 1000] [--seconds 10] [--hog N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from broker_option import add_broker_option, broker_name, choose_broker
from publish import sample_events  # bench/ is on sys.path when this file runs
from services import (
    MAX_RECORDS,
    ServiceProcess,
    drop_schemas,
    echo_command,
    fresh_world,
    percentiles,
    read_as_downstream,
)

from consumers.runtime.migrations import load_migrations, migrate
from consumers.runtime.runner import ServiceRunner
from consumers.runtime.service import Service
from infrastructure.brokers import group_member_options
from infrastructure.catalogue import Catalogue
from infrastructure.endpoints import Endpoints, connect, load_catalogue
from infrastructure.logs import configure_logging
from infrastructure.settings import Settings, load_settings
from producers import Published, Publisher
from schemas.users import UserCreated

ROOT = Path(__file__).resolve().parent.parent
INPUT_TOPIC = "xosp.users"
FOLLOW_UP_TOPIC = "xosp.authentication.events"
#: What ServiceRunner pools per service; the raw side uses the same (and its MAX_RECORDS per poll).
POOL_SIZE = 8
FOLLOW_UP_IDS = uuid.UUID("0b6f3a52-8d1e-4c7a-9f20-5e4d3c2b1a09")
#: What `xbus run` loads in the latency run's service process (whose working directory is ROOT).
SERVICE_SPEC = "tests.support.logins_service:LOGINS"


def load_service() -> Service:
    """The logins test service; the checkout's root is not on sys.path when this file runs as a script."""
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    module, _, attribute = SERVICE_SPEC.partition(":")
    service = getattr(importlib.import_module(module), attribute)
    assert isinstance(service, Service)
    return service


LOGINS = load_service()


# --- throughput -------------------------------------------------------------------------------


class RawConsumer:
    """What a careful hand-written service would do, and nothing more.

    Per polled batch: one transaction on a pooled connection (as the runner does, and as the
    issue's baseline is defined), and per record an inbox insert, the login row and an outbox row
    carrying the follow-up's JSON and CloudEvents headers; then the offsets are committed. No
    envelope validation, no duplicate, dead-letter or parking checks, no pydantic, no relay: the
    follow-ups stay in the outbox.
    """

    def __init__(self, settings: Settings, bootstrap: str, database_url: str, schema: str) -> None:
        self.applied = 0
        self._settings = settings
        self._bootstrap = bootstrap
        self._database_url = database_url
        self._schema = schema
        self._follow_up_topic = settings.topic(FOLLOW_UP_TOPIC)

    async def run(self, stop: asyncio.Event) -> None:
        pool = await asyncpg.create_pool(
            self._database_url, min_size=1, max_size=POOL_SIZE, server_settings={"search_path": self._schema}
        )
        consumer = AIOKafkaConsumer(
            self._settings.topic(INPUT_TOPIC),
            **await group_member_options(self._settings, self._bootstrap, self._settings.group("bench.raw")),
            max_poll_records=MAX_RECORDS,
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
                if not batches:
                    continue
                await self._apply(pool, [record for records in batches.values() for record in records])
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
                self.applied += sum(len(records) for records in batches.values())
        finally:
            await consumer.stop()
            await pool.close()

    async def _apply(self, pool: asyncpg.Pool, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        async with pool.acquire() as connection, connection.transaction():
            for record in records:
                headers = dict(record.headers)
                event_id = headers["ce_id"].decode()
                event = json.loads(record.value or b"")
                await connection.execute(
                    'insert into xbus_inbox (event_id, topic, partition, "offset") values ($1, $2, $3, $4)',
                    event_id,
                    record.topic,
                    record.partition,
                    record.offset,
                )
                await connection.execute(
                    "insert into logins (login_id, username, display_name, status) values ($1, $2, $3, 'active')",
                    event["login_id"],
                    event["username"],
                    event["display_name"],
                )
                follow_up = json.dumps({"login_id": event["login_id"], "username": event["username"]})
                follow_up_headers = [
                    ["ce_specversion", "1.0"],
                    ["ce_id", str(uuid.uuid5(FOLLOW_UP_IDS, event_id))],
                    ["ce_source", "bench/raw"],
                    ["ce_type", "xosp.login.provisioned.v1"],
                    ["ce_time", headers["ce_time"].decode()],
                    ["ce_subject", event["login_id"]],
                    ["ce_correlationid", headers["ce_correlationid"].decode()],
                    ["ce_causationid", event_id],
                    ["content-type", "application/json"],
                ]
                await connection.execute(
                    "insert into xbus_outbox (topic, key, value, headers) values ($1, $2, $3, $4::jsonb)",
                    self._follow_up_topic,
                    record.key,
                    follow_up.encode(),
                    json.dumps(follow_up_headers),
                )


async def publish_all(
    settings: Settings, endpoints: Endpoints, catalogue: Catalogue, events: list[UserCreated]
) -> None:
    async with Publisher(settings, endpoints.kafka_bootstrap, catalogue) as publisher:
        results = await publisher.publish_many(events)
    failed = [r for r in results if not isinstance(r, Published)]
    if failed:
        raise SystemExit(f"{len(failed)} events failed to publish: {failed[0]}")


async def clocked(applied: Callable[[], int], count: int, worker: asyncio.Task[None]) -> float:
    """Events/s from the first applied event to the last, read from the side's own counter.

    The first batch is left out of the figure: the clock starts when it is seen, which keeps the
    group join (seconds on the embedded broker) out of both sides alike.
    """
    while applied() == 0:
        await _tick(worker)
    first, started = applied(), time.perf_counter()
    while applied() < count:
        await _tick(worker)
    return (count - first) / (time.perf_counter() - started)


async def _tick(worker: asyncio.Task[None]) -> None:
    if worker.done():
        worker.result()  # raises what stopped it
        raise SystemExit("the consumer stopped before applying every event")
    await asyncio.sleep(0.002)


async def runner_round(settings: Settings, endpoints: Endpoints, catalogue: Catalogue, count: int) -> float:
    runner = ServiceRunner(LOGINS, settings, catalogue, endpoints.kafka_bootstrap, endpoints.database_url)
    await runner.migrate()
    stop = asyncio.Event()
    worker = asyncio.create_task(runner.run(stop))
    try:
        return await clocked(lambda: runner.stats.applied, count, worker)
    finally:
        stop.set()
        await worker


async def raw_round(settings: Settings, endpoints: Endpoints, count: int) -> float:
    schema = settings.db_schema(LOGINS.name)
    connection = await asyncpg.connect(endpoints.database_url)
    try:  # the very tables and indexes the runner's side gets
        await migrate(connection, schema, load_migrations(LOGINS.migrations))
    finally:
        await connection.close()
    raw = RawConsumer(settings, endpoints.kafka_bootstrap, endpoints.database_url, schema)
    stop = asyncio.Event()
    worker = asyncio.create_task(raw.run(stop))
    try:
        return await clocked(lambda: raw.applied, count, worker)
    finally:
        stop.set()
        await worker


async def throughput(base: Settings, endpoints: Endpoints, count: int, rounds: int) -> dict[str, object]:
    catalogue = load_catalogue(base)
    events = sample_events(count)
    raw_rates: list[float] = []
    runner_rates: list[float] = []
    for index in range(rounds):
        raw_settings = await fresh_world(base, endpoints, "raw")
        runner_settings = await fresh_world(base, endpoints, "runner")
        for settings in (raw_settings, runner_settings):
            await publish_all(settings, endpoints, catalogue, events)
        if index % 2 == 0:  # alternate who goes first, so that drift in the machine hits both alike
            raw_rate = await raw_round(raw_settings, endpoints, count)
            runner_rate = await runner_round(runner_settings, endpoints, catalogue, count)
        else:
            runner_rate = await runner_round(runner_settings, endpoints, catalogue, count)
            raw_rate = await raw_round(raw_settings, endpoints, count)
        raw_rates.append(raw_rate)
        runner_rates.append(runner_rate)
        print(
            f"round {index + 1}/{rounds}: raw {raw_rate:,.0f}/s  runner {runner_rate:,.0f}/s  "
            f"ratio {runner_rate / raw_rate:.2f}",
            flush=True,
        )
        for settings in (raw_settings, runner_settings):
            await drop_schemas(endpoints, [settings.db_schema(LOGINS.name)])
    raw, ours = statistics.median(raw_rates), statistics.median(runner_rates)
    return {
        "events": count,
        "rounds": rounds,
        "raw_consumer_per_s": round(raw),
        "runner_per_s": round(ours),
        "ratio": round(ours / raw, 3),
        "round_ratios": [round(r / b, 2) for r, b in zip(runner_rates, raw_rates, strict=True)],
    }


# --- latency ----------------------------------------------------------------------------------


@dataclass
class Probe:
    """Send times of the events in flight, and the arrival of their follow-ups, by login id."""

    sent: dict[str, float] = field(default_factory=dict)
    sent_wall: dict[str, float] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)
    #: The follow-up record's timestamp (its CreateTime: when the relay handed it to its producer).
    relayed_wall: dict[str, float] = field(default_factory=dict)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    def expect(self, count: int) -> None:
        self.expected, self.received = count, asyncio.Event()
        if len(self.arrived) >= count:
            self.received.set()

    def arrive(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        now = time.perf_counter()
        for record in records:
            login = (record.key or b"").decode()
            if login in self.sent and login not in self.arrived:
                self.arrived[login] = now
                self.relayed_wall[login] = record.timestamp / 1000
        if len(self.arrived) >= self.expected:
            self.received.set()


#: The service under test in the latency run: the logins service under `xbus run`, as in production.
RUNTIME_COMMAND = [sys.executable, "-m", "xbus", "run", SERVICE_SPEC]
#: The latency run's baseline: EchoService (services.py), in a process of its own too.
ECHO_COMMAND = echo_command([INPUT_TOPIC], FOLLOW_UP_TOPIC, "bench.echo")


async def paced(publisher: Publisher, probe: Probe, events: list[UserCreated], rate: int) -> dict[str, str]:
    """Publish ``events`` at ``rate``/s, every 10 ms what is due; returns event id -> login id.

    What is due is computed from the clock, not counted in ticks, so a slow acknowledgement delays
    one batch but not the rate; each event's send time is taken just before its batch goes out.
    """
    ids: dict[str, str] = {}
    started = time.perf_counter()
    sent = 0
    while sent < len(events):
        due = min(len(events), int((time.perf_counter() - started) * rate) + 1)
        batch = events[sent:due]
        now, wall = time.perf_counter(), time.time()
        for event in batch:
            probe.sent[event.login_id] = now
            probe.sent_wall[event.login_id] = wall
        for result, event in zip(await publisher.publish_many(batch), batch, strict=True):
            if not isinstance(result, Published):
                raise SystemExit(f"publishing failed: {result}")
            ids[result.event_id] = event.login_id
        sent = due
        next_tick = started + (int((time.perf_counter() - started) / 0.01) + 1) * 0.01
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    return ids


async def latency(base: Settings, endpoints: Endpoints, rate: int, seconds: float) -> dict[str, object]:
    """The runtime's figures and the echo baseline's, measured one after the other in this run."""
    echo = await timed_follow_ups(base, endpoints, rate, seconds, ECHO_COMMAND, stages=False)
    runtime = await timed_follow_ups(base, endpoints, rate, seconds, RUNTIME_COMMAND, stages=True)
    runtime_p99 = runtime["publish_to_follow_up"]["p99_ms"]  # type: ignore[index]
    echo_p99 = echo["publish_to_follow_up"]["p99_ms"]  # type: ignore[index]
    return {"runtime": runtime, "echo_baseline": echo, "p99_ratio": round(runtime_p99 / echo_p99, 2)}


async def timed_follow_ups(
    base: Settings, endpoints: Endpoints, rate: int, seconds: float, command: list[str], *, stages: bool
) -> dict[str, object]:
    """Publish at ``rate`` to the service ``command`` starts and time each event's follow-up; with
    ``stages`` (the logins service, whose inbox and relay timestamps say when), where it went."""
    settings = await fresh_world(base, endpoints, "latency")
    catalogue = load_catalogue(settings)
    warm_up, measured = 200, int(rate * seconds)
    events = sample_events(warm_up + measured)
    probe = Probe()
    stop = asyncio.Event()
    reader = asyncio.create_task(read_as_downstream(settings, endpoints, FOLLOW_UP_TOPIC, probe.arrive, stop))
    try:
        with ServiceProcess(settings, endpoints, command):
            async with Publisher(settings, endpoints.kafka_bootstrap, catalogue, linger_ms=1) as publisher:
                # Caught up: the service has joined its group, applied these and relayed their follow-ups.
                probe.expect(warm_up)
                await paced(publisher, probe, events[:warm_up], rate)
                await asyncio.wait_for(probe.received.wait(), timeout=120)
                probe.expect(warm_up + measured)
                ids = await paced(publisher, probe, events[warm_up:], rate)
                with contextlib.suppress(TimeoutError):  # what never arrives is reported as missing
                    await asyncio.wait_for(probe.received.wait(), timeout=30)
    finally:
        stop.set()
        await reader
    logins = [event.login_id for event in events[warm_up:]]
    totals = [(probe.arrived[login] - probe.sent[login]) * 1000 for login in logins if login in probe.arrived]
    figures: dict[str, object] = {
        "rate_per_s": rate,
        "seconds": seconds,
        "events": measured,
        "missing": measured - len(totals),
        "publish_to_follow_up": percentiles(totals),
    }
    if stages:
        to_relay = [
            (probe.relayed_wall[login] - probe.sent_wall[login]) * 1000 for login in logins if login in probe.arrived
        ]
        applied = await applied_times(endpoints, settings.db_schema(LOGINS.name), ids)
        to_applied = [(applied[login] - probe.sent_wall[login]) * 1000 for login in logins if login in applied]
        await drop_schemas(endpoints, [settings.db_schema(LOGINS.name)])
        figures["stages"] = {
            "publish_to_transaction_start": percentiles(to_applied),
            "publish_to_relay_send": percentiles(to_relay),
        }
    return figures


async def applied_times(endpoints: Endpoints, schema: str, logins: dict[str, str]) -> dict[str, float]:
    """When each event's transaction began (``now()`` of its inbox row), by login id."""
    connection = await asyncpg.connect(endpoints.database_url, server_settings={"search_path": schema})
    try:
        rows = await connection.fetch("select event_id, extract(epoch from applied_at)::float8 as at from xbus_inbox")
    finally:
        await connection.close()
    return {logins[row["event_id"]]: row["at"] for row in rows if row["event_id"] in logins}


@contextlib.contextmanager
def hogs(count: int) -> Iterator[None]:
    """``count`` processes that each spin on a core for as long as the block runs."""
    spinning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for process in spinning:
            process.kill()
            process.wait()


async def main(count: int, rounds: int, rate: int, seconds: float, hog: int) -> None:
    base = load_settings()
    # The runner's per-round start/stop lines would bury the figures; XBUS_LOG_LEVEL brings them back.
    configure_logging(base.log_format, base.log_level if "XBUS_LOG_LEVEL" in os.environ else "warning")
    endpoints = await connect(base)
    broker = broker_name(endpoints)
    if rounds:
        print(
            json.dumps({"broker": broker, "throughput": await throughput(base, endpoints, count, rounds)}), flush=True
        )
    print(json.dumps({"broker": broker, "latency": await latency(base, endpoints, rate, seconds)}), flush=True)
    if hog:
        with hogs(hog):
            figures = await latency(base, endpoints, rate, seconds)
        print(json.dumps({"broker": broker, "hogs": hog, "latency": figures}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds; 0 runs the latency part alone")
    parser.add_argument("--rate", type=int, default=1_000, help="events/s published in the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument("--hog", type=int, default=0, help="run the latency part again beside N busy-loop processes")
    add_broker_option(parser)
    args = parser.parse_args()
    choose_broker(args)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as `xbus run` does
        runner.run(main(args.events, args.rounds, args.rate, args.seconds, args.hog))
