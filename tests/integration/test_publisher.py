"""The Publisher against the real embedded broker: headers, keys, offsets, order, fallback."""

from __future__ import annotations

import json
import uuid

import pytest
import structlog
from aiokafka import AIOKafkaProducer, TopicPartition

from infrastructure.endpoints import load_catalogue
from infrastructure.errors import XbusError
from infrastructure.kafka_clients import client_options, plain_consumer, topic_reader
from infrastructure.offsets import log_end_offsets
from infrastructure.reader import read_topic, topic_partitions
from infrastructure.settings import Settings
from producers import Outgoing, Published, Publisher, PublishFailed, open_publisher
from producers.partitioning import partition_for
from schemas import Envelope
from schemas.accounts import FundsDeposited, TradingAccountOpened
from schemas.types import PositiveMoney
from schemas.users import UserCreated, UserDisabled

pytestmark = pytest.mark.integration


def user(login_id: str) -> UserCreated:
    return UserCreated(
        login_id=login_id, username=f"name-{login_id}", email=f"{login_id}@example.com", display_name="Someone"
    )


async def read_all(settings: Settings, topic: str) -> list:
    async with topic_reader(settings, settings.kafka_bootstrap or "") as (admin, consumer):
        partitions = await topic_partitions(admin, settings.topic(topic))
        return [event async for event in read_topic(consumer, partitions, last=None)]


async def test_round_trip_carries_every_cloudevents_header(topics: Settings) -> None:
    event = user("3f1c9a52-aaaa-4d1e-9c1a-000000000001")
    async with open_publisher(topics) as publisher:
        result = await publisher.publish(event, correlation_id="flow-42", causation_id="cause-7")

    [read] = await read_all(topics, "xosp.users")
    names = [name for name in read.headers]
    assert names == [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_subject",
        "ce_correlationid",
        "ce_causationid",
        "content-type",
    ]
    envelope = read.envelope
    assert envelope is not None
    assert envelope.id == result.event_id
    assert uuid.UUID(envelope.id).version == 4
    assert envelope.type == "xosp.user.created.v1"
    assert envelope.source == "tests"
    assert envelope.subject == event.login_id == read.key
    assert (envelope.correlation_id, envelope.causation_id) == ("flow-42", "cause-7")
    assert envelope.time.tzinfo is not None
    assert read.headers["content-type"] == "application/json"
    assert UserCreated.model_validate(read.data) == event
    assert (read.partition, read.offset) == (result.partition, result.offset)
    assert result.topic == topics.topic("xosp.users")


async def test_a_root_event_is_its_own_correlation_and_causation(topics: Settings) -> None:
    async with open_publisher(topics) as publisher:
        result = await publisher.publish(user("root-login"))
    [read] = await read_all(topics, "xosp.users")
    assert read.envelope.correlation_id == read.envelope.causation_id == result.event_id


async def test_publish_many_reports_the_partition_and_offset_each_event_landed_at(topics: Settings) -> None:
    events = [user(f"login-{i:04d}") for i in range(600)]
    events += [
        FundsDeposited(
            account_id=f"XS:{i:04d}", amount=PositiveMoney(amount="10.00", currency="AUD"), reference=f"r{i}"
        )
        for i in range(100)
    ]
    async with open_publisher(topics) as publisher:
        results = await publisher.publish_many(events)

    assert all(isinstance(r, Published) for r in results)
    landed = {
        (e.topic, e.partition, e.offset): e for t in ("xosp.users", "xosp.accounts") for e in await read_all(topics, t)
    }
    assert len(landed) == len(events)
    for event, result in zip(events, results, strict=True):
        read = landed[(result.topic, result.partition, result.offset)]
        assert read.envelope.id == result.event_id
        assert read.key == event.aggregate_id


async def test_partition_is_the_one_a_plain_kafka_client_picks_for_the_same_key(topics: Settings) -> None:
    """Another producer (any language) keying by aggregate id must land on the same partition."""
    topic = topics.topic("xosp.users")
    producer = AIOKafkaProducer(**client_options(topics, topics.kafka_bootstrap or ""), acks="all")
    await producer.start()
    try:
        plain = [await producer.send_and_wait(topic, b"{}", key=f"login-{i}".encode()) for i in range(40)]
    finally:
        await producer.stop()
    async with open_publisher(topics) as publisher:
        ours = await publisher.publish_many([user(f"login-{i}") for i in range(40)])
    assert [r.partition for r in ours] == [m.partition for m in plain]
    assert [r.partition for r in ours] == [partition_for(f"login-{i}".encode(), 12) for i in range(40)]


