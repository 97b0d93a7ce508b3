"""Stuck-but-alive detection: a partition with events waiting whose committed offset does not move.

A worker whose process is alive but whose partition makes no progress (a handler waiting forever
on a lock, a retry loop that never succeeds, a consumer that lost its fetcher) looks healthy to
anything that only checks the process. The rule here is the one operators apply by eye: lag is
above zero and the partition has made no progress for ``stall_after`` seconds. The clock starts
at the first sample that shows lag after the partition was caught up, or at the last move of the
committed offset, so an idle partition is never reported and new work gets the full stall time;
and a batch of the partition under way that completes statements is progress too, so a partition
working through a backlog in long batches is not taken for a stuck one (a stuck handler completes
none: it waits on a lock, or on something outside that does not come).

Pure logic on samples (committed offset, log-end offset, time), so it is tested without a broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PartitionState(StrEnum):
    OK = "ok"
    STALLED = "stalled"


@dataclass(frozen=True)
class PartitionHealth:
    topic: str
    partition: int
    committed: int
    end: int
    #: Seconds since the committed offset last moved, the partition was last caught up, or its
    #: batch under way last completed a statement.
    idle_seconds: float
    state: PartitionState

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


@dataclass
class _Progress:
    committed: int
    since: float
    caught_up: bool


class StallWatch:
    def __init__(self, stall_after: float) -> None:
        self.stall_after = stall_after
        self._progress: dict[tuple[str, int], _Progress] = {}

    def observe(
        self, topic: str, partition: int, committed: int, end: int, now: float, progressed_at: float | None = None
    ) -> PartitionHealth:
        """Record one sample of a partition and say whether it is stalled; ``progressed_at``: when
        its batch under way, if it has one, last completed a statement (same clock as ``now``)."""
        key = (topic, partition)
        progress = self._progress.get(key)
        caught_up = committed >= end
        if progress is None or committed != progress.committed or caught_up or progress.caught_up:
            progress = self._progress[key] = _Progress(committed, now, caught_up)
        idle = now - (progress.since if progressed_at is None else max(progress.since, progressed_at))
        state = PartitionState.STALLED if end > committed and idle >= self.stall_after else PartitionState.OK
        return PartitionHealth(topic, partition, committed, end, idle, state)

    def forget(self, topic: str, partition: int) -> None:
        """A revoked partition is another member's business now."""
        self._progress.pop((topic, partition), None)
