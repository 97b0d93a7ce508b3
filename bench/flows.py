"""The real job: the provisioning services, each in a process of its own, fed the demo's mix.

`runtime.py` measures one trivial service; this bench measures what the platform is for. Every
service a provisioning flow waits for runs under `xbus run SERVICE` in a process of its own
(authentication, authorisation, sessions, oms, registry, and the provisioning tracker that
closes the flows; gateway and market_data take part in exchange flows only, which this mix has
none of), on the embedded stack, fed the demo scenario's provisioning mix (`xbus.scenario`:
operators, users, trading accounts with one to three logins, in the demo's proportions and with
its seed; each Prodigy operator's manual step answered at once after its registration, as the
demo answers it). A flow is over when the tracker announces it: `UserProvisioned`,
`OperatorProvisioned` or `TradingAccountProvisioned` on its follow-up topic, keyed by the flow
id, which a probe here reads (`ProvisioningFailed` counts as over, and is reported).

1. **Echo chain.** The baseline, first: as many echo services (`services.EchoService`, no
   database) as the longest flow has hops. Here that is two (root event -> the service that
   takes a step -> the tracker, whose announcement is the end): the first echo reads the three
   root topics and answers on a step topic, the second answers that on the tracker's topic. The
   same flows at the same rate, the same probe.
2. **Root -> completed at a steady rate.** The flows published at ``--rate`` for ``--seconds``
   (every 10 ms what is due), each timed from the call that publishes its root event to the
   probe's receipt of its announcement. p99 over the echo chain's is the figure the issue sets a
   target for (<= 2).
3. **Flows per second at saturation.** With the same services still running, ``--flows`` more
   flows published in one go; the time until the last is announced.
4. **Each service's backlog.** In a world of its own, ``--backlog`` flows published with every
   service stopped; then all are started, and each group's committed offsets sampled until every
   flow is over and every group has read all its input. Per service: from its first
   transaction (its inbox's earliest ``applied_at``) until its share of the root topics (the
   backlog) is read, and until its whole input is (it also reads follow-ups written meanwhile,
   which it cannot read faster than they are written).

Usage: python bench/flows.py [--flows 300] [--rate 20] [--seconds 20] [--backlog 6000] [--broker kafka|tansu|auto]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
import hops  # bench/ is on sys.path
import uvloop
from aiokafka import ConsumerRecord, TopicPartition
from broker_option import add_broker_option, broker_name, choose_broker
from services import (  # bench/ is on sys.path
    Logged,
    drop_schemas,
    drop_topics,
    echo_command,
    fresh_world,
    percentiles,
    read_as_downstream,
    started_processes,
    tally,
    xbus_run,
)

from consumers.provisioning.flows import STARTERS
from consumers.runtime.discovery import find_services
from infrastructure.brokers import broker_traits
from infrastructure.endpoints import Endpoints, connect, load_catalogue
from infrastructure.groups import committed_offsets, partitions_of_topics
from infrastructure.kafka_clients import admin_client, plain_consumer
from infrastructure.logs import configure_logging
from infrastructure.offsets import log_end_offsets
from infrastructure.settings import Settings, load_settings
from producers import Outgoing, Published, Publisher
from schemas.accounts import TradingAccountOpened
from schemas.operators import ManualActionCompleted
from schemas.provisioning import (
    FlowKind,
    OperatorProvisioned,
    ProvisioningFailed,
    TradingAccountProvisioned,
    UserProvisioned,
)
from xbus.demo import SEED
from xbus.scenario import build_scenario

#: The services the mix's flows wait for, the tracker last.
SERVICES = ("authentication", "authorisation", "sessions", "oms", "registry", "provisioning")
TRACKER = "provisioning"
ROOT_TOPICS = ("xosp.users", "xosp.operators", "xosp.accounts")
#: Where the tracker announces each flow's end; the probe reads it.
OUTCOME_TOPIC = "xosp.provisioning.events"
#: The echo chain: (what each echo reads, where it answers). Its length is the longest flow's
#: hops: the root event's service and the tracker.
ECHO_CHAIN: tuple[tuple[tuple[str, ...], str], ...] = (
    (ROOT_TOPICS, "xosp.authentication.events"),
    (("xosp.authentication.events",), OUTCOME_TOPIC),
)
COMPLETED = {event.event_type for event in (UserProvisioned, OperatorProvisioned, TradingAccountProvisioned)}
#: The issue's target for the steady rate: root -> completed p99 at most this many times the echo chain's.
TARGET_RATIO = 2.0
#: Long enough for six services to start, migrate and join their groups on two busy cores.
START_SECONDS = 180.0
#: How long flows still open after the last publish may take before they are reported missing.
DRAIN_SECONDS = 120.0
SAMPLE_SECONDS = 0.1


def progress(message: str) -> None:
    """A line per phase on stderr: the figures go to stdout, one JSON line each."""
    print(f"flows.py: {message}", file=sys.stderr, flush=True)


# --- the mix ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    """A flow's root event, and what a person publishes for it (the Prodigy operator's manual step)."""

    root: Outgoing
    answers: tuple[Outgoing, ...] = ()

    @property
    def flow_id(self) -> str:
        return self.root.event_id or ""

    @property
    def entity(self) -> str:
        """The root event's key, which an echo keeps."""
        return self.root.event.aggregate_id

    @property
    def kind(self) -> str:
        return STARTERS[self.root.event.event_type].value

    @property
    def events(self) -> list[Outgoing]:
        return [self.root, *self.answers]


