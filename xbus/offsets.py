"""Log-end offsets that are right on Apache Kafka and on the embedded broker.

The embedded broker answers ListOffsets(latest) with the base offset of the last batch + 1, not
the high watermark (EMBEDDED_BROKER.md). A fetch response carries the true high watermark, so we
fetch once from just below the reported end and read ``consumer.highwater``. On Apache Kafka the
two agree and the fetch costs one small read per partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from xbus.errors import BrokerUnavailable


async def log_end_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], timeout: float = 10.0
) -> dict[TopicPartition, int]:
    """High watermark per partition. ``consumer`` must have no group and is left assigned to them."""
    if not partitions:
        return {}
    consumer.assign(list(partitions))
    reported = await consumer.end_offsets(list(partitions))
    for tp in partitions:
        consumer.seek(tp, max(reported[tp] - 1, 0))
    deadline = time.monotonic() + timeout
    highwater: dict[TopicPartition, int] = {}
    while len(highwater) < len(partitions):
        if time.monotonic() > deadline:
            missing = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions if tp not in highwater)
            raise BrokerUnavailable(f"no fetch answer within {timeout:.0f}s for {missing}")
        await consumer.getmany(*[tp for tp in partitions if tp not in highwater], timeout_ms=200, max_records=1)
        for tp in partitions:
            value = consumer.highwater(tp)
            if value is not None:
                highwater[tp] = max(value, reported[tp])
        await asyncio.sleep(0)
    return highwater
