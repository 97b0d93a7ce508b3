"""Taking one lag sample: what the broker says now about each group's partitions.

A sample needs, per group and partition, the committed offset, the log start and the *true* log
end, and the timestamp of the first record not yet consumed (time lag is read from the record
itself, not guessed from offsets). The embedded broker's ListOffsets(latest) is wrong
(xbus/offsets.py), so log ends come from fetch responses' high watermarks, and the same fetches
bring the timestamps:

- per partition the first fetch starts at the lowest offset anyone needs (the lowest committed
  offset of a lagging group, or just below the reported end), so its response carries both the
  high watermark and the first records;
- many groups sit at different offsets of one partition: every returned record's timestamp
  answers every group whose first unconsumed offset it covers, and the partition then jumps to
  its lowest offset still needed, so the cost is one fetch round per distinct gap, not one per
  group.

The group-less consumer used here (``plain_consumer`` with ``fetch_max_wait_ms`` set) fetches
with the services' short fetch wait: a fetch at the end of a partition (an empty one, or one
every group has read) is answered only when the wait runs out, with the right high watermark
(measured on the embedded broker and aiokafka 0.14: ``consumer.highwater`` is set by an empty
answer too, but ``getmany`` returns before it when its timeout is shorter than the broker's
wait, so we loop until every partition has one).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from consumers.runtime.discovery import services_by_group
from xbus.errors import BrokerUnavailable
from xbus.groups import (
    GroupDescription,
    describe_group,
    group_partitions,
    list_groups,
    partitions_of_topics,
    topics_under,
)
from xbus.lag.model import GroupLag, LagSample, PartitionLag
from xbus.platform import load_catalogue
from xbus.settings import Settings

#: How long one sample may wait for the fetches it needs before the broker is declared unavailable.
FETCH_TIMEOUT_SECONDS = 10.0
#: One getmany's wait: short, so a partition answered quickly moves on to its next needed offset.
POLL_MS = 50


@dataclass(frozen=True)
class LogView:
    """What the fetches found per partition: its true end, and the timestamp (ms) of the first
    record at or after each offset asked for (below the end)."""

    ends: dict[TopicPartition, int]
    timestamps: dict[TopicPartition, dict[int, int]]


@dataclass
class _Reading:
    """One partition being read: where the current run of records started, what is still needed."""

    position: int
    pending: list[int]
    end: int | None = None
    found: dict[int, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.end is not None and not self.pending


async def read_log(
    consumer: AIOKafkaConsumer,
    starts: Mapping[TopicPartition, int],
    wanted: Mapping[TopicPartition, Iterable[int]],
    timeout: float = FETCH_TIMEOUT_SECONDS,
) -> LogView:
    """True log ends of ``starts``' partitions and the first record's timestamp at or after each
    offset of ``wanted`` (offsets at or past the end need nothing). ``consumer`` has no group and
    is left assigned to the partitions."""
    partitions = sorted(starts)
    if not partitions:
        return LogView({}, {})
    reported = await consumer.end_offsets(partitions)
    consumer.assign(partitions)
    readings: dict[TopicPartition, _Reading] = {}
    for tp in partitions:
        pending = sorted({max(offset, starts[tp]) for offset in wanted.get(tp, ())})
        first = max(starts[tp], min([*pending, reported[tp] - 1]))
        readings[tp] = _Reading(first, pending)
        consumer.seek(tp, first)
    deadline = time.monotonic() + timeout
    while active := [tp for tp, reading in readings.items() if not reading.done]:
        if time.monotonic() > deadline:
            missing = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in active)
            raise BrokerUnavailable(f"no fetch answer within {timeout:.0f}s for {missing}")
        batches = await consumer.getmany(*active, timeout_ms=POLL_MS)
        for tp in active:
            reading = readings[tp]
            records = batches.get(tp, [])
            if records:
                _take(reading, [r.offset for r in records], [r.timestamp for r in records])
            if reading.end is None and (highwater := consumer.highwater(tp)) is not None:
                # the first answer's end is the sample's: records appended later are the next one's
                reading.end = max(highwater, reported[tp])
                reading.pending = [offset for offset in reading.pending if offset < reading.end]
            if reading.done:
                consumer.pause(tp)
            elif reading.pending and reading.pending[0] > reading.position:
                reading.position = reading.pending[0]
                consumer.seek(tp, reading.position)
        await asyncio.sleep(0)
    return LogView(
        {tp: reading.end or 0 for tp, reading in readings.items()},
        {tp: reading.found for tp, reading in readings.items()},
    )


def _take(reading: _Reading, offsets: Sequence[int], timestamps: Sequence[int]) -> None:
    """Records read on from ``reading.position`` answer every pending offset they reach."""
    answered = [offset for offset in reading.pending if reading.position <= offset <= offsets[-1]]
    for offset in answered:
        reading.found[offset] = timestamps[bisect.bisect_left(offsets, offset)]
    reading.pending = [offset for offset in reading.pending if offset not in reading.found]
    reading.position = offsets[-1] + 1


class LagCollector:
    """Takes samples with one admin client and one group-less consumer, kept across samples."""

    def __init__(
        self,
        settings: Settings,
        admin: AIOKafkaAdminClient,
        consumer: AIOKafkaConsumer,
        groups: Sequence[str] = (),
        topics: Sequence[str] = (),
    ) -> None:
        """``groups`` and ``topics`` are physical names; empty: every group under the settings'
        group prefix, every topic under its topic prefix."""
        self._settings = settings
        self._admin = admin
        self._consumer = consumer
        self._groups = tuple(groups)
        self._topics = tuple(topics)
        self._service_topics = _service_topics(settings)
        self._retention: dict[str, int | None] = {}

    async def sample(self) -> LagSample:
        groups = list(self._groups) or [
            group for group in await list_groups(self._admin) if group.startswith(self._settings.group(""))
        ]
        topics = self._topics or await topics_under(self._admin, self._settings.topic(""))
        candidates = await partitions_of_topics(self._admin, topics)
        found = dict(zip(groups, await asyncio.gather(*(self._group(g, candidates) for g in groups)), strict=True))
        involved = sorted({tp for _, offsets in found.values() for tp in offsets})
        starts = await self._consumer.beginning_offsets(involved) if involved else {}
        wanted: dict[TopicPartition, set[int]] = {}
        for _, offsets in found.values():
            for tp, offset in offsets.items():
                wanted.setdefault(tp, set()).add(starts[tp] if offset is None else offset)
        view = await read_log(self._consumer, starts, wanted)
        retention = await self._retention_ms({tp.topic for tp in involved})
        taken_at = time.time()
        return LagSample(
            taken_at,
            tuple(
                GroupLag(
                    group,
                    description.state,
                    description.members,
                    tuple(
                        _partition_lag(tp, offset, starts[tp], view, description, retention[tp.topic], taken_at)
                        for tp, offset in sorted(offsets.items())
                    ),
                )
                for group, (description, offsets) in found.items()
            ),
        )

    async def _group(
        self, group: str, candidates: Sequence[TopicPartition]
    ) -> tuple[GroupDescription, dict[TopicPartition, int | None]]:
        """One group's description and committed offsets."""
        description = await describe_group(self._admin, group)
        declared = [tp for tp in candidates if tp.topic in self._service_topics.get(group, ())]
        return description, await group_partitions(self._admin, description, candidates, declared)

    async def _retention_ms(self, topics: Iterable[str]) -> dict[str, int | None]:
        """retention.ms per topic, asked once per topic for the collector's life (it is set when
        topics.yaml is applied, rarely changed)."""
        unknown = sorted(set(topics) - set(self._retention))
        if unknown:
            resources = [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in unknown]
            for topic in unknown:
                self._retention[topic] = None
            for response in await self._admin.describe_configs(resources):
                for _code, _message, _type, topic, entries in response.resources:
                    values = {entry[0]: entry[1] for entry in entries}
                    self._retention[topic] = _retention_value(values.get("retention.ms"))
        return self._retention


