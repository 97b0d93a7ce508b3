"""Chaos (issue 16, item 7): the demo's flows and orders while services, PostgreSQL and the broker die.

`xbus run --all` runs in a process of its own, on a broker and a PostgreSQL of this test's own.
While the demo scenario (operators, users, accounts, an exchange, deposits, then orders) flows
and malformed records are written among its events, the test strikes at random moments:
``kill -9`` of the services' process (started again), an immediate shutdown of PostgreSQL (what a
crash is to it: no checkpoint, WAL recovery at the restart) and, on Apache Kafka, whose log
survives, ``kill -9`` of the broker (started again on its port and log). At the end every flow
has ended once, no order is left open, the OMS's books equal the registry's, each deposit was
credited once, and every malformed record sits in the dead-letter table of every service that
reads its topic, with its reason.

The suite runs it for ``XBUS_CHAOS_SECONDS`` (20); ``scripts/chaos.py`` runs it for longer.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import structlog
from aiokafka import AIOKafkaProducer

from consumers.oms import queries as oms
from consumers.registry import queries as registry
from consumers.runtime.dead_letters import schema_connection
from consumers.runtime.discovery import find_services
from infrastructure.brokers import TRAITS, BrokerKind, remember
from infrastructure.embedded.broker import start_broker
from infrastructure.embedded.processes import BrokerProcess, free_port, pid_alive
from infrastructure.endpoints import apply_catalogue, load_catalogue
from infrastructure.kafka_clients import client_options
from infrastructure.settings import Settings, load_settings
from producers import Outgoing, Published, open_publisher
from schemas import Envelope
from tests.conftest import Stack
from tests.integration.test_postgres_outage import OwnPostgres
from tests.support.service_process import ServiceProcess
from xbus.demo import demo_scenario, flow_states, flows_ended

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
log = structlog.get_logger("chaos")

SECONDS = float(os.environ.get("XBUS_CHAOS_SECONDS", "20"))
#: (topic, value, headers) of records no service can apply: not JSON, no envelope, a broken event.
MALFORMED = [
    ("xosp.users", b"\xff\xfe not json", "xosp.user.created.v1"),
    ("xosp.users", b'{"login_id": 7}', "xosp.user.created.v1"),
    ("xosp.accounts", b"[]", "xosp.account.funds_deposited.v1"),
    ("xosp.users", b"{}", None),
]
_DEAD_LETTER_AT = 'select error_message from xbus_dead_letters where topic = $1 and partition = $2 and "offset" = $3'


class Broker:
    """The test's own broker: killed with SIGKILL, started again on its port and data."""

    def __init__(self, kind: BrokerKind, data_dir: Path) -> None:
        self.kind, self.data_dir = kind, data_dir
        self.port, self.controller_port = free_port(), free_port()
        self.process: BrokerProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = start_broker(self.kind, self.data_dir, self.port, self.controller_port)
        remember(self.bootstrap, self.kind)

    def kill(self) -> None:
        assert self.process is not None
        _kill(self.process.pid, signal.SIGKILL)


def _kill(pid: int, how: signal.Signals) -> None:
    os.kill(pid, how)
    deadline = time.monotonic() + 30
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} survived {how.name}"
        time.sleep(0.05)


