"""Where the broker and the database are, starting the embedded stack when nothing is configured.

Every command that talks to Kafka or PostgreSQL goes through :func:`connect`, so "no settings"
always means "the embedded stack under XBUS_DATA_DIR", started on first use, with topics.yaml
applied to a new broker before any client produces or subscribes (the embedded broker would
otherwise auto-create topics with 4 partitions).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

import schemas
from xbus.catalogue import Catalogue
from xbus.embedded.stack import EmbeddedStack
from xbus.errors import BrokerUnavailable
from xbus.kafka import client_options
from xbus.settings import Settings
from xbus.topic_admin import ApplyReport, apply_topics

log = structlog.get_logger("xbus.platform")


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    database_url: str
    embedded_kafka: bool


def load_catalogue(settings: Settings) -> Catalogue:
    return Catalogue.load(settings.topics_file, schemas.registry)


async def connect(settings: Settings) -> Endpoints:
    """The endpoints to use; starts whatever embedded part is needed and not running."""
    if not (settings.embedded_kafka or settings.embedded_database):
        assert settings.kafka_bootstrap and settings.database_url
        return Endpoints(settings.kafka_bootstrap, settings.database_url, embedded_kafka=False)
    stack = EmbeddedStack(settings.data_dir, settings.embedded_kafka_port)
    result = await asyncio.to_thread(stack.up, kafka=settings.embedded_kafka, postgres=settings.embedded_database)
    if result.broker_was_lost:
        log.warning(
            "the embedded broker had stopped and was started again: its topics, groups and offsets are gone "
            "(memory storage); PostgreSQL state is kept; topics.yaml is applied again"
        )
    endpoints = Endpoints(
        kafka_bootstrap=settings.kafka_bootstrap or result.state.kafka_bootstrap or "",
        database_url=settings.database_url or result.state.database_url or "",
        embedded_kafka=settings.embedded_kafka,
    )
    if result.broker_is_new:
        await apply_catalogue(settings, endpoints.kafka_bootstrap)
    return endpoints


async def apply_catalogue(settings: Settings, bootstrap: str) -> ApplyReport:
    async with admin_client(settings, bootstrap) as admin:
        report = await apply_topics(admin, load_catalogue(settings), settings.topic_prefix)
    if report.created:
        log.info("topics created", count=len(report.created), prefix=settings.topic_prefix or None)
    return report


@asynccontextmanager
async def admin_client(settings: Settings, bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**client_options(settings, bootstrap))
    async with _started(admin.start, admin.close, bootstrap):
        yield admin


@asynccontextmanager
async def plain_consumer(
    settings: Settings, bootstrap: str, *, fetch_max_wait_ms: int = 500
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer with no group: reads by assignment, commits nothing, disturbs no one.

    A fetch at a partition's end is answered only when ``fetch_max_wait_ms`` runs out; a reader
    that fetches at ends on purpose (lag: the high watermark is in the answer) passes the
    services' short wait instead of aiokafka's 500 ms."""
    consumer = AIOKafkaConsumer(
        **client_options(settings, bootstrap),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    async with _started(consumer.start, consumer.stop, bootstrap):
        yield consumer


@asynccontextmanager
async def acks_all_producer(settings: Settings, bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer whose sends count only once every in-sync replica has the record."""
    producer = AIOKafkaProducer(**client_options(settings, bootstrap), acks="all")
    async with _started(producer.start, producer.stop, bootstrap):
        yield producer


@asynccontextmanager
async def _started(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]], bootstrap: str
) -> AsyncIterator[None]:
    """Start a client, turning "cannot connect" into an error that names the setting to check."""
    try:
        await start()
    except KafkaError as error:
        await stop()
        raise BrokerUnavailable(f"Kafka at {bootstrap} did not answer ({error}); check XBUS_KAFKA_BOOTSTRAP") from None
    try:
        yield
    finally:
        await stop()


@asynccontextmanager
async def topic_reader(
    settings: Settings, bootstrap: str
) -> AsyncIterator[tuple[AIOKafkaAdminClient, AIOKafkaConsumer]]:
    """An admin client (to find partitions) and a group-less consumer (to read them)."""
    async with admin_client(settings, bootstrap) as admin, plain_consumer(settings, bootstrap) as consumer:
        yield admin, consumer