def provisioning_mix(count: int) -> list[Flow]:
    """``count`` flows in the demo's proportions (3 operators, 500 users, 200 accounts) and seed.

    The demo publishes its shuffled scenario at once; here it is cut into a warm-up, a steady
    part and a saturating part, so each stretch of the order must hold the same mix, and an
    account must not come before a login it names: paced, it would wait for that login's turn,
    and its latency would be the order's, not the bus's. So each kind is taken in the demo's
    shuffled order, the one furthest behind its share next, and an account brings its logins
    not yet sent just before it.
    """
    operators = max(1, round(count * 3 / 703))
    accounts = round(count * 200 / 703)
    scenario = build_scenario(operators, count - operators - accounts, accounts, seed=SEED)
    answers = {
        outgoing.event.flow_id: (outgoing,)
        for outgoing in scenario.manual_actions
        if isinstance(outgoing.event, ManualActionCompleted)
    }
    users = {outgoing.event.aggregate_id: outgoing for outgoing in scenario.users}
    shuffled = scenario.shuffled(seed=1)
    pending = {
        kind: deque(outgoing for outgoing in shuffled if STARTERS.get(outgoing.event.event_type) is kind)
        for kind in (FlowKind.USER, FlowKind.OPERATOR, FlowKind.ACCOUNT)
    }
    shares = {kind: len(queue) for kind, queue in pending.items()}
    taken: Counter[FlowKind] = Counter()
    ordered: list[Flow] = []

    def take(outgoing: Outgoing, kind: FlowKind) -> None:
        ordered.append(Flow(outgoing, answers.get(outgoing.event_id or "", ())))
        taken[kind] += 1

    sent: set[str] = set()
    while any(pending.values()):
        kind = min((kind for kind, queue in pending.items() if queue), key=lambda kind: taken[kind] / shares[kind])
        outgoing = pending[kind].popleft()
        if outgoing.event_id in sent:
            continue  # a login an account brought ahead of its turn
        if isinstance(outgoing.event, TradingAccountOpened):
            for login in outgoing.event.logins:
                if users[login.login_id].event_id not in sent:
                    sent.add(users[login.login_id].event_id or "")
                    take(users[login.login_id], FlowKind.USER)
        sent.add(outgoing.event_id or "")
        take(outgoing, kind)
    return ordered


# --- the probe --------------------------------------------------------------------------------


