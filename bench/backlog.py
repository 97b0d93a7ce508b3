"""Each provisioning service alone on a backlog of its real input, against runtime.py's trivial service.

Issue 18's target: every service drains a 20,000-event backlog of its input at >= 50 % of the
throughput `runtime.py` measures for its trivial service in the same run. `flows.py` drains all
six services at once, sharing two cores, so its figures cannot judge that; this bench runs each
service alone, on its real input, with that baseline measured in the same run.

1. **The input, made for real.** In a world of its own (topic prefix, groups, schemas), ``--flows``
   flows of the demo's provisioning mix (`flows.provisioning_mix`; by default 28,120, so that
   xosp.users, the input of authentication and sessions and the smallest, holds 20,000 events)
   are published with every service stopped; then all six run together, as in flows.py's backlog
   part, until every flow is announced, every group has read all its input and every outbox is
   sent. The world's topics then hold every service's real input: root events, and the
   follow-ups the services wrote (step events, announcements).
2. **A world per service.** Each service gets a world of its own holding its input topics, copied
   record by record (partition, key, value, headers, timestamp) up to the ends they had after
   step 1, and nothing else. Copies, not a fresh group on the same topics: a service's follow-ups
   go to topics the others read (the tracker reads every step topic; authorisation, the OMS and
   the registry read the tracker's), so a service measured after another would find that one's
   follow-ups appended to its input.
3. **Each service alone.** `xbus run SERVICE` in a process of its own, on a fresh schema and group,
   the whole backlog there before it starts. Clocked from its first transaction (its inbox's
   earliest ``applied_at``, or the first sample that saw a committed offset if that is earlier: a
   first batch of records it has no handler for writes no inbox row), so that start-up, migrations
   and the group join are left out, to the first sample (every 0.1 s) in which its committed
   offsets have reached the end of every input partition. Events/s counts every record of its
   input, those it has no handler for too: it reads them. Its follow-ups are written (outbox and
   relay), but nothing downstream runs.
4. **The baseline, in the same run.** `runtime.py`'s throughput figure for its trivial service,
   its own code (`runtime.runner_round`: the logins test service in a ServiceRunner in this
   process, 20,000 UserCreated, clocked from its first applied batch to its last event), in
   ``--rounds`` rounds spread over the run (first, between services, last); the median is the
   baseline. Beside it, the same trivial service measured as step 3 measures the others (`xbus run`
   in a process of its own, 20,000 UserCreated), which shows how much the two clocks differ.

The provisioning tracker reports a flow still open 300 s after its root event's time as overdue.
Here the tracker reads events minutes old, so every process runs with that limit set to 30 days:
otherwise it would report flows its backlog is about to close, which a backlog of fresh events
never makes it do.

Every world's schemas are dropped and its topics deleted as soon as the bench is done with it:
eleven worlds a run would otherwise pile up on the embedded broker (services.drop_topics says why).

Progress goes to stderr; each measurement is a JSON line on stdout as it ends, and one table
closes the run.

Usage: python bench/backlog.py [--flows 28120] [--rounds 3] [--broker kafka|tansu|auto]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from broker_option import add_broker_option, broker_name, choose_broker
from flows import SERVICES, Probe, flow_over, provisioning_mix, publish, running  # bench/ is on sys.path
from publish import sample_events
from runtime import LOGINS, SERVICE_SPEC, publish_all, runner_round
from services import Logged, drop_schemas, drop_topics, fresh_world, started_processes, tally, xbus_run

from consumers.runtime.discovery import find_services
from consumers.runtime.service import Service
from infrastructure.brokers import broker_traits
from infrastructure.catalogue import Catalogue
from infrastructure.endpoints import Endpoints, connect, load_catalogue
from infrastructure.groups import committed_offsets, partitions_of_topics
from infrastructure.kafka_clients import acks_all_producer, admin_client, plain_consumer
from infrastructure.logs import configure_logging
from infrastructure.offsets import log_end_offsets
from infrastructure.settings import Settings, load_settings
from producers import Publisher
from schemas.users import UserCreated

#: Issue 18: each service's backlog rate over the trivial service's.
TARGET_RATIO = 0.5
#: Flows whose mix puts 20,000 UserCreated on xosp.users (500 users in every 703 flows).
DEFAULT_FLOWS = 28_120
#: The trivial service's input, as runtime.py's default.
TRIVIAL_EVENTS = 20_000
TRIVIAL = "logins (trivial), xbus run"
#: See the module's docstring: the tracker's overdue timer must not fire on minutes-old events.
QUIET_TIMERS = {"XBUS_PROVISIONING_OVERDUE_SECONDS": str(30 * 86_400)}
#: Long enough for a service (or six) to start, migrate and join its group on two busy cores.
START_SECONDS = 180.0
#: A drain that has not moved for this long is given up on (and reported so).
STALL_SECONDS = 120.0
SAMPLE_SECONDS = 0.1
PROGRESS_SECONDS = 5.0


#: When the bench began: progress lines say how far into the run each is.
BEGAN = time.monotonic()


def progress(message: str) -> None:
    """A line on stderr, with the time into the run: the figures go to stdout."""
    print(f"backlog.py [{time.monotonic() - BEGAN:5.0f} s]: {message}", file=sys.stderr, flush=True)


def emit(broker: str, key: str, figures: object) -> None:
    """A measurement as one JSON line on stdout, as soon as it is known (a later failure keeps it)."""
    print(json.dumps({"broker": broker, key: figures}), flush=True)


@dataclass(frozen=True)
class Stack:
    """What every part of the run shares: the settings it began with, the embedded stack, and the
    topic catalogue and services as they were when it began (read once: a topics.yaml edited while
    the bench runs must not change what a later part thinks a service's input is)."""

    base: Settings
    endpoints: Endpoints
    catalogue: Catalogue
    #: The measured services (SERVICES), by name.
    services: Mapping[str, Service]
    #: Whether the broker's ListOffsets answers are true log ends (infrastructure/offsets.py).
    trusted_ends: bool

    def inputs(self, world: Settings, service: Service) -> list[str]:
        """The physical names of ``service``'s input topics in ``world``."""
        return [world.topic(topic) for topic in service.topics(self.catalogue)]


# --- watching something drain -------------------------------------------------------------------


@dataclass(frozen=True)
class Watched:
    """How a watched count went: when it first moved and when it reached its total (epoch seconds;
    ``finished`` is None when it stalled or its process ended first), and where it stood last."""

    first_moved: float | None
    finished: float | None
    done: int
    total: int


async def watch(
    what: str,
    sample: Callable[[], Awaitable[tuple[int, int]]],
    exited: Callable[[], list[str]],
    every: float = SAMPLE_SECONDS,
) -> Watched:
    """Call ``sample`` (done, total) every ``every`` seconds until done reaches total, with a
    progress line every few seconds; give up when nothing moved for STALL_SECONDS (START_SECONDS
    before the first move) or a process it depends on ended."""
    began = last_move = time.time()
    first_moved: float | None = None
    done, total, said = -1, 0, began
    while True:
        now_done, total = await sample()
        at = time.time()
        if now_done != done:
            done, last_move = now_done, at
            if done > 0 and first_moved is None:
                first_moved = at
        if done >= total:
            return Watched(first_moved, at, done, total)
        if ended := exited():
            progress(f"{what}: {', '.join(ended)} ended; giving up at {done:,} of {total:,}")
            return Watched(first_moved, None, done, total)
        if at - last_move > (STALL_SECONDS if first_moved else START_SECONDS):
            progress(f"{what}: no progress for {at - last_move:.0f} s; giving up at {done:,} of {total:,}")
            return Watched(first_moved, None, done, total)
        if at - said >= PROGRESS_SECONDS:
            said = at
            progress(f"{what}: {done:,} of {total:,} ({at - began:.0f} s)")
        await asyncio.sleep(every)


async def group_position(admin: AIOKafkaAdminClient, group: str, ends: Mapping[TopicPartition, int]) -> tuple[int, int]:
    """Records ``group`` has read (committed) of ``ends``' partitions, and how many they hold."""
    committed = await committed_offsets(admin, group, ends)
    return sum(min(committed[tp] or 0, end) for tp, end in ends.items()), sum(ends.values())


async def outbox_position(endpoints: Endpoints, schemas: Sequence[str]) -> tuple[int, int]:
    """Follow-ups these schemas' relays have sent, and how many their outboxes hold."""
    connection = await asyncpg.connect(endpoints.database_url)
    try:
        counts = [
            await connection.fetchrow(f'select count(sent_at) as sent, count(*) as written from "{schema}".xbus_outbox')
            for schema in schemas
        ]
    finally:
        await connection.close()
    return sum(row["sent"] for row in counts), sum(row["written"] for row in counts)


# --- 1. the input, made for real --------------------------------------------------------------


async def provision(stack: Stack, count: int) -> tuple[Settings, dict[str, object]]:
    """``count`` flows published with the services stopped, then all six run together until all
    is provisioned and settled; the world whose topics now hold every service's input."""
    endpoints = stack.endpoints
    world = await fresh_world(stack.base, endpoints, "input")
    flows = provisioning_mix(count)
    probe = Probe(flow_over)
    probe.sent = dict.fromkeys((flow.flow_id for flow in flows), 0.0)
    progress(f"input: publishing {count:,} flows with every service stopped")
    async with Publisher(world, endpoints.kafka_bootstrap, stack.catalogue) as publisher:
        events = await publish(publisher, flows)
    progress(f"input: {events:,} events published; the six services start together and provision them")
    commands = {service: xbus_run(service) for service in SERVICES}
    try:
        async with running(world, endpoints, commands, probe, QUIET_TIMERS) as warnings:
            started = time.time()

            async def over() -> tuple[int, int]:
                return len(probe.arrived), len(probe.sent)

            flows_over = await watch("input: flows over", over, lambda: [])
            settled = await settle(stack, world)
    finally:
        await drop_schemas(endpoints, [world.db_schema(service) for service in SERVICES])
    return world, {
        "flows": count,
        "events": events,
        "missing": len(flows) - len(probe.arrived),
        "failed": sum(outcome == "failed" for outcome in probe.outcomes.values()),
        "all_over_s": round(flows_over.finished - started, 1) if flows_over.finished else None,
        "settled": settled,
        "warnings": tally(warnings, 0.0, errors=True),
    }


async def settle(stack: Stack, world: Settings) -> bool:
    """Wait until every service's group has read all its input and every outbox is sent: the
    topics are then final. Whether they got there."""
    endpoints = stack.endpoints
    schemas = [world.db_schema(name) for name in stack.services]
    async with (
        admin_client(world, endpoints.kafka_bootstrap) as admin,
        plain_consumer(world, endpoints.kafka_bootstrap) as reader,
    ):
        inputs = {
            name: await partitions_of_topics(admin, stack.inputs(world, service))
            for name, service in stack.services.items()
        }

        async def position() -> tuple[int, int]:
            every = sorted({tp for partitions in inputs.values() for tp in partitions})
            ends = await log_end_offsets(reader, every, trusted_ends=stack.trusted_ends)
            read, total = await outbox_position(endpoints, schemas)  # sent of written, then each group's
            for name, partitions in inputs.items():
                group_read, group_total = await group_position(
                    admin, world.group(stack.services[name].group_id), {tp: ends[tp] for tp in partitions}
                )
                read, total = read + group_read, total + group_total
            return read, total

        return (
            await watch("input: every group caught up, every outbox sent", position, lambda: [], 0.5)
        ).finished is not None


# --- 2. a world per service ---------------------------------------------------------------------


async def worlds_for(stack: Stack, source: Settings) -> tuple[dict[str, Settings], Counter[tuple[str, str]]]:
    """A world per service holding copies of its input topics as ``source`` has them; and how many
    records of each event type each (catalogue) topic holds."""
    endpoints = stack.endpoints
    worlds = {name: await fresh_world(stack.base, endpoints, f"alone_{name}") for name in stack.services}
    readers: dict[str, list[str]] = {}
    for name, service in stack.services.items():
        for topic in service.topics(stack.catalogue):
            readers.setdefault(topic, []).append(name)
    types: Counter[tuple[str, str]] = Counter()
    async with (
        admin_client(source, endpoints.kafka_bootstrap) as admin,
        plain_consumer(source, endpoints.kafka_bootstrap) as reader,
        acks_all_producer(source, endpoints.kafka_bootstrap, linger_ms=10, max_batch_size=512 * 1024) as producer,
    ):
        for topic, names in sorted(readers.items()):
            partitions = await partitions_of_topics(admin, [source.topic(topic)])
            ends = await log_end_offsets(reader, partitions, trusted_ends=stack.trusted_ends)
            copied = await copy_topic(reader, producer, ends, [worlds[name].topic(topic) for name in names])
            types.update({(topic, event_type): n for event_type, n in copied.items()})
            progress(f"copies: {topic}, {sum(copied.values()):,} records, for {', '.join(names)}")
    return worlds, types


async def copy_topic(
    reader: AIOKafkaConsumer, producer: AIOKafkaProducer, ends: Mapping[TopicPartition, int], to: Sequence[str]
) -> Counter[str]:
    """Every record of ``ends``' partitions below their ends, sent to the same partition of each
    topic of ``to`` with its key, value, headers and timestamp; records counted by event type."""
    types: Counter[str] = Counter()
    left = {tp: end for tp, end in ends.items() if end > 0}
    if not left:
        return types
    reader.assign(list(left))
    for tp in left:
        reader.seek(tp, 0)
    deadline = time.monotonic() + START_SECONDS
    while left:
        batches = await reader.getmany(*left, timeout_ms=1_000, max_records=5_000)
        if time.monotonic() > deadline:
            raise SystemExit(f"copies: {sorted(left)} not read within {START_SECONDS:.0f} s")
        sends = []
        for tp, records in batches.items():
            for record in records:
                if record.offset >= left[tp]:
                    break
                types[dict(record.headers).get("ce_type", b"").decode()] += 1
                for topic in to:
                    sends.append(
                        await producer.send(
                            topic,
                            record.value,
                            key=record.key,
                            partition=tp.partition,
                            timestamp_ms=record.timestamp,
                            headers=list(record.headers),
                        )
                    )
            if records[-1].offset + 1 >= left[tp]:
                del left[tp]
                reader.pause(tp)
        await asyncio.gather(*sends)
    return types


# --- 3. each service alone ----------------------------------------------------------------------


@dataclass(frozen=True)
class Aftermath:
    """What a service's schema holds after its run: when its first transaction began, what it
    applied and wrote, and anything left unusual."""

    first_applied: float | None
    applied: int
    follow_ups: int
    last_sent: float | None
    dead_letters: int
    parked: int
    pending: int


async def aftermath(endpoints: Endpoints, schema: str) -> Aftermath:
    """What ``schema`` holds (all nothing when the service never got as far as migrating it)."""
    connection = await asyncpg.connect(endpoints.database_url, server_settings={"search_path": schema})
    try:
        if not await connection.fetchval("select to_regclass('xbus_outbox') is not null"):
            return Aftermath(None, 0, 0, None, 0, 0, 0)
        inbox = await connection.fetchrow(
            "select extract(epoch from min(applied_at))::float8 as first, count(*) as applied from xbus_inbox"
        )
        outbox = await connection.fetchrow(
            "select count(*) as written, extract(epoch from max(sent_at))::float8 as last from xbus_outbox"
        )
        return Aftermath(
            inbox["first"],
            inbox["applied"],
            outbox["written"],
            outbox["last"],
            await connection.fetchval("select count(*) from xbus_dead_letters"),
            await connection.fetchval("select count(*) from xbus_parked"),
            await connection.fetchval("select count(*) from xbus_pending"),
        )
    finally:
        await connection.close()


async def alone(stack: Stack, world: Settings, name: str, service: Service, command: list[str]) -> dict[str, object]:
    """``service`` alone on the backlog its world holds: events/s from its first transaction until
    its committed offsets reach the end of every input partition; then its follow-ups relayed."""
    endpoints = stack.endpoints
    schema = world.db_schema(service.name)
    async with (
        admin_client(world, endpoints.kafka_bootstrap) as admin,
        plain_consumer(world, endpoints.kafka_bootstrap) as reader,
    ):
        partitions = await partitions_of_topics(admin, stack.inputs(world, service))
        ends = await log_end_offsets(reader, partitions, trusted_ends=stack.trusted_ends)
        progress(f"{name}: alone on {sum(ends.values()):,} events")
        async with started_processes(world, endpoints, {name: command}, QUIET_TIMERS) as started:
            drained = await watch(
                name, lambda: group_position(admin, world.group(service.group_id), ends), started.exited
            )
            if drained.finished is not None:
                await watch(f"{name}: relaying", lambda: outbox_position(endpoints, [schema]), started.exited, 0.2)
    after = await aftermath(endpoints, schema)
    await drop_schemas(endpoints, [schema])
    await drop_topics(world, endpoints)
    return figures(sum(ends.values()), drained, after, started.warnings)


def figures(events: int, drained: Watched, after: Aftermath, warnings: list[Logged]) -> dict[str, object]:
    """A service's row: its clock starts at its first transaction (see the module's docstring)."""
    starts = [at for at in (after.first_applied, drained.first_moved) if at is not None]
    started = min(starts) if starts else None
    seconds = drained.finished - started if drained.finished and started else None
    return {
        "input_events": events,
        "read": drained.done,
        "drained": drained.finished is not None,
        "seconds": round(seconds, 2) if seconds else None,
        "per_s": round(events / seconds) if seconds else None,
        "applied": after.applied,
        "follow_ups": after.follow_ups,
        "relayed_s": round(after.last_sent - started, 2) if after.last_sent and started else None,
        "dead_letters": after.dead_letters,
        "parked": after.parked,
        "pending": after.pending,
        "warnings": tally(warnings, 0.0, errors=True),
    }


# --- 4. the baseline ----------------------------------------------------------------------------


async def trivial_round(stack: Stack, events: list[UserCreated]) -> float:
    """One round of runtime.py's throughput figure for its trivial service (its runner side)."""
    world = await fresh_world(stack.base, stack.endpoints, "trivial")
    await publish_all(world, stack.endpoints, stack.catalogue, events)
    try:
        return await runner_round(world, stack.endpoints, stack.catalogue, len(events))
    finally:
        await drop_schemas(stack.endpoints, [world.db_schema(LOGINS.name)])
        await drop_topics(world, stack.endpoints)


async def trivial_world(stack: Stack, events: list[UserCreated]) -> Settings:
    """A world holding ``events`` for the trivial service to drain under `xbus run`, as the others do."""
    world = await fresh_world(stack.base, stack.endpoints, "trivial_run")
    await publish_all(world, stack.endpoints, stack.catalogue, events)
    return world


# --- the run --------------------------------------------------------------------------------------


def baseline_slots(rounds: int, runs: int) -> list[int]:
    """Before which of ``runs`` measurements (``runs``: after the last) each baseline round goes:
    spread evenly, first and last included, so drift in the machine reaches both sides alike."""
    if rounds <= 1:
        return [0] * rounds
    return [round(index * runs / (rounds - 1)) for index in range(rounds)]


def input_of(stack: Stack, service: Service, types: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """Per input topic, its records by event type; those the service has a handler for marked ``*``."""
    topics = set(service.topics(stack.catalogue))
    by_topic: dict[str, dict[str, int]] = {}
    for (topic, event_type), count in sorted(types.items()):
        if topic in topics:
            handled = "*" if event_type in service.by_type else ""
            by_topic.setdefault(topic, {})[f"{event_type}{handled}"] = count
    return by_topic


async def main(flows: int, rounds: int, only: Sequence[str]) -> None:
    base = load_settings()
    # The services' own start/stop lines would bury the figures; XBUS_LOG_LEVEL brings them back.
    configure_logging(base.log_format, base.log_level if "XBUS_LOG_LEVEL" in os.environ else "warning")
    began = time.time()
    endpoints = await connect(base)
    broker = broker_name(endpoints)
    found = find_services()
    stack = Stack(
        base,
        endpoints,
        load_catalogue(base),
        {name: found[name] for name in SERVICES},
        (await broker_traits(base, endpoints.kafka_bootstrap)).true_end_offsets,
    )
    source, made = await provision(stack, flows)
    emit(broker, "input", made)
    worlds, types = await worlds_for(stack, source)
    await drop_topics(source, endpoints)
    events = sample_events(TRIVIAL_EVENTS)
    runs: list[tuple[str, Settings, Service, list[str]]] = [
        *(
            (name, worlds[name], service, xbus_run(name))
            for name, service in stack.services.items()
            if not only or name in only
        ),
        (TRIVIAL, await trivial_world(stack, events), LOGINS, xbus_run(SERVICE_SPEC)),
    ]
    slots = baseline_slots(rounds, len(runs))
    baseline: list[float] = []
    rows: dict[str, dict[str, object]] = {}
    for index in range(len(runs) + 1):
        for _ in range(slots.count(index)):
            progress(f"baseline: runtime.py's trivial service, round {len(baseline) + 1} of {rounds}")
            baseline.append(await trivial_round(stack, events))
            emit(broker, "baseline_round", {"runner_per_s": round(baseline[-1])})
        if index < len(runs):
            name, world, service, command = runs[index]
            rows[name] = await alone(stack, world, name, service, command)
            if name in stack.services:
                rows[name]["input"] = input_of(stack, service, types)
            emit(broker, "alone", {"service": name, **rows[name]})
    trivial = statistics.median(baseline)
    emit(broker, "baseline", {"runner_per_s": round(trivial), "rounds": [round(rate) for rate in baseline]})
    print(table(broker, rows, trivial, baseline, time.time() - began))


# --- the table ------------------------------------------------------------------------------------


def table(
    broker: str, rows: Mapping[str, Mapping[str, object]], trivial: float, rounds: Sequence[float], took: float
) -> str:
    """The run as one markdown table, the way bench/README.md keeps results."""
    lines = [
        f"broker: {broker}; runtime.py's trivial service (ServiceRunner, {TRIVIAL_EVENTS:,} UserCreated): "
        f"{trivial:,.0f} ev/s (median of rounds {', '.join(f'{rate:,.0f}' for rate in rounds)}); "
        f"run took {took / 60:.1f} min",
        "",
        f"| service | input events | handled | seconds | events/s | ratio to trivial (target ≥ {TARGET_RATIO}) "
        "| follow-ups | warnings |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in rows.items():
        lines.append(table_row(name, row, trivial))
    return "\n".join(lines)


def table_row(name: str, row: Mapping[str, object], trivial: float) -> str:
    events, per_s = row["input_events"], row["per_s"]
    assert isinstance(events, int)
    short = " (< 20,000)" if events < TRIVIAL_EVENTS else ""
    if isinstance(per_s, int):
        rate, ratio = f"{per_s:,}", per_s / trivial
        shown = f"{ratio:.3f}" if ratio < TARGET_RATIO <= round(ratio, 2) else f"{ratio:.2f}"  # 0.499 is no 0.50
        verdict = f"**{shown}**: {'met' if ratio >= TARGET_RATIO else 'missed'}"
        seconds = f"{row['seconds']}"
    else:
        rate, verdict, seconds = "-", f"not drained ({row['read']:,} read)", "-"
    unusual = ", ".join(
        f"{row[key]} {key.replace('_', ' ')}" for key in ("dead_letters", "parked", "pending") if row[key]
    )
    return (
        f"| {name} | {events:,}{short} | {row['applied']:,} | {seconds} | {rate} | {verdict} "
        f"| {row['follow_ups']:,}{f'; {unusual}' if unusual else ''} | {said(row['warnings'])} |"
    )


def said(warnings: object) -> str:
    """``{process: {warning: n}}`` as one cell."""
    assert isinstance(warnings, dict)
    counted = [f"{event} ×{n}" for events in warnings.values() for event, n in events.items()]
    return "; ".join(counted) or "none"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=DEFAULT_FLOWS, help="flows of the demo's mix that make the input")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the trivial service's baseline, spread over the run"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SERVICES,
        default=(),
        help="measure only these services alone (step 1 still runs all six to make the input)",
    )
    add_broker_option(parser)
    args = parser.parse_args()
    choose_broker(args)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as `xbus run` does
        runner.run(main(args.flows, args.rounds, args.only))
