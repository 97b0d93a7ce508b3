"""Log-end offsets that are right on Apache Kafka and on Tansu.

Apache Kafka answers ListOffsets(latest) with the high watermark: callers that know they talk to
it (``BrokerTraits.true_end_offsets``) pass ``trusted_ends`` and the answer is used as it is.
Tansu answers with the base offset of the last batch + 1 (docs/brokers.md). A fetch response
carries the true high watermark, so without ``trusted_ends`` we fetch from just below the
reported end (or from the offsets whose records are wanted as well, for lag's timestamps) and
read ``consumer.highwater``: right on both brokers, at one small read per partition.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from infrastructure.errors import BrokerUnavailable


async def log_end_offsets(
    consumer: AIOKafkaConsumer,
    partitions: Sequence[TopicPartition],
    timeout: float = 10.0,
    *,
    trusted_ends: bool = False,
) -> dict[TopicPartition, int]:
    """High watermark per partition. ``consumer`` must have no group and is left assigned to them, paused."""
    return (await read_log(consumer, dict.fromkeys(partitions, 0), {}, timeout, trusted_ends=trusted_ends)).ends


#: How long a read may wait for the fetches it needs before the broker is declared unavailable.
FETCH_TIMEOUT_SECONDS = 10.0
#: One getmany's wait: short, so a partition answered quickly moves on to its next needed offset.
POLL_MS = 50


@dataclass(frozen=True)
class LogView:
    """What the fetches found per partition: its true end, and the first record (its offset and
    timestamp in ms) at or after each offset asked for (below the end)."""

    ends: dict[TopicPartition, int]
    firsts: dict[TopicPartition, dict[int, tuple[int, int]]]


@dataclass
class _Reading:
    """One partition being read: where the current run of records started, what is still needed."""

    position: int
    pending: list[int]
    end: int | None = None
    found: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.end is not None and not self.pending


async def read_log(
    consumer: AIOKafkaConsumer,
    starts: Mapping[TopicPartition, int],
    wanted: Mapping[TopicPartition, Iterable[int]],
    timeout: float = FETCH_TIMEOUT_SECONDS,
    *,
    trusted_ends: bool = False,
) -> LogView:
    """True log ends of ``starts``' partitions and the first record (offset, timestamp) at or after
    each offset of ``wanted`` (offsets at or past the end need nothing). ``consumer`` has no group and
    is left assigned to the partitions, positions where the reads left them, and every one of them
    paused: a reader kept across reads (the lag monitor, a watchdog) must not go on fetching at the
    ends between them, which Apache Kafka would hold for the fetch's wait and Tansu pay for in CPU;
    a caller that reads on resumes them (the next ``read_log`` assigns them afresh).

    Each partition's first fetch starts at the lowest offset wanted (or just below the reported
    end), so its answer carries both the high watermark and the first records; many groups at
    different offsets of one partition then cost one fetch round per distinct gap: every record
    returned answers every offset it reaches, and the partition jumps to its lowest one still
    needed. With ``trusted_ends`` the reported ends are the sample's, and only partitions with
    records wanted below them are fetched."""
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
        if trusted_ends:
            readings[tp].end = reported[tp]
            readings[tp].pending = [offset for offset in pending if offset < reported[tp]]
        consumer.seek(tp, first)
    consumer.pause(*[tp for tp, reading in readings.items() if reading.done])  # nothing to fetch there
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
        at = bisect.bisect_left(offsets, offset)
        reading.found[offset] = (offsets[at], timestamps[at])
    reading.pending = [offset for offset in reading.pending if offset not in reading.found]
    reading.position = offsets[-1] + 1
