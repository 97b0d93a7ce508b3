"""`xbus topics apply | list`: create what topics.yaml has and the cluster lacks; report drift.

Apply never deletes, shrinks or alters a topic: on a shared cluster that is a decision for a
person. Partition counts cannot be changed safely for keyed topics anyway (keys would move), and
the embedded broker cannot add partitions at all, so drift is reported, not fixed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from infrastructure.catalogue import Catalogue, TopicSpec
from infrastructure.errors import XbusError
from infrastructure.offsets import log_end_offsets


@dataclass(frozen=True)
class Drift:
    topic: str
    setting: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.setting} is {self.actual}, topics.yaml says {self.expected}"


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    #: Facts worth a line that are not drift, such as replication capped by the broker count.
    notes: list[str] = field(default_factory=list)


async def apply_topics(admin: AIOKafkaAdminClient, catalogue: Catalogue, prefix: str = "") -> ApplyReport:
    report = ApplyReport()
    brokers = len((await admin.describe_cluster())["brokers"])
    present = set(await admin.list_topics())
    wanted = {prefix + spec.name: spec for spec in catalogue.topics}
    missing = [name for name in wanted if name not in present]
    if missing:
        await _create(admin, [(name, wanted[name]) for name in missing], brokers)
        await _await_leaders(admin, missing)
        report.created.extend(missing)
    capped = sorted({spec.replication_factor for spec in wanted.values() if spec.replication_factor > brokers})
    if capped:
        report.notes.append(
            f"the cluster has {brokers} broker(s): topics asking for replication factor {', '.join(map(str, capped))} "
            f"have {brokers} replica(s)"
        )
    existing = [name for name in wanted if name in present]
    report.existing.extend(existing)
    if existing:
        report.drift.extend(await _drift(admin, {name: wanted[name] for name in existing}, brokers))
    return report


async def _create(admin: AIOKafkaAdminClient, topics: list[tuple[str, TopicSpec]], brokers: int) -> None:
    new_topics = [
        NewTopic(name, spec.partitions, min(spec.replication_factor, brokers), topic_configs=spec.broker_configs())
        for name, spec in topics
    ]
    response = await admin.create_topics(new_topics)
    for name, code, *rest in response.topic_errors:
        if code and for_code(code) is not TopicAlreadyExistsError:
            message = rest[0] if rest and rest[0] else for_code(code).__name__
            raise XbusError(f"could not create topic {name}: {message}")


async def _await_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> None:
    """Return once every partition of ``names`` has a leader. Apache Kafka answers CreateTopics
    before the partitions have one, and a produce or fetch sent meanwhile is refused
    (NotLeaderForPartition) and retried: `apply` hands over topics ready to use instead."""
    deadline = time.monotonic() + timeout
    while True:
        described = await admin.describe_topics(names)
        leaderless = [d["topic"] for d in described if d["error_code"] or any(p["leader"] < 0 for p in d["partitions"])]
        if not leaderless:
            return
        if time.monotonic() > deadline:
            raise XbusError(f"topics without a leader {timeout:.0f}s after their creation: {', '.join(leaderless)}")
        await asyncio.sleep(0.05)


async def _drift(admin: AIOKafkaAdminClient, topics: dict[str, TopicSpec], brokers: int) -> list[Drift]:
    drift: list[Drift] = []
    for description in await admin.describe_topics(list(topics)):
        name, spec = description["topic"], topics[description["topic"]]
        partitions = description["partitions"]
        if len(partitions) != spec.partitions:
            drift.append(Drift(name, "partitions", str(spec.partitions), str(len(partitions))))
        replicas = min((len(p["replicas"]) for p in partitions), default=0)
        if replicas < min(spec.replication_factor, brokers):
            drift.append(Drift(name, "replication factor", str(spec.replication_factor), str(replicas)))
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
    for response in await admin.describe_configs(resources):
        for _code, _message, _type, name, entries in response.resources:
            actual = {entry[0]: entry[1] for entry in entries}
            for key, expected in topics[name].broker_configs().items():
                if actual.get(key) != expected:
                    drift.append(Drift(name, key, expected, str(actual.get(key, "(unset)"))))
    return drift


@dataclass(frozen=True)
class TopicRow:
    name: str
    partitions: int
    end_offsets: dict[int, int]

    @property
    def events(self) -> int:
        return sum(self.end_offsets.values())


async def list_topics(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, catalogue: Catalogue, prefix: str = ""
) -> list[TopicRow]:
    """The catalogue's topics as the cluster has them, with correct end offsets per partition."""
    names = [prefix + spec.name for spec in catalogue.topics]
    present = set(await admin.list_topics())
    descriptions = {d["topic"]: d for d in await admin.describe_topics([n for n in names if n in present])}
    partitions = [
        TopicPartition(name, p["partition"])
        for name in names
        if name in descriptions
        for p in descriptions[name]["partitions"]
    ]
    ends = await log_end_offsets(consumer, partitions)
    return [
        TopicRow(
            name=name,
            partitions=len(descriptions[name]["partitions"]) if name in descriptions else 0,
            end_offsets={tp.partition: offset for tp, offset in ends.items() if tp.topic == name},
        )
        for name in names
    ]
