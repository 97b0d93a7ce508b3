"""The Publisher: the one way events get onto Kafka.

It picks the topic from the catalogue, keys by aggregate id, wraps the event in the CloudEvents
envelope and waits for acks=all, on an idempotent producer where the broker supports it
(:func:`infrastructure.kafka_clients.start_producer`, which every producer of the bus starts through).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Self, cast

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from infrastructure.catalogue import Catalogue
from infrastructure.endpoints import connect, load_catalogue
from infrastructure.errors import XbusError
from infrastructure.kafka_clients import start_producer
from infrastructure.settings import Settings
from producers.partitioning import partition_for
from schemas import Event
from schemas.envelope import build_headers, format_time, new_event_id


@dataclass(frozen=True)
class Outgoing:
    """An event with the envelope attributes its publisher chose (all optional)."""

    event: Event
    correlation_id: str | None = None
    causation_id: str | None = None
    event_id: str | None = None
    time: dt.datetime | None = None
    key: str | None = None


@dataclass(frozen=True)
class Published:
    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int
    correlation_id: str


@dataclass(frozen=True)
class PublishFailed:
    event_type: str
    error: str


PublishResult = Published | PublishFailed


class Publisher:
    """Async context manager over an aiokafka producer: ``async with Publisher(...) as p``."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        catalogue: Catalogue,
        *,
        linger_ms: int = 5,
        compression_type: str | None = None,
        max_request_size: int = 3 * 1024 * 1024,
    ) -> None:
        self._settings = settings
        self._bootstrap = bootstrap
        self._catalogue = catalogue
        self._options = {
            "linger_ms": linger_ms,
            "compression_type": compression_type,
            "max_request_size": max_request_size,
        }
        self._max_request_size = max_request_size
        self._producer: AIOKafkaProducer | None = None
        self._partition_counts: dict[str, int] = {}
        self.idempotent = False

    async def start(self) -> None:
        self._producer, self.idempotent = await start_producer(self._settings, self._bootstrap, **self._options)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def publish(
        self,
        event: Event,
        *,
        key: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        event_id: str | None = None,
        time: dt.datetime | None = None,
    ) -> Published:
        """Publish one event and wait for acks=all. ``key`` defaults to the aggregate id (keep it so)."""
        result = (await self.publish_many([Outgoing(event, correlation_id, causation_id, event_id, time, key)]))[0]
        if isinstance(result, PublishFailed):
            raise XbusError(f"publishing {result.event_type} failed: {result.error}")
        return result

    async def publish_many(self, items: Iterable[Event | Outgoing]) -> list[PublishResult]:
        """Publish a batch; one result per item, in order. A failed item does not stop the others.

        Records are partitioned as any Kafka client would (murmur2 of the key) and written into
        one record batch per partition with ``send_batch``: aiokafka's per-record ``send`` costs
        more than building the event. Partitions are filled concurrently, because a partition's
        next batch waits until the sender has taken its previous one. A record's offset is its
        batch's base offset plus its position in the batch.
        """
        producer = self._require_started()
        batch = _BatchContext(self._settings.source.encode(), format_time(dt.datetime.now(dt.UTC)).encode())
        results: list[PublishResult | None] = []
        by_partition: dict[tuple[str, int], list[tuple[int, _Record]]] = {}
        for item in items:
            results.append(None)
            try:
                record = self._record(item, batch)
                partition = partition_for(record.key, await self._partition_count(producer, record.topic))
            except (KafkaError, XbusError, LookupError, TypeError) as error:
                event = item.event if isinstance(item, Outgoing) else item
                results[-1] = PublishFailed(getattr(event, "event_type", "?"), _describe(error))
                continue
            by_partition.setdefault((record.topic, partition), []).append((len(results) - 1, record))
        per_partition = await asyncio.gather(
            *(self._send(producer, topic, partition, records) for (topic, partition), records in by_partition.items())
        )
        for sends in per_partition:
            for outcome, members in sends:
                for position, (index, record) in enumerate(members):
                    if isinstance(outcome, BaseException):
                        results[index] = PublishFailed(record.event_type, _describe(outcome))
                    else:
                        results[index] = record.published(outcome.partition, outcome.offset + position)
        assert None not in results, "every item gets a result"
        return cast(list[PublishResult], results)

    async def _partition_count(self, producer: AIOKafkaProducer, topic: str) -> int:
        """Cached: partitions are only ever added, and apply creates topics at their final size."""
        count = self._partition_counts.get(topic)
        if count is None:
            count = self._partition_counts[topic] = len(await producer.partitions_for(topic))
        return count

    async def _send(
        self, producer: AIOKafkaProducer, topic: str, partition: int, records: list[tuple[int, _Record]]
    ) -> list[tuple[Any, list[tuple[int, _Record]]]]:
        """Write one partition's records in order, in as many record batches as the size limit needs.

        Returns each batch's outcome (its metadata, or the exception) with its members.
        """
        futures: list[tuple[asyncio.Future[Any], list[tuple[int, _Record]]]] = []
        builder, members = producer.create_batch(), list[tuple[int, _Record]]()
        for index, record in records:
            # A batch's first record always fits (records were size-checked in _record).
            if builder.append(timestamp=None, key=record.key, value=record.value, headers=record.headers) is None:
                futures.append((await producer.send_batch(builder, topic, partition=partition), members))
                builder, members = producer.create_batch(), []
                builder.append(timestamp=None, key=record.key, value=record.value, headers=record.headers)
            members.append((index, record))
        if members:
            futures.append((await producer.send_batch(builder, topic, partition=partition), members))
        outcomes = await asyncio.gather(*(future for future, _ in futures), return_exceptions=True)
        return [(outcome, members) for outcome, (_, members) in zip(outcomes, futures, strict=True)]

    def _record(self, item: Event | Outgoing, batch: _BatchContext) -> _Record:
        outgoing = item if isinstance(item, Outgoing) else _PLAIN
        event = item.event if isinstance(item, Outgoing) else item
        if not isinstance(event, Event):
            raise TypeError(f"expected an event model, got {type(event).__name__}")
        event_type = event.event_type
        topic = self._settings.topic(self._catalogue.topic_for_type(event_type).name)
        subject = event.aggregate_id
        event_id = outgoing.event_id or new_event_id()
        correlation_id = outgoing.correlation_id or event_id
        headers = build_headers(
            id=event_id,
            source=batch.source,
            type=batch.type_bytes(event_type),
            time=format_time(outgoing.time).encode() if outgoing.time else batch.time,
            subject=subject,
            correlation_id=correlation_id,
            causation_id=outgoing.causation_id or correlation_id,
        )
        key = (outgoing.key or subject).encode()
        value = event.model_dump_json().encode()
        size = len(key) + len(value) + sum(len(name) + len(data) for name, data in headers)
        if size > self._max_request_size:
            raise XbusError(f"the event is {size} bytes; the largest a request may carry is {self._max_request_size}")
        return _Record(topic, key, value, headers, event_id, event_type, correlation_id)

    def _require_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise XbusError("the Publisher is not started: use `async with Publisher(...)` or await start()")
        return self._producer


