"""The Publisher: the one way events get onto Kafka.

It picks the topic from the catalogue, keys by aggregate id, wraps the event in the CloudEvents
envelope and waits for acks=all. aiokafka's own default is acks=1, which loses acknowledged
events when a leader fails; we never rely on it. The idempotent producer is used where the broker
supports it; the embedded broker does not (InitProducerId fails), so we fall back to a plain
acks=all producer with one warning: duplicates from retries are then absorbed by the consumers'
inboxes, which is where exactly-once effects come from anyway.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from schemas import Envelope, Event
from xbus.catalogue import Catalogue
from xbus.errors import BrokerUnavailable, XbusError
from xbus.kafka import client_options
from xbus.settings import Settings

log = structlog.get_logger("xbus.publisher")


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
        self._catalogue = catalogue
        self._options = {
            **client_options(settings, bootstrap),
            "acks": "all",
            "linger_ms": linger_ms,
            "compression_type": compression_type,
            "max_request_size": max_request_size,
        }
        self._producer: AIOKafkaProducer | None = None
        self.idempotent = False

    async def start(self) -> None:
        producer = AIOKafkaProducer(**self._options, enable_idempotence=True)
        try:
            await producer.start()
            self.idempotent = True
        except KafkaConnectionError as error:
            await producer.stop()
            raise BrokerUnavailable(
                f"Kafka at {self._options['bootstrap_servers']} did not answer ({error}); check XBUS_KAFKA_BOOTSTRAP"
            ) from None
        except KafkaError as error:
            await producer.stop()
            log.warning(
                "broker refused the idempotent producer; publishing with plain acks=all "
                "(consumer inboxes absorb retry duplicates)",
                error=type(error).__name__,
            )
            producer = AIOKafkaProducer(**self._options)
            await producer.start()
        self._producer = producer

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
        """Publish a batch; one result per item, in order. A failed item does not stop the others."""
        producer = self._require_started()
        pending: list[tuple[str, Envelope, str] | PublishFailed] = []
        futures: list[asyncio.Future[object]] = []
        for item in items:
            outgoing = item if isinstance(item, Outgoing) else Outgoing(item)
            try:
                topic, envelope, key, payload = self._record(outgoing)
                futures.append(await producer.send(topic, payload, key=key.encode(), headers=envelope.to_headers()))
                pending.append((topic, envelope, outgoing.event.event_type))
            except (KafkaError, XbusError, LookupError, TypeError) as error:
                pending.append(PublishFailed(getattr(outgoing.event, "event_type", "?"), _describe(error)))
        outcomes: Sequence[object] = await asyncio.gather(*futures, return_exceptions=True)
        return _results(pending, outcomes)

    def _record(self, outgoing: Outgoing) -> tuple[str, Envelope, str, bytes]:
        event = outgoing.event
        if not isinstance(event, Event):
            raise TypeError(f"expected an event model, got {type(event).__name__}")
        topic = self._settings.topic(self._catalogue.topic_for_type(event.event_type).name)
        subject = event.aggregate_id
        envelope = Envelope.new(
            type=event.event_type,
            subject=subject,
            source=self._settings.source,
            id=outgoing.event_id,
            time=outgoing.time,
            correlation_id=outgoing.correlation_id,
            causation_id=outgoing.causation_id,
        )
        return topic, envelope, outgoing.key or subject, event.model_dump_json().encode()

    def _require_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise XbusError("the Publisher is not started: use `async with Publisher(...)` or await start()")
        return self._producer


def _results(pending: list[tuple[str, Envelope, str] | PublishFailed], outcomes: Sequence[object]) -> list[PublishResult]:
    results: list[PublishResult] = []
    sent = iter(outcomes)
    for entry in pending:
        if isinstance(entry, PublishFailed):
            results.append(entry)
            continue
        topic, envelope, event_type = entry
        outcome = next(sent)
        if isinstance(outcome, BaseException):
            results.append(PublishFailed(event_type, _describe(outcome)))
        else:
            results.append(
                Published(envelope.id, event_type, topic, outcome.partition, outcome.offset, envelope.correlation_id)  # type: ignore[attr-defined]
            )
    return results


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
