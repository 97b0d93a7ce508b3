"""Hostile records never stop the bus (issue 16, item 7): a property-based fuzz test on the real stack.

Every service runs in this process. Hypothesis makes batches of raw records (random keys,
headers and values: bytes that are not JSON, JSON of any shape, events of every registered type
with a field broken, envelopes with a header garbled, NUL and lone surrogates, headers of no
CloudEvents name; and well-formed events of every lifecycle in any order and number, which reach
the handlers with prerequisites missing, duplicates and rules broken) and writes them with a
plain producer onto the input topics, interleaved with a login's well-formed create and updates.
For each batch: every service's group reads every partition to its end (each record applied,
ignored, parked, held or dead-lettered), no runner stops, and the login's updates are applied in
their order.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.runtime.runner import ServiceRunner
from exchanges import load_oms_adapter
from infrastructure.endpoints import load_catalogue
from infrastructure.groups import committed_offsets
from infrastructure.kafka_clients import admin_client, client_options, plain_consumer
from infrastructure.offsets import log_end_offsets
from infrastructure.reader import topic_partitions
from infrastructure.settings import Settings
from schemas import Envelope, Event, event_types
from schemas.accounts import TradingAccountOpened
from schemas.users import UserCreated, UserUpdated
from tests.conftest import Stack
from tests.support.all_services import SERVICES, running
from tests.support.service_under_test import module_settings
from xbus.scenario import build_scenario
from xbus.trading import TradingAccount, build_trading, prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

FUZZED = (*SERVICES, "gateway", "market_data")
INPUT_TOPICS = ("xosp.users", "xosp.operators", "xosp.accounts", "xosp.exchanges", "xosp.orders")


@dataclass
class Bus:
    settings: Settings
    producer: AIOKafkaProducer
    runners: dict[str, ServiceRunner]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bus(stack: Stack) -> AsyncIterator[Bus]:
    settings = await module_settings(stack)
    producer = AIOKafkaProducer(**client_options(settings, settings.kafka_bootstrap or ""), acks="all")
    await producer.start()
    try:
        async with running(settings, FUZZED) as runners:
            yield Bus(settings, producer, runners)
    finally:
        await producer.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
texts = st.text(max_size=10) | st.sampled_from(["a\x00b", "\ud800", "x" * 300, "‮evil", "", " "])


@st.composite
def broken_events(draw: st.DrawFn) -> bytes:
    """A registered type's fields, one of them replaced by something of another shape."""
    model = draw(st.sampled_from(event_types.models()))
    fields = {name: draw(json_values) for name in model.model_fields}
    if fields:
        fields[draw(st.sampled_from(sorted(fields)))] = draw(texts | json_values)
    return json.dumps(fields, allow_nan=True).encode("utf-8", "surrogatepass")


values = st.binary(max_size=40) | json_values.map(lambda v: json.dumps(v).encode()) | broken_events()


