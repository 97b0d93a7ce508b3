"""Where the broker and the database are, starting the embedded stack when nothing is configured.

Every command that talks to Kafka or PostgreSQL goes through :func:`connect`, so "no settings"
always means "the embedded stack under XBUS_DATA_DIR", started on first use, with topics.yaml
applied to a new broker before any client produces or subscribes (the embedded broker would
otherwise auto-create topics with 4 partitions).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

import schemas
from xbus.brokers import BrokerKind, broker_traits, remember
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
    #: What the broker at ``kafka_bootstrap`` is (the embedded stack knows; an external one is asked).
    broker: BrokerKind


def load_catalogue(settings: Settings) -> Catalogue:
    return Catalogue.load(settings.topics_file, schemas.registry)


async def connect(settings: Settings, *, database: bool = True) -> Endpoints:
    """The endpoints to use; starts whatever embedded part is needed and not running. A command
    that needs the broker only says ``database=False``: no embedded PostgreSQL is started for it
    (its endpoints' database URL is then whatever is configured, maybe empty)."""
    embedded_database = settings.embedded_database and database
    if not (settings.embedded_kafka or embedded_database):
        assert settings.kafka_bootstrap and (settings.database_url or not database)
        traits = await broker_traits(settings, settings.kafka_bootstrap)
        return Endpoints(settings.kafka_bootstrap, settings.database_url or "", traits.kind)
    stack = EmbeddedStack(settings.data_dir, settings.embedded_kafka_port, settings.embedded_broker)
    result = await asyncio.to_thread(stack.up, kafka=settings.embedded_kafka, postgres=embedded_database)
    if result.broker_data_lost:
        log.warning(
            "the embedded broker had stopped and was started again: its topics, groups and offsets are gone "
            "(Tansu keeps them in memory); PostgreSQL state is kept; topics.yaml is applied again"
        )
    elif result.broker_was_lost:
        log.warning("the embedded broker had stopped and was started again with its log: nothing is lost")
    if settings.embedded_kafka:
        kind = result.state.broker_kind or BrokerKind.TANSU  # a stack.json older than Apache Kafka's arrival
        remember(result.state.kafka_bootstrap or "", kind)
    else:
        assert settings.kafka_bootstrap
        kind = (await broker_traits(settings, settings.kafka_bootstrap)).kind
    endpoints = Endpoints(
        kafka_bootstrap=settings.kafka_bootstrap or result.state.kafka_bootstrap or "",
        database_url=settings.database_url or result.state.database_url or "",
        broker=kind,
    )
    if result.broker_is_new:
        await apply_catalogue(settings, endpoints.kafka_bootstrap)
    return endpoints


async def connect_database(settings: Settings) -> str:
    """The PostgreSQL URL, for a command that needs nothing else: the embedded PostgreSQL is
    started if it is the one configured and not running; the broker is never started for it."""
    if not settings.embedded_database:
        assert settings.database_url
        return settings.database_url
    stack = EmbeddedStack(settings.data_dir, settings.embedded_kafka_port, settings.embedded_broker)
    result = await asyncio.to_thread(stack.up, kafka=False, postgres=True)
    return result.state.database_url or ""


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


#: The fetch wait of a group-less reader (plain_consumer says why it is short).
READER_FETCH_WAIT_MS = 20


@asynccontextmanager
async def plain_consumer(settings: Settings, bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer with no group: reads by assignment, commits nothing, disturbs no one.

    A fetch at a partition's end is answered only when its wait runs out, and aiokafka sends no
    new fetch to a broker while one is out. These readers read what is there and stop, often in
    rounds (replay's time search, lag's reads from several offsets): a fetch aiokafka sends ahead
    at a partition's end would hold the next round for aiokafka's 500 ms on Apache Kafka, and lag
    on Tansu fetches at ends on purpose (the high watermark is in the answer). Hence a short wait;
    between reads, ``read_log`` leaves the partitions paused, so an idle reader fetches nothing."""
    consumer = AIOKafkaConsumer(
        **client_options(settings, bootstrap),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=READER_FETCH_WAIT_MS,
    )
    async with _started(consumer.start, consumer.stop, bootstrap):
        yield consumer


class StartedProducer(NamedTuple):
    producer: AIOKafkaProducer
    #: False where the broker refused the idempotent producer (the embedded one does).
    idempotent: bool


#: Bootstrap addresses whose broker refused the idempotent producer in this process: asking again
#: would cost every later producer a failed request and the same warning.
_REFUSED_IDEMPOTENCE: set[str] = set()


async def start_producer(settings: Settings, bootstrap: str, **options: Any) -> StartedProducer:
    """Start a producer whose sends count only once every in-sync replica has the record (acks=all).

    Every producer the bus makes starts here, so none is left with aiokafka's default acks=1, which
    loses acknowledged records when a leader fails. It is idempotent where the broker supports it
    (Apache Kafka: a retried send is never written twice, and order holds within a partition). The
    embedded broker refuses InitProducerId; there it is a plain acks=all producer, with one warning
    per process: retry duplicates are then absorbed by the consumers' inboxes, which is where
    exactly-once effects come from anyway. ``options`` are further aiokafka producer options.
    """
    options = {**client_options(settings, bootstrap), **options, "acks": "all"}
    if bootstrap not in _REFUSED_IDEMPOTENCE:
        producer = AIOKafkaProducer(**options, enable_idempotence=True)
        try:
            with _quiet("aiokafka.producer.sender"):
                await producer.start()
            return StartedProducer(producer, idempotent=True)
        except KafkaConnectionError as error:
            await producer.stop()
            raise BrokerUnavailable.at(bootstrap, error) from None
        except KafkaError as error:
            await producer.stop()
            _REFUSED_IDEMPOTENCE.add(bootstrap)
            log.warning(
                "broker refused the idempotent producer; publishing with plain acks=all "
                "(consumer inboxes absorb retry duplicates)",
                error=type(error).__name__,
            )
    producer = AIOKafkaProducer(**options)
    await _start(producer.start, producer.stop, bootstrap)
    return StartedProducer(producer, idempotent=False)


@asynccontextmanager
async def acks_all_producer(settings: Settings, bootstrap: str, **options: Any) -> AsyncIterator[AIOKafkaProducer]:
    """:func:`start_producer` for the length of a block."""
    producer = (await start_producer(settings, bootstrap, **options)).producer
    try:
        yield producer
    finally:
        await producer.stop()


@asynccontextmanager
async def _started(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]], bootstrap: str
) -> AsyncIterator[None]:
    await _start(start, stop, bootstrap)
    try:
        yield
    finally:
        await stop()


async def _start(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]], bootstrap: str) -> None:
    """Start a client, turning "cannot connect" into an error that names the setting to check."""
    try:
        await start()
    except KafkaError as error:
        await stop()
        raise BrokerUnavailable.at(bootstrap, error) from None


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a library logger while probing: the refusal is expected and we log it ourselves."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


@asynccontextmanager
async def topic_reader(
    settings: Settings, bootstrap: str
) -> AsyncIterator[tuple[AIOKafkaAdminClient, AIOKafkaConsumer]]:
    """An admin client (to find partitions) and a group-less consumer (to read them)."""
    async with admin_client(settings, bootstrap) as admin, plain_consumer(settings, bootstrap) as consumer:
        yield admin, consumer
