"""Every producer of the bus (publisher, outbox relay, market-data feeds) starts through
infrastructure.kafka_clients.start_producer: acks=all always, idempotent where the broker supports it."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from infrastructure.brokers import BrokerKind, broker_traits
from infrastructure.embedded.processes import free_port
from infrastructure.errors import BrokerUnavailable
from infrastructure.kafka_clients import acks_all_producer, start_producer
from infrastructure.settings import Settings

pytestmark = pytest.mark.integration

REFUSAL = "broker refused the idempotent producer"


async def test_a_producer_waits_for_every_in_sync_replica_and_is_idempotent_where_the_broker_allows(
    topics: Settings,
) -> None:
    started = await start_producer(topics, topics.kafka_bootstrap or "")
    try:
        assert started.producer._sender._acks == -1  # acks=all
        kind = (await broker_traits(topics, topics.kafka_bootstrap or "")).kind
        assert started.idempotent is (kind is BrokerKind.APACHE_KAFKA)
        sent = await started.producer.send_and_wait(topics.topic("xosp.exchanges"), b"{}", key=b"XSX")
        assert (sent.partition, sent.offset) == (0, 0)
    finally:
        await started.producer.stop()


async def test_a_broker_that_refused_idempotence_is_not_asked_again(topics: Settings) -> None:
    """One warning per process, not one per relay and feed."""
    with capture_logs() as logs:
        for _ in range(3):
            async with acks_all_producer(topics, topics.kafka_bootstrap or "", linger_ms=2) as producer:
                assert producer._sender._acks == -1
    assert len([entry for entry in logs if REFUSAL in entry["event"]]) <= 1


async def test_an_unreachable_broker_names_the_setting_to_check(settings: Settings) -> None:
    with pytest.raises(BrokerUnavailable, match="XBUS_KAFKA_BOOTSTRAP"):
        await start_producer(settings, f"127.0.0.1:{free_port()}")