@st.composite
def header_lists(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    kind = draw(st.sampled_from(["envelope", "garbled", "random", "none"]))
    if kind == "none":
        return []
    if kind == "random":
        return draw(st.lists(st.tuples(st.text(max_size=10), st.binary(max_size=12)), max_size=4))
    event_type = draw(st.sampled_from([*event_types.types(), "xosp.nothing.v1"]))
    subject = draw(st.text(alphabet="abcXYZ09:-", min_size=1, max_size=12))
    headers = Envelope.new(type=event_type, subject=subject, source="fuzz").to_headers()
    if kind == "garbled":
        index = draw(st.integers(0, len(headers) - 1))
        headers[index] = (headers[index][0], draw(st.binary(max_size=12)))
    return headers + draw(st.lists(st.tuples(st.text(max_size=6), st.binary(max_size=6)), max_size=2))


def _valid_pool() -> list[Event]:
    """Well-formed events of every lifecycle: replayed in any order and any number of times, they
    reach the handlers with missing prerequisites, duplicates and rules broken."""
    scenario = build_scenario(operators=2, users=3, accounts=2, seed=5)
    people = [outgoing.event for outgoing in scenario.shuffled(seed=1)]
    opened = [event for event in people if isinstance(event, TradingAccountOpened)]
    accounts = [TradingAccount(a.account_id, tuple(login.login_id for login in a.logins)) for a in opened]
    exchange = prodigy_exchange("FZX", markets=1, symbols=2)
    prices = dict(load_oms_adapter("prodigy").reference_prices(exchange))
    trading = build_trading(accounts, prices, orders=10, seed=3)
    return [*people, exchange, *(o.event for o in trading.deposits), *(o.event for o in trading.orders)]


def _on_its_topic(event: Event) -> tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]:
    [topic] = [spec.name for spec in CATALOGUE.topics_for_type(event.event_type)]
    envelope = Envelope.new(type=event.event_type, subject=event.aggregate_id, source="fuzz")
    return topic, event.aggregate_id.encode(), event.model_dump_json().encode(), envelope.to_headers()


CATALOGUE = load_catalogue(Settings())
valid_records = st.sampled_from(_valid_pool()).map(_on_its_topic)
records = valid_records | st.tuples(
    st.sampled_from(INPUT_TOPICS),
    st.none() | st.binary(max_size=20) | texts.map(lambda text: text.encode("utf-8", "surrogatepass")),
    values,
    header_lists(),
)


async def _caught_up(bus: Bus) -> list[str]:
    """The groups (services) that have not yet read every partition of their topics to its end."""
    catalogue, behind = load_catalogue(bus.settings), []
    bootstrap = bus.settings.kafka_bootstrap or ""
    async with admin_client(bus.settings, bootstrap) as admin, plain_consumer(bus.settings, bootstrap) as reader:
        for name, runner in bus.runners.items():
            partitions: list[TopicPartition] = []
            for topic in runner.service.topics(catalogue):
                partitions += await topic_partitions(admin, bus.settings.topic(topic))
            ends = await log_end_offsets(reader, partitions)
            committed = await committed_offsets(admin, bus.settings.group(runner.service.group_id), partitions)
            if any(end and committed.get(tp) != end for tp, end in ends.items()):
                behind.append(name)
    return behind


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile=st.lists(records, min_size=1, max_size=25), cut=st.integers(0, 25))
async def test_hostile_records_are_each_applied_or_dead_lettered_and_nothing_stops(
    bus: Bus, hostile: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]], cut: int
) -> None:
    login = f"fz-{uuid.uuid4().hex[:10]}"
    created = UserCreated(login_id=login, username=login, email=f"{login}@example.com", display_name="0")
    updates = [UserUpdated(login_id=login, display_name=str(n)) for n in range(1, 4)]
    cut = min(cut, len(hostile))
    sequence = [_on_its_topic(created), *hostile[:cut], *map(_on_its_topic, updates), *hostile[cut:]]
    for topic, key, value, headers in sequence:
        await bus.producer.send_and_wait(bus.settings.topic(topic), value, key=key, headers=headers)

    deadline, behind = time.monotonic() + 90, await _caught_up(bus)
    while behind:
        assert time.monotonic() < deadline, f"not caught up in 90 s: {behind}"
        failed = {name: runner.failure for name, runner in bus.runners.items() if runner.failure is not None}
        assert not failed, failed
        await asyncio.sleep(0.5)
        behind = await _caught_up(bus)

    assert all(runner.failure is None for runner in bus.runners.values())
    connection = await asyncpg.connect(bus.settings.database_url or "")
    try:
        schema = bus.settings.db_schema("authentication")
        name = await connection.fetchval(f"select display_name from {schema}.logins where login_id = $1", login)
    finally:
        await connection.close()
    assert name == "3"  # the login's updates, applied in their order among the hostile records
