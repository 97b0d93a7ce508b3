"""The runner's watchdog: every few seconds, lag and stall state of each owned partition.

It watches the runner's consumer and those of the service's projections (projection.py: a group
of their own, offsets kept in PostgreSQL), so that a stuck market-data fold shows in the
service's health like a stuck handler. It runs beside the consumer loops, not in them, so that a
batch stuck in a handler or in a retry loop is still seen. Log-end offsets come from a
group-less consumer (right on the embedded broker too, see infrastructure/offsets.py); committed offsets
are the ones the runner committed (a projection: stored), or the first offset of the first batch
it polled (where the group's committed offset put it). A partition that has yielded no batch
since it was assigned is not judged: asking the broker for the group's offsets beside the
group's own requests made the embedded broker drop the coordinator connection, and the group
then hung. Its findings go to the log (once per change), to the Prometheus gauges, and to the
health report that the process endpoint serves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from consumers.runtime import metrics
from consumers.runtime.progress import ProgressWatch
from consumers.runtime.stall import PartitionHealth, PartitionState, StallWatch
from consumers.runtime.tasks import sleep_unless
from consumers.runtime.transient import TRANSIENT_ERRORS
from infrastructure.brokers import broker_traits
from infrastructure.errors import BrokerUnavailable
from infrastructure.kafka_clients import plain_consumer
from infrastructure.offsets import log_end_offsets
from infrastructure.process_endpoint import HealthReport
from infrastructure.settings import Settings

log = structlog.get_logger("xbus.watchdog")


@dataclass(frozen=True)
class ServiceHealth:
    """What /healthz says about one service of the process."""

    service: str
    status: str
    partitions: list[PartitionHealth] = field(default_factory=list)
    seconds_since_commit: float | None = None
    outbox_backlog: int | None = None

    @property
    def healthy(self) -> bool:
        return self.status in {"starting", "ok"}

    def as_dict(self) -> dict[str, object]:
        return {
            "service": self.service,
            "status": self.status,
            "seconds_since_commit": _rounded(self.seconds_since_commit),
            "outbox_backlog": self.outbox_backlog,
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "committed": p.committed,
                    "end": p.end,
                    "lag": p.lag,
                    "idle_seconds": _rounded(p.idle_seconds),
                    "state": p.state.value,
                }
                for p in self.partitions
            ],
        }


class Watchdog:
    def __init__(self, service: str, settings: Settings, bootstrap: str) -> None:
        self.service = service
        self.interval = settings.health_interval_seconds
        self._settings = settings
        self._bootstrap = bootstrap
        self._watch = StallWatch(settings.stall_after_seconds)
        self._partitions: list[PartitionHealth] = []
        self._backlog: int | None = None
        self._checked_at: float | None = None
        self._last_commit: float | None = None
        #: The consumers watched, each with the committed offsets of its partitions and the
        #: progress of their batches under way.
        self._sources: list[_Source] = []

    def watch(
        self,
        consumer: AIOKafkaConsumer,
        committed: Mapping[TopicPartition, int],
        in_flight: Mapping[TopicPartition, ProgressWatch] | None = None,
    ) -> None:
        """Judge ``consumer``'s partitions too, ``committed`` holding the offset each has reached and
        ``in_flight`` the progress of the batch each has under way, if any."""
        self._sources.append(_Source(consumer, committed, {} if in_flight is None else in_flight))

    def unwatch(self, consumer: AIOKafkaConsumer) -> None:
        self._sources = [source for source in self._sources if source.consumer is not consumer]

    def committed_now(self) -> None:
        """Called after each successful offset commit (a projection's: each stored position)."""
        self._last_commit = time.monotonic()

    def health(self) -> ServiceHealth:
        """Safe to call from another thread: it only reads what the last check left."""
        now = time.monotonic()
        since_commit = None if self._last_commit is None else now - self._last_commit
        if self._checked_at is None:
            status = "starting"
        elif now - self._checked_at > 3 * self.interval + 5:
            status = "unresponsive"  # the event loop has not run a check for a long time
        elif any(p.state is PartitionState.STALLED for p in self._partitions):
            status = "stalled"
        else:
            status = "ok"
        return ServiceHealth(self.service, status, list(self._partitions), since_commit, self._backlog)

    async def run(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """Check every interval until ``stop`` is set; a failed check is logged and tried again.

        A broker that cannot be reached when the reader starts (a broker restarting while the
        service starts) is waited for the same way: the watchdog is no reason to stop a service."""
        while not stop.is_set():
            try:
                async with plain_consumer(self._settings, self._bootstrap) as reader:
                    while not stop.is_set():
                        try:
                            await self._check(reader, pool)
                        except (*TRANSIENT_ERRORS, KafkaError, BrokerUnavailable) as error:
                            log.info("health check incomplete", service=self.service, error=repr(error))
                        await sleep_unless(stop, self.interval)
            except BrokerUnavailable as error:
                log.info("health check incomplete", service=self.service, error=repr(error))
                await sleep_unless(stop, self.interval)

    async def _check(self, reader: AIOKafkaConsumer, pool: asyncpg.Pool) -> None:
        # A topic two of them read is judged by the first watched (the runner's own consumer).
        source_of = {tp: source for source in reversed(self._sources) for tp in source.consumer.assignment()}
        owned = sorted(source_of)
        trusted = (await broker_traits(self._settings, self._bootstrap)).true_end_offsets
        ends = await log_end_offsets(reader, owned, trusted_ends=trusted)
        now = time.monotonic()
        partitions = []
        for tp in owned:
            source = source_of[tp]
            offset = source.committed.get(tp)
            if offset is None:
                continue
            batch = source.in_flight.get(tp)
            progressed_at = None if batch is None else batch.last_progress
            health = self._watch.observe(tp.topic, tp.partition, offset, ends[tp], now, progressed_at)
            self._report_change(health)
            partitions.append(health)
        for gone in {(p.topic, p.partition) for p in self._partitions} - {(tp.topic, tp.partition) for tp in owned}:
            self._watch.forget(*gone)
            metrics.forget_partition(self.service, *gone)
        self._partitions = partitions
        self._backlog = await pool.fetchval("select count(*) from xbus_outbox where sent_at is null")
        metrics.OUTBOX_BACKLOG.labels(self.service).set(self._backlog)
        if self._last_commit is not None:
            metrics.SECONDS_SINCE_COMMIT.labels(self.service).set(now - self._last_commit)
        self._checked_at = now

    def _report_change(self, health: PartitionHealth) -> None:
        labels = (self.service, health.topic, str(health.partition))
        metrics.PARTITION_LAG.labels(*labels).set(health.lag)
        stalled = health.state is PartitionState.STALLED
        was_stalled = any(
            p.topic == health.topic and p.partition == health.partition and p.state is PartitionState.STALLED
            for p in self._partitions
        )
        metrics.PARTITION_STALLED.labels(*labels).set(1 if stalled else 0)
        if stalled and not was_stalled:
            log.warning(
                "partition stalled: events are waiting and nothing was committed",
                service=self.service,
                topic=health.topic,
                partition=health.partition,
                lag=health.lag,
                idle_seconds=round(health.idle_seconds, 1),
            )
        elif was_stalled and not stalled:
            log.info("partition moving again", service=self.service, topic=health.topic, partition=health.partition)


@dataclass(frozen=True)
class _Source:
    consumer: AIOKafkaConsumer
    committed: Mapping[TopicPartition, int]
    in_flight: Mapping[TopicPartition, ProgressWatch]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def process_health(services: list[ServiceHealth]) -> HealthReport:
    """The process is live while no service is stalled or unresponsive, ready once all were checked."""
    return HealthReport(
        live=all(s.healthy for s in services),
        ready=all(s.status == "ok" for s in services),
        body={"services": [s.as_dict() for s in services]},
        why="; ".join(_why(s) for s in services if s.status != "ok"),
    )


def _why(health: ServiceHealth) -> str:
    stalled = [
        f"{p.topic}[{p.partition}] (lag {p.lag}, idle {p.idle_seconds:.0f} s)"
        for p in health.partitions
        if p.state is PartitionState.STALLED
    ]
    return f"{health.service} is {health.status}" + (f": stalled {', '.join(stalled)}" if stalled else "")
