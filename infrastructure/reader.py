"""Reading events back from topics without a consumer group: for `xbus tail`, the demo and tests.

Records are decoded leniently: a record with bad headers or a non-JSON payload is still shown,
with the problem, because the point of reading a topic is often to find such records.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infrastructure.errors import XbusError
from infrastructure.offsets import log_end_offsets
from schemas import Envelope, EnvelopeError


@dataclass(frozen=True)
class ReadEvent:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    envelope: Envelope | None
    data: Any
    headers: dict[str, str]
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "key": self.key,
            "headers": self.headers,
            "data": self.data,
            **({"problem": self.problem} if self.problem else {}),
        }


def decode(record: ConsumerRecord[bytes, bytes]) -> ReadEvent:
    headers = {name: value.decode(errors="replace") for name, value in record.headers or ()}
    problems = []
    envelope: Envelope | None = None
    try:
        envelope = Envelope.from_headers(record.headers)
    except EnvelopeError as error:
        problems.append(str(error))
    try:
        data = json.loads(record.value) if record.value is not None else None
    except ValueError:
        data = (record.value or b"").decode(errors="replace")
        problems.append("payload is not JSON")
    return ReadEvent(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key.decode(errors="replace") if record.key is not None else None,
        envelope=envelope,
        data=data,
        headers=headers,
        problem="; ".join(problems) or None,
    )


async def topic_partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    """Partitions of an existing topic. Checks the full topic list first: asking the embedded
    broker about an unknown topic by name creates it."""
    if topic not in await admin.list_topics():
        raise XbusError(f"topic {topic} does not exist; `xbus topics list` shows the topics")
    [description] = await admin.describe_topics([topic])
    return [
        TopicPartition(topic, p["partition"]) for p in sorted(description["partitions"], key=lambda p: p["partition"])
    ]


async def read_topic(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    *,
    last: int | None = None,
    follow: bool = False,
    idle_ms: int = 500,
) -> AsyncIterator[ReadEvent]:
    """Events of ``partitions`` (see :func:`topic_partitions`): the last ``last`` per partition
    (all when ``None``), then new ones if ``follow``; without ``follow`` it stops at the end
    offsets seen at the start."""
    ends = await log_end_offsets(consumer, partitions)
    consumer.resume(*partitions)
    starts = await consumer.beginning_offsets(partitions)
    for tp in partitions:
        consumer.seek(tp, starts[tp] if last is None else max(starts[tp], ends[tp] - last))
    remaining = {tp for tp in partitions if (await consumer.position(tp)) < ends[tp]}
    while follow or remaining:
        batches = await consumer.getmany(timeout_ms=idle_ms)
        for tp, records in sorted(batches.items(), key=lambda item: item[0].partition):
            for record in records:
                if not follow and record.offset >= ends[tp]:
                    break
                yield decode(record)
            if not follow and tp in remaining and await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