#: What a record on the watched topic answers: (key, outcome), or None for a record that ends nothing.
Answer = Callable[[ConsumerRecord[bytes, bytes]], tuple[str, str] | None]


def flow_over(record: ConsumerRecord[bytes, bytes]) -> tuple[str, str] | None:
    """The tracker's announcements, by flow id (its follow-up topic is keyed by flow id)."""
    event_type = dict(record.headers).get("ce_type", b"").decode()
    if event_type in COMPLETED:
        return (record.key or b"").decode(), "completed"
    if event_type == ProvisioningFailed.event_type:
        return (record.key or b"").decode(), "failed"
    return None


def echoed(record: ConsumerRecord[bytes, bytes]) -> tuple[str, str] | None:
    """The last echo's answer, by the root event's key."""
    return (record.key or b"").decode(), "echoed"


@dataclass
class Probe:
    """When each key was published, and when what ends it arrived (and how it ended)."""

    answer: Answer
    sent: dict[str, float] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)

    def arrive(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        now = time.perf_counter()
        for record in records:
            answered = self.answer(record)
            if answered is not None and answered[0] in self.sent and answered[0] not in self.arrived:
                self.arrived[answered[0]] = now
                self.outcomes[answered[0]] = answered[1]

    async def answered(self, timeout: float) -> bool:
        """Whether every key sent so far is answered within ``timeout`` seconds."""
        deadline = time.perf_counter() + timeout
        while len(self.arrived) < len(self.sent):
            if time.perf_counter() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    endpoints: Endpoints,
    commands: dict[str, list[str]],
    probe: Probe,
    environment: Mapping[str, str] | None = None,
) -> AsyncIterator[list[Logged]]:
    """``commands`` each in a process of its own (with ``environment``'s further settings) and the
    probe watching; all stopped at the end, together, and then what they logged is in the list yielded."""
    stop = asyncio.Event()
    reader = asyncio.create_task(read_as_downstream(settings, endpoints, OUTCOME_TOPIC, probe.arrive, stop))
    try:
        async with started_processes(settings, endpoints, commands, environment) as started:
            yield started.warnings
    finally:
        stop.set()
        await reader


# --- publishing -------------------------------------------------------------------------------


async def publish(publisher: Publisher, flows: Sequence[Flow]) -> int:
    """Every event of ``flows`` in one `publish_many`; how many."""
    events = [event for flow in flows for event in flow.events]
    failed = [r for r in await publisher.publish_many(events) if not isinstance(r, Published)]
    if failed:
        raise SystemExit(f"{len(failed)} events failed to publish: {failed[0]}")
    return len(events)


async def paced(
    publisher: Publisher, probe: Probe, flows: Sequence[Flow], rate: int, key: Callable[[Flow], str]
) -> None:
    """Publish ``flows`` at ``rate``/s, every 10 ms what is due, as runtime.py does.

    What is due is computed from the clock, so a slow acknowledgement delays one batch, not the
    rate; each flow's send time is taken just before its batch goes out.
    """
    started = time.perf_counter()
    sent = 0
    while sent < len(flows):
        due = min(len(flows), int((time.perf_counter() - started) * rate) + 1)
        now = time.perf_counter()
        for flow in flows[sent:due]:
            probe.sent[key(flow)] = now
        await publish(publisher, flows[sent:due])
        sent = due
        next_tick = started + (int((time.perf_counter() - started) / 0.01) + 1) * 0.01
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))


# --- steady rate and saturation ---------------------------------------------------------------


