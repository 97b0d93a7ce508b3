"""Finding the offset of a point in time.

Apache Kafka answers it (ListOffsets by timestamp, ``offsets_for_times``), as its own
`kafka-consumer-groups --reset-offsets` asks it. Tansu's ``offsets_for_times`` matches the time
it stored each batch and answers 0 for a future time (docs/brokers.md), so there we read: a
binary search per partition over the records' own timestamps, all partitions at once. It assumes
timestamps within a partition never go backwards, which holds for our producers (CreateTime
stamped as each record is appended); with out-of-order timestamps the answer is an offset where
they cross the time, not necessarily the first one at or after it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from infrastructure.offsets import read_log

#: Reads, per partition, the first record at or after an offset: its (offset, timestamp ms), or
#: None when there is none before the log end.
FirstRecords = Callable[[Mapping[TopicPartition, int]], Awaitable[dict[TopicPartition, tuple[int, int] | None]]]


async def offsets_at_time(
    first_records: FirstRecords, bounds: Mapping[TopicPartition, tuple[int, int]], at_ms: int
) -> dict[TopicPartition, int]:
    """Per partition, the first offset in ``[start, end)`` whose record's timestamp is at or after
    ``at_ms``: ``end`` when every record is older (nothing to re-read), ``start`` when none is.

    A binary search over all partitions at once: each round reads one record per partition still
    searched, so the rounds are log2 of the longest partition, whatever the number of partitions.
    """
    ranges = {tp: [start, end] for tp, (start, end) in bounds.items()}
    while searching := {tp: (lo + hi) // 2 for tp, (lo, hi) in ranges.items() if lo < hi}:
        read = await first_records(searching)
        for tp, probe in searching.items():
            record = read.get(tp)
            lo_hi = ranges[tp]
            if record is None or record[0] >= lo_hi[1] or record[1] >= at_ms:
                lo_hi[1] = probe  # the answer is at or before the probe (records between do not exist)
            else:
                lo_hi[0] = record[0] + 1  # every record up to this one is older than at_ms
    return {tp: lo for tp, (lo, _) in ranges.items()}


async def broker_offsets_at_time(
    consumer: AIOKafkaConsumer, log_end: Mapping[TopicPartition, int], at_ms: int
) -> dict[TopicPartition, int]:
    """Per partition, the broker's first offset whose timestamp is at or after ``at_ms``; the log
    end where every record is older (what Kafka's own tool does with a time past the last record)."""
    answer = await consumer.offsets_for_times(dict.fromkeys(log_end, at_ms))
    found = {}
    for tp, end in log_end.items():
        at = answer.get(tp)
        found[tp] = end if at is None else at.offset
    return found


def consumer_first_records(consumer: AIOKafkaConsumer) -> FirstRecords:
    """:data:`FirstRecords` read by a group-less ``consumer`` (infrastructure/offsets.py ``read_log``)."""

    async def read(probes: Mapping[TopicPartition, int]) -> dict[TopicPartition, tuple[int, int] | None]:
        view = await read_log(consumer, probes, {tp: [offset] for tp, offset in probes.items()})
        return {tp: view.firsts[tp].get(offset) for tp, offset in probes.items()}

    return read