async def test_the_demo_survives_kills_of_services_postgresql_and_broker(stack: Stack, tmp_path: Path) -> None:
    broker = Broker(stack.endpoints.broker, tmp_path / "broker")
    broker.start()
    postgres = OwnPostgres(tmp_path / "pg")
    database_url = postgres.start().url
    settings = load_settings(
        data_dir=tmp_path, kafka_bootstrap=broker.bootstrap, database_url=database_url, source="chaos"
    )
    await apply_catalogue(settings, broker.bootstrap)
    services = ServiceProcess("--all", settings, tmp_path / "services.log")
    scenario = demo_scenario(operators=2, users=20, accounts=8, orders=150)
    chance = random.Random(seed := os.environ.get("XBUS_TEST_SEED", str(time.time_ns())))
    strikes: list[str] = []
    services.start()
    try:
        await _running(services)
        await _publish(settings, [*scenario.provisioning.shuffled(seed=1), scenario.exchange])
        malformed = await _write_malformed(settings)
        await _publish(settings, list(scenario.trading.deposits))
        deadline, orders_sent = time.monotonic() + SECONDS, False
        kinds = ["services", "postgres"] + (["broker"] if TRAITS[broker.kind].durable else [])
        # until the time is up, and every kind has struck once (restarts on a busy machine are slow)
        while time.monotonic() < deadline or set(kinds) - set(strikes):
            await asyncio.sleep(chance.uniform(1.0, 3.0))
            if not orders_sent and time.monotonic() > deadline - SECONDS / 2:
                await _publish(settings, [*scenario.trading.orders, *scenario.trading.cancels])
                orders_sent = True
            untried = [kind for kind in kinds if kind not in strikes]  # each kind once first, then any
            strike = chance.choice(untried or kinds)
            strikes.append(strike)
            log.info("strike", what=strike, seed=seed)
            if strike == "services":
                services.kill()
                services.start()
            elif strike == "postgres":
                assert postgres.process is not None
                _kill(postgres.process.pid, signal.SIGQUIT)  # immediate shutdown: a crash, to PostgreSQL
                assert postgres.start().url == database_url
            else:
                broker.kill()
                broker.start()
        if not orders_sent:
            await _publish(settings, [*scenario.trading.orders, *scenario.trading.cancels])

        settling = time.monotonic()
        flow_ids, order_ids = list(scenario.flow_ids()), scenario.trading.order_ids()
        tracker = settings.db_schema("provisioning")
        async with schema_connection(database_url, tracker) as flows_db:
            await _until(
                lambda: flows_ended(flows_db, tracker, flow_ids), len(flow_ids), "every flow ended", strikes, services
            )
            once = await flows_db.fetchval(
                "select count(distinct flow_id) = count(*) from flows where flow_id = any($1)", flow_ids
            )
            states = await flow_states(flows_db, tracker, flow_ids)
        async with schema_connection(database_url, settings.db_schema("oms")) as orders_db:
            await _until(
                lambda: oms.orders_over(orders_db, order_ids), len(order_ids), "every order over", strikes, services
            )
            oms_books = await oms.books(orders_db)
            fills = await oms.fills_booked(orders_db, order_ids)
        async with schema_connection(database_url, settings.db_schema("registry")) as books_db:
            await _until(
                lambda: registry.fills_settled(books_db, order_ids), fills, "every fill settled", strikes, services
            )
            registry_books = await registry.books(books_db)
            deposits = await books_db.fetchval("select count(*) from cash_movements where delta > 0")
        assert oms_books == registry_books, (oms_books, registry_books, strikes)
        assert deposits == len(scenario.trading.deposits), strikes  # each credited once
        assert once, strikes
        assert {state for _, state in states} == {"completed"}, (states, strikes)
        assert all(malformed.values()) and set(strikes) >= {"services", "postgres"}, (malformed, strikes)
        for (topic, partition, offset), readers in malformed.items():
            for service in readers:
                async with schema_connection(database_url, settings.db_schema(service)) as db:
                    reason = await db.fetchval(_DEAD_LETTER_AT, settings.topic(topic), partition, offset)
                assert reason, f"{service} has no dead letter for {topic}[{partition}]@{offset}; strikes {strikes}"
        log.info(
            "chaos survived",
            broker=broker.kind.product,
            seconds=SECONDS,
            strikes=dict(Counter(strikes)),
            flows=len(flow_ids),
            orders=len(order_ids),
            malformed=len(malformed),
            settled_after_seconds=round(time.monotonic() - settling, 1),
            seed=seed,
        )
    finally:
        services.stop()
        if broker.process is not None and pid_alive(broker.process.pid):
            broker.kill()
        postgres.stop()


async def _publish(settings: Settings, events: list[Outgoing]) -> None:
    async with open_publisher(settings) as publisher:
        results = await publisher.publish_many(events)
    assert all(isinstance(result, Published) for result in results), [
        r for r in results if not isinstance(r, Published)
    ][:2]


async def _write_malformed(settings: Settings) -> dict[tuple[str, int, int], tuple[str, ...]]:
    """The malformed records, written by a plain producer: where each went, and who reads it."""
    producer = AIOKafkaProducer(**client_options(settings, settings.kafka_bootstrap or ""), acks="all")
    await producer.start()
    written: dict[tuple[str, int, int], tuple[str, ...]] = {}
    try:
        for index, (topic, value, event_type) in enumerate(MALFORMED):
            headers = (
                Envelope.new(type=event_type, subject=f"bad-{index}", source="chaos").to_headers() if event_type else []
            )
            sent = await producer.send_and_wait(
                settings.topic(topic), value, key=f"bad-{index}".encode(), headers=headers
            )
            written[(topic, sent.partition, sent.offset)] = _readers(settings, topic, event_type)
    finally:
        await producer.stop()
    return written


def _readers(settings: Settings, topic: str, event_type: str | None) -> tuple[str, ...]:
    """The services that dead-letter such a record: those that handle its type, or, without an
    envelope, every one that reads its topic."""
    catalogue = load_catalogue(settings)
    return tuple(
        name
        for name, service in find_services().items()
        if topic in service.topics(catalogue) and (event_type is None or event_type in service.by_type)
    )


async def _until(
    count: Callable[[], Awaitable[int]], total: int, what: str, strikes: list[str], services: ServiceProcess
) -> None:
    deadline = time.monotonic() + 240
    while (done := await count()) < total:
        assert services.process is not None
        if services.process.poll() is not None:
            tail = services.log.read_text(errors="replace").splitlines()[-40:]
            raise AssertionError(
                f"{what}: the services exited after the strikes {strikes}; their log ends:\n" + "\n".join(tail)
            )
        assert time.monotonic() < deadline, f"{what}: {done} of {total} after the strikes {strikes}"
        await asyncio.sleep(1)


async def _running(services: ServiceProcess) -> None:
    """Until this life of the services has started (migrated, joined its groups). A process that
    exits while starting (PostgreSQL still recovering from its strike: `xbus run` says so in one
    line and exits, for its supervisor to restart) is started again, as a supervisor would; one
    that exits after it started fails the test (``_until``)."""
    deadline = time.monotonic() + 60
    while not services.started():
        assert services.process is not None
        if services.process.poll() is not None:
            log.info("the services exited while starting; starting them again", code=services.process.returncode)
            services.start()
        assert time.monotonic() < deadline, "the services did not start in 60 s"
        await asyncio.sleep(0.2)