async def at_rate(
    what: str,
    publisher: Publisher,
    probe: Probe,
    warm_up: Sequence[Flow],
    measured: Sequence[Flow],
    rate: int,
    key: Callable[[Flow], str],
) -> tuple[dict[str, object], float]:
    """Root -> end of ``measured`` at ``rate``, after ``warm_up`` has come back (every process
    started and joined); and when the measured part began (epoch seconds)."""
    progress(f"{what}: warm-up, {len(warm_up)} flows (the processes start and join their groups)")
    await paced(publisher, probe, warm_up, rate, key)
    if not await probe.answered(START_SECONDS):
        raise SystemExit(f"{what}: the warm-up's flows did not all end within {START_SECONDS:.0f} s")
    progress(f"{what}: {len(measured)} flows at {rate}/s")
    since = time.time()
    await paced(publisher, probe, measured, rate, key)
    await probe.answered(DRAIN_SECONDS)  # what never ends is reported as missing
    keys = [key(flow) for flow in measured]
    by_kind: dict[str, list[float]] = {}
    for flow, flow_key in zip(measured, keys, strict=True):
        if flow_key in probe.arrived:
            by_kind.setdefault(flow.kind, []).append((probe.arrived[flow_key] - probe.sent[flow_key]) * 1000)
    figures: dict[str, object] = {
        "rate_per_s": rate,
        "flows": len(measured),
        "missing": sum(flow_key not in probe.arrived for flow_key in keys),
        "failed": sum(probe.outcomes.get(flow_key) == "failed" for flow_key in keys),
        "root_to_end": percentiles([ms for values in by_kind.values() for ms in values]),
        "by_kind": {kind: {"flows": len(values), **percentiles(values)} for kind, values in sorted(by_kind.items())},
    }
    return figures, since


async def echo_chain(
    base: Settings, endpoints: Endpoints, warm_up: Sequence[Flow], measured: Sequence[Flow], rate: int
) -> dict[str, object]:
    """The baseline: the same root events at the same rate through the echo chain."""
    settings = await fresh_world(base, endpoints, "echo")
    commands = {
        f"echo {hop}": echo_command(inputs, answer, f"bench.echo.{hop}")
        for hop, (inputs, answer) in enumerate(ECHO_CHAIN, start=1)
    }
    probe = Probe(echoed)
    try:
        async with (
            running(settings, endpoints, commands, probe) as warnings,
            Publisher(settings, endpoints.kafka_bootstrap, load_catalogue(settings), linger_ms=1) as publisher,
        ):
            figures, since = await at_rate(
                "echo chain", publisher, probe, warm_up, measured, rate, lambda flow: flow.entity
            )
    finally:
        await drop_topics(settings, endpoints)
    return {"hops": len(ECHO_CHAIN), **figures, "warnings": tally(warnings, since)}


async def the_job(
    base: Settings,
    endpoints: Endpoints,
    warm_up: Sequence[Flow],
    measured: Sequence[Flow],
    saturating: Sequence[Flow],
    rate: int,
) -> tuple[dict[str, object], dict[str, object]]:
    """The services at ``rate``, then, still running, ``saturating`` in one go."""
    settings = await fresh_world(base, endpoints, "flows")
    probe = Probe(flow_over)
    try:
        async with (
            running(settings, endpoints, {service: xbus_run(service) for service in SERVICES}, probe) as warnings,
            Publisher(settings, endpoints.kafka_bootstrap, load_catalogue(settings), linger_ms=1) as publisher,
        ):
            steady, since = await at_rate("flows", publisher, probe, warm_up, measured, rate, lambda flow: flow.flow_id)
            progress(f"saturation: {len(saturating)} flows in one go")
            saturating_since = time.time()
            started = time.perf_counter()
            for flow in saturating:
                probe.sent[flow.flow_id] = started
            events = await publish(publisher, saturating)
            published = time.perf_counter() - started
            await probe.answered(DRAIN_SECONDS)
            ended = [probe.arrived[flow.flow_id] for flow in saturating if flow.flow_id in probe.arrived]
        steady["where_the_time_goes"] = await hops.legs(
            endpoints.database_url,
            [settings.db_schema(service) for service in SERVICES if service != TRACKER],
            settings.db_schema(TRACKER),
            [
                hops.Timed(
                    flow.flow_id, hops.epoch_of(probe.sent[flow.flow_id]), hops.epoch_of(probe.arrived[flow.flow_id])
                )
                for flow in measured
                if flow.flow_id in probe.arrived
            ],
        )
    finally:
        await drop_schemas(endpoints, [settings.db_schema(service) for service in SERVICES])
        await drop_topics(settings, endpoints)
    steady["warnings"] = tally(warnings, since, saturating_since)
    seconds = max(ended) - started if ended else float("nan")
    saturation: dict[str, object] = {
        "flows": len(saturating),
        "events": events,
        "publish_s": round(published, 2),
        "missing": len(saturating) - len(ended),
        "seconds": round(seconds, 2),
        "flows_per_s": round(len(ended) / seconds, 1),
        "warnings": tally(warnings, saturating_since),
    }
    return steady, saturation