async def test_events_of_one_aggregate_keep_their_order(topics: Settings) -> None:
    login = "ordered-login"
    sequence = [user(login)] + [UserDisabled(login_id=login, reason=f"step {i}") for i in range(300)]
    async with open_publisher(topics) as publisher:
        await publisher.publish_many(sequence)
    read = [e for e in await read_all(topics, "xosp.users") if e.key == login]
    assert [e.data.get("reason") for e in read] == [None] + [f"step {i}" for i in range(300)]
    assert len({e.partition for e in read}) == 1


async def test_a_bad_item_fails_alone_and_the_rest_are_published(topics: Settings) -> None:
    good = user("good-login")
    async with open_publisher(topics) as publisher:
        results = await publisher.publish_many([good, {"not": "an event"}, Outgoing(user("second-good"))])  # type: ignore[list-item]
    assert isinstance(results[0], Published) and isinstance(results[2], Published)
    assert isinstance(results[1], PublishFailed) and "expected an event model" in results[1].error
    assert {e.key for e in await read_all(topics, "xosp.users")} == {"good-login", "second-good"}


async def test_publish_before_start_says_how_to_start(topics: Settings) -> None:
    publisher = Publisher(topics, topics.kafka_bootstrap or "", load_catalogue(topics))
    with pytest.raises(XbusError, match="not started"):
        await publisher.publish(user("x"))


@pytest.mark.broker("kafka", reason="Apache Kafka grants the idempotent producer (InitProducerId)")
async def test_apache_kafka_gets_an_idempotent_producer_and_no_fallback_warning(topics: Settings) -> None:
    with structlog.testing.capture_logs() as logged:
        async with open_publisher(topics) as publisher:
            assert publisher.idempotent is True
            assert publisher._producer is not None and publisher._producer._sender._acks == -1  # acks=all
            manager = publisher._producer._txn_manager
            assert manager is not None and manager.producer_id >= 0  # the broker gave it a producer id
            await publisher.publish(user("idempotent-login"))
    assert not [entry for entry in logged if "idempotent" in entry["event"]], logged
    assert len(await read_all(topics, "xosp.users")) == 1


@pytest.mark.broker("tansu", reason="Tansu refuses InitProducerId; the publisher must fall back")
async def test_the_embedded_broker_gets_a_plain_acks_all_producer(topics: Settings) -> None:
    """Tansu refuses InitProducerId: the publisher falls back instead of failing (docs/brokers.md)."""
    async with open_publisher(topics) as publisher:
        assert publisher.idempotent is False
        assert publisher._producer is not None and publisher._producer._sender._acks == -1  # acks=all
        await publisher.publish(user("fallback-login"))
    assert len(await read_all(topics, "xosp.users")) == 1


async def test_end_offsets_are_right_when_the_broker_reports_batch_base_offsets(topics: Settings) -> None:
    """1,000 records in one batch: the embedded broker's ListOffsets says 1; the log holds 1,000."""
    topic = topics.topic("xosp.exchanges")  # one partition
    producer = AIOKafkaProducer(
        **client_options(topics, topics.kafka_bootstrap or ""), acks="all", max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        batch = producer.create_batch()
        for i in range(1000):
            assert batch.append(key=b"k", value=json.dumps({"i": i}).encode(), timestamp=None) is not None
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()
    async with plain_consumer(topics, topics.kafka_bootstrap or "") as consumer:
        ends = await log_end_offsets(consumer, [TopicPartition(topic, 0)])
    assert ends[TopicPartition(topic, 0)] == 1000


async def test_envelope_from_headers_round_trips(topics: Settings) -> None:
    envelope = Envelope.new(type="xosp.user.created.v1", subject="s", source="tests")
    assert Envelope.from_headers(envelope.to_headers()) == envelope


async def test_an_event_too_large_for_a_request_fails_alone_with_its_size(topics: Settings) -> None:
    big = TradingAccountOpened.model_validate(
        {
            "account_id": "XS:0001",
            "owner": "XS",
            "name": "Big",
            "classification": "Retail",
            "default_currency": "AUD",
            "investor": {"investor_id": "I1", "full_name": "Big", "country": "AU", "type": "individual"},
            "attributes": {f"a{i}": "x" * 500 for i in range(20)},
        }
    )
    async with Publisher(
        topics, topics.kafka_bootstrap or "", load_catalogue(topics), max_request_size=4000
    ) as publisher:
        results = await publisher.publish_many([user("before"), big, user("after")])
    assert isinstance(results[1], PublishFailed)
    assert "the largest a request may carry is 4000" in results[1].error
    assert isinstance(results[0], Published) and isinstance(results[2], Published)
