"""The Kafka clients the bus starts, and the options they are started with.

Every client (producer, consumer, admin) takes its bootstrap, client id, SASL and TLS from
:func:`client_options`, in one place. Each one starts through :func:`_start`, so a broker that
cannot be reached is one error naming the setting to check, wherever the client was wanted.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.helpers import create_ssl_context

from infrastructure.errors import BrokerUnavailable
from infrastructure.settings import SecurityProtocol, Settings

log = structlog.get_logger("xbus.kafka")


def client_options(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """Keyword arguments every aiokafka client (producer, consumer, admin) takes."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": settings.client_id,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "security_protocol": settings.kafka_security_protocol.value,
    }
    if settings.kafka_security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        options["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
            certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
            keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            password=settings.kafka_ssl_key_password.get_secret_value() if settings.kafka_ssl_key_password else None,
        )
    if settings.kafka_sasl_mechanism is not None:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism.value
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        )
    return options


@dataclass(frozen=True)
class MemberTiming:
    """A consumer group member's timing: the settings where given, else the connected broker's
    defaults (infrastructure/brokers.py: member_timing)."""

    session_timeout_ms: int
    heartbeat_interval_ms: int
    fetch_max_wait_ms: int


def member_options(settings: Settings, bootstrap: str, group: str, timing: MemberTiming) -> dict[str, Any]:
    """Keyword arguments of a consumer group member as xbus runs one: offsets committed by hand
    once the work is done, a group without offsets reading from the beginning, and the session
    and fetch timing the broker needs (infrastructure/brokers.py says why each is what it is)."""
    return {
        **client_options(settings, bootstrap),
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": timing.session_timeout_ms,
        "heartbeat_interval_ms": timing.heartbeat_interval_ms,
        "fetch_max_wait_ms": timing.fetch_max_wait_ms,
    }


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