# --- backlog ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float
    #: Records the group has read (committed) over all its input partitions.
    read: int
    #: What it has still to read: of all its input, and of the root topics (the backlog).
    lag: int
    root_lag: int


async def backlog(base: Settings, endpoints: Endpoints, count: int) -> dict[str, object]:
    """``count`` flows published with the services stopped; each group sampled while they drain it."""
    settings = await fresh_world(base, endpoints, "backlog")
    catalogue = load_catalogue(settings)
    services = {name: service for name, service in find_services().items() if name in SERVICES}
    flows = provisioning_mix(count)
    probe = Probe(flow_over)
    progress(f"backlog: {count} flows published with the services stopped")
    async with Publisher(settings, endpoints.kafka_bootstrap, catalogue) as publisher:
        for flow in flows:
            probe.sent[flow.flow_id] = 0.0
        events = await publish(publisher, flows)
    roots = {settings.topic(topic) for topic in ROOT_TOPICS}
    trusted = (await broker_traits(settings, endpoints.kafka_bootstrap)).true_end_offsets
    samples: dict[str, list[Sample]] = {name: [] for name in services}
    try:
        async with (
            admin_client(settings, endpoints.kafka_bootstrap) as admin,
            plain_consumer(settings, endpoints.kafka_bootstrap) as reader,
        ):
            inputs = {
                name: await partitions_of_topics(admin, [settings.topic(t) for t in service.topics(catalogue)])
                for name, service in services.items()
            }
            every = sorted({tp for partitions in inputs.values() for tp in partitions})
            root_backlog = await log_end_offsets(
                reader, [tp for tp in every if tp.topic in roots], trusted_ends=trusted
            )
            progress(f"backlog: {events} events; the services start and drain it")
            services_started = time.time()
            commands = {service: xbus_run(service) for service in SERVICES}
            async with running(settings, endpoints, commands, probe) as warnings:
                deadline = time.monotonic() + START_SECONDS + DRAIN_SECONDS + count / 10
                while time.monotonic() < deadline:
                    ends = await log_end_offsets(reader, every, trusted_ends=trusted)
                    at = time.time()
                    for name, service in services.items():
                        offsets = await committed_offsets(admin, settings.group(service.group_id), inputs[name])
                        samples[name].append(sampled(at, offsets, ends, roots))
                    if len(probe.arrived) == len(flows) and all(group[-1].lag == 0 for group in samples.values()):
                        break
                    await asyncio.sleep(SAMPLE_SECONDS)
        first = await first_transactions(endpoints, {name: settings.db_schema(name) for name in services})
    finally:
        await drop_schemas(endpoints, [settings.db_schema(service) for service in SERVICES])
        await drop_topics(settings, endpoints)
    return {
        "flows": count,
        "events": events,
        "missing": len(flows) - len(probe.arrived),
        "failed": sum(outcome == "failed" for outcome in probe.outcomes.values()),
        "services": {
            name: drained(
                samples[name], first[name], sum(root_backlog[tp] for tp in inputs[name] if tp in root_backlog)
            )
            for name in SERVICES
        },
        "warnings": tally(warnings, services_started),
    }