class _BatchContext:
    """Header values shared by every record of one ``publish_many`` call, encoded once."""

    def __init__(self, source: bytes, time: bytes) -> None:
        self.source = source
        self.time = time
        self._types: dict[str, bytes] = {}

    def type_bytes(self, event_type: str) -> bytes:
        encoded = self._types.get(event_type)
        if encoded is None:
            encoded = self._types[event_type] = event_type.encode()
        return encoded


#: The envelope choices of an event published without :class:`Outgoing`: all defaults.
_PLAIN = Outgoing(event=None)  # type: ignore[arg-type]


class _Record(NamedTuple):
    """One record ready for a batch (a NamedTuple: made once per event, cheaper than a dataclass)."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str
    event_type: str
    correlation_id: str

    def published(self, partition: int, offset: int) -> Published:
        return Published(self.event_id, self.event_type, self.topic, partition, offset, self.correlation_id)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


@asynccontextmanager
async def open_publisher(
    settings: Settings, catalogue: Catalogue | None = None, **options: Any
) -> AsyncIterator[Publisher]:
    """A started Publisher on the configured broker (the embedded one started if it is the one
    configured) and catalogue, for the length of a block: what a script or a command needs in one
    call. A caller that has loaded the catalogue already (to check its input before it connects)
    passes it rather than have it read again. ``options`` are the Publisher's (``linger_ms``, ...)."""
    endpoints = await connect(settings, database=False)
    catalogue = catalogue or load_catalogue(settings)
    async with Publisher(settings, endpoints.kafka_bootstrap, catalogue, **options) as publisher:
        yield publisher