def _service_topics(settings: Settings) -> dict[str, frozenset[str]]:
    """The physical topics each xbus service's group reads, by physical group id."""
    catalogue = load_catalogue(settings)
    return {
        group: frozenset(settings.topic(topic) for topic in service.topics(catalogue))
        for group, service in services_by_group(settings).items()
    }


def _retention_value(text: str | None) -> int | None:
    """retention.ms as Kafka writes it; -1 (or anything not a positive number) is unlimited."""
    if text is None or not text.lstrip("-").isdigit() or int(text) < 0:
        return None
    return int(text)


def _partition_lag(
    tp: TopicPartition,
    committed: int | None,
    start: int,
    view: LogView,
    description: GroupDescription,
    retention_ms: int | None,
    now: float,
) -> PartitionLag:
    end = view.ends[tp]
    # records below the log start are gone: the first unconsumed record that exists is there
    first_unconsumed = start if committed is None else max(committed, start)
    lag = max(end - first_unconsumed, 0)
    timestamp = view.timestamps[tp].get(first_unconsumed) if lag else None
    owner = description.owner(tp)
    return PartitionLag(
        topic=tp.topic,
        partition=tp.partition,
        committed=committed,
        log_start=start,
        log_end=end,
        lag=lag,
        lag_seconds=0.0 if timestamp is None else max(now - timestamp / 1000, 0.0),
        owner=None if owner is None else str(owner),
        retention_ms=retention_ms,
    )