def sampled(
    at: float, offsets: dict[TopicPartition, int | None], ends: dict[TopicPartition, int], roots: set[str]
) -> Sample:
    read = {tp: offset or 0 for tp, offset in offsets.items()}
    return Sample(
        at,
        sum(read.values()),
        sum(ends[tp] - offset for tp, offset in read.items()),
        sum(ends[tp] - offset for tp, offset in read.items() if tp.topic in roots),
    )


async def first_transactions(endpoints: Endpoints, schemas: dict[str, str]) -> dict[str, float]:
    """When each service began its first batch (its inbox's earliest ``applied_at``, epoch seconds):
    the service's start and its group join are not its throughput."""
    connection = await asyncpg.connect(endpoints.database_url)
    try:
        return {
            name: float(
                await connection.fetchval(f'select extract(epoch from min(applied_at)) from "{schema}".xbus_inbox')
            )
            for name, schema in schemas.items()
        }
    finally:
        await connection.close()


def drained(samples: list[Sample], started: float, root_backlog: int) -> dict[str, object]:
    """Events/s from ``started`` until the backlog was read, and until the whole input was (for good)."""
    backlog_read = next((sample for sample in samples if sample.root_lag == 0), samples[-1])
    input_read = samples[-1]
    for sample in reversed(samples):
        if sample.lag:
            break
        input_read = sample
    backlog_s = max(backlog_read.at - started, SAMPLE_SECONDS)
    input_s = max(input_read.at - started, SAMPLE_SECONDS)
    return {
        "backlog": root_backlog,
        "backlog_left": backlog_read.root_lag,
        "input_left": samples[-1].lag,
        "backlog_read_s": round(backlog_s, 2),
        "read_by_then": backlog_read.read,
        "per_s": round(backlog_read.read / backlog_s),
        "input": input_read.read,
        "input_read_s": round(input_s, 2),
        "input_per_s": round(input_read.read / input_s),
    }


# --- main -------------------------------------------------------------------------------------


def p99(figures: dict[str, object]) -> float:
    latency = figures["root_to_end"]
    assert isinstance(latency, dict)
    return float(latency["p99_ms"])


async def main(saturating: int, rate: int, seconds: float, backlog_flows: int) -> None:
    base = load_settings()
    # The services' own start/stop lines would bury the figures; XBUS_LOG_LEVEL brings them back.
    configure_logging(base.log_format, base.log_level if "XBUS_LOG_LEVEL" in os.environ else "warning")
    endpoints = await connect(base)
    broker = broker_name(endpoints)
    warm, measured = max(10, rate), int(rate * seconds)
    mix = provisioning_mix(warm + measured + saturating)
    warm_up, steady, rest = mix[:warm], mix[warm : warm + measured], mix[warm + measured :]
    echo = await echo_chain(base, endpoints, warm_up, steady, rate)
    print(json.dumps({"broker": broker, "echo_chain": echo}), flush=True)
    flows, saturation = await the_job(base, endpoints, warm_up, steady, rest, rate)
    echo_p99 = p99(echo)
    ratio = round(p99(flows) / echo_p99, 2)
    print(
        json.dumps(
            {
                "broker": broker,
                "flows": flows,
                "echo_chain_p99_ms": echo_p99,
                "p99_ratio": ratio,
                "target_ratio": TARGET_RATIO,
                "met": ratio <= TARGET_RATIO,
            }
        ),
        flush=True,
    )
    print(json.dumps({"broker": broker, "saturation": saturation}), flush=True)
    if backlog_flows:
        print(json.dumps({"broker": broker, "backlog": await backlog(base, endpoints, backlog_flows)}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=300, help="flows published in one go at saturation")
    parser.add_argument("--rate", type=int, default=20, help="flows/s published in the steady part")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the steady part")
    parser.add_argument("--backlog", type=int, default=6000, help="flows of the backlog part; 0 leaves it out")
    add_broker_option(parser)
    args = parser.parse_args()
    choose_broker(args)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as `xbus run` does
        runner.run(main(args.flows, args.rate, args.seconds, args.backlog))
