"""Taking one lag sample: what the broker says now about each group's partitions.

A sample needs, per group and partition, the committed offset, the log start and the *true* log
end, and the timestamp of the first record not yet consumed (time lag is read from the record
itself, not guessed from offsets). The embedded broker's ListOffsets(latest) is wrong
(infrastructure/offsets.py), so log ends come from fetch responses' high watermarks, and the same fetches
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
import time
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from consumers.runtime.discovery import services_by_group
from infrastructure.endpoints import load_catalogue
from infrastructure.groups import (
    GroupDescription,
    describe_group,
    group_partitions,
    list_groups,
    partitions_of_topics,
    topics_under,
)
from infrastructure.offsets import LogView, read_log
from infrastructure.settings import Settings
from xbus.lag.model import GroupLag, LagSample, PartitionLag


class LagCollector:
    """Takes samples with one admin client and one group-less consumer, kept across samples."""

    def __init__(
        self,
        settings: Settings,
        admin: AIOKafkaAdminClient,
        consumer: AIOKafkaConsumer,
        groups: Sequence[str] = (),
        topics: Sequence[str] = (),
        *,
        trusted_ends: bool = False,
    ) -> None:
        """``groups`` and ``topics`` are physical names; empty: every group under the settings'
        group prefix, every topic under its topic prefix. ``trusted_ends``: the broker's ListOffsets
        is the high watermark (Apache Kafka), so only partitions whose first unread record's time is
        wanted are fetched."""
        self._settings = settings
        self._admin = admin
        self._consumer = consumer
        self._groups = tuple(groups)
        self._topics = tuple(topics)
        self._service_topics = _service_topics(settings)
        self._retention: dict[str, int | None] = {}
        self._trusted_ends = trusted_ends

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
        view = await read_log(self._consumer, starts, wanted, trusted_ends=self._trusted_ends)
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
    first = view.firsts[tp].get(first_unconsumed) if lag else None
    timestamp = None if first is None else first[1]
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
