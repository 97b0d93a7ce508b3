"""Status of each partition and group, judged over a sliding window of samples (pure logic).

One sample cannot tell a consumer that is slow from one that is stuck or gone: the rules look at
the last ``window`` samples of each (group, topic, partition), first match wins (README, "Status
rules"):

1. REWIND: the committed offset went backwards between two consecutive samples.
2. OK: lag was 0 in at least one sample (a consumer that catches up now and then is healthy).
3. OK with "not judged yet" while there is a single sample.
4. STOP: lag, nothing committed across the window, and no member consumes the partition.
5. STALL: lag, nothing committed for ``stall_seconds`` (and across the window), while a member
   holds it (stuck but alive). Before ``stall_seconds`` a partition without a commit is only
   catching up: a service commits when a batch does, and a batch of a backlog takes a while. The
   time is counted from the sample where the committed offset last moved (or lag was zero), so
   it may be longer than the window; ``stall_seconds`` is the watchdog's ``XBUS_STALL_AFTER_SECONDS``,
   so that `xbus lag` and a service's /healthz call the same partition stalled.
6. WARN: offsets move but lag grew across the window (never fell, and ends higher).
7. OK otherwise; then an OK partition above ``warn_lag`` or ``warn_seconds`` is WARN.

A group's status is its worst partition's. Partitions that leave a sample (a group deleted, a
topic gone) are forgotten, so that they never judge a later comeback.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from aiokafka import TopicPartition

from xbus.lag.model import GroupLag, GroupReport, LagSample, PartitionLag, PartitionReport, Status
from xbus.lag.retention import time_to_loss


@dataclass(frozen=True)
class Observation:
    """One partition of one group in one sample."""

    taken_at: float
    lag: PartitionLag

    @property
    def position(self) -> int:
        """The next record the group reads (the log start before its first commit)."""
        return self.lag.log_start if self.lag.committed is None else self.lag.committed


@dataclass(frozen=True)
class Thresholds:
    warn_lag: int | None = None
    warn_seconds: float | None = None
    #: How long a partition with lag and a member may go without a commit before it is STALL.
    stall_seconds: float = 0.0


def partition_status(
    window: Sequence[Observation],
    consumed: bool,
    thresholds: Thresholds = Thresholds(),
    unchanged_since: float | None = None,
) -> tuple[Status, str]:
    """The status of one partition over ``window`` (oldest first, at least one observation) and
    why. ``consumed``: a member of the group holds the partition now (or the group has members and
    the broker does not say which partitions they hold). ``unchanged_since``: when the committed
    offset last moved (or lag was zero), if known from before the window."""
    last = window[-1]
    committed = [o.lag.committed for o in window]
    for before, after in pairwise(committed):
        if before is not None and after is not None and after < before:
            return Status.REWIND, f"committed offset went back from {before} to {after}"
    if any(o.lag.lag == 0 for o in window):
        return _thresholds(last.lag, "caught up" if last.lag.lag == 0 else "caught up within the window", thresholds)
    if len(window) < 2:
        return _thresholds(last.lag, "one sample: not judged yet", thresholds)
    lags = [o.lag.lag for o in window]
    span = f"{last.taken_at - window[0].taken_at:.1f}s ({len(window)} samples)"
    if all(c == committed[0] for c in committed):
        at = "no commit" if committed[0] is None else f"committed offset {committed[0]}"
        if not consumed:
            return Status.STOP, f"lag {lags[-1]}, {at} for {span}, and no member consumes the partition"
        still = last.taken_at - (window[0].taken_at if unchanged_since is None else unchanged_since)
        if still < thresholds.stall_seconds:
            reason = f"catching up: lag {lags[-1]}, {at} for {still:.1f}s (stalled after {thresholds.stall_seconds:g}s)"
            return _thresholds(last.lag, reason, thresholds)
        return Status.STALL, f"lag {lags[-1]}, {at} for {still:.1f}s while a member holds the partition"
    if lags[-1] > lags[0] and all(b >= a for a, b in pairwise(lags)):
        return Status.WARN, f"offsets move but lag grew from {lags[0]} to {lags[-1]} over {span}"
    return _thresholds(last.lag, f"consuming: lag {lags[0]} -> {lags[-1]} over {span}", thresholds)


def _thresholds(lag: PartitionLag, reason: str, thresholds: Thresholds) -> tuple[Status, str]:
    if thresholds.warn_lag is not None and lag.lag > thresholds.warn_lag:
        return Status.WARN, f"lag {lag.lag} above the warning threshold of {thresholds.warn_lag} messages"
    if thresholds.warn_seconds is not None and lag.lag_seconds > thresholds.warn_seconds:
        return Status.WARN, f"lag {lag.lag_seconds:.1f}s above the warning threshold of {thresholds.warn_seconds:g}s"
    return Status.OK, reason


def loss_in(window: Sequence[Observation]) -> float | None:
    """Seconds until retention deletes the oldest record not consumed, at the window's rates."""
    last = window[-1].lag
    if last.lag == 0 or last.retention_ms is None:
        return None
    elapsed = window[-1].taken_at - window[0].taken_at
    consumed = produced = 0.0
    if elapsed > 0:
        consumed = (window[-1].position - window[0].position) / elapsed
        produced = (last.log_end - window[0].lag.log_end) / elapsed
    return time_to_loss(last.retention_ms / 1000, last.lag_seconds, consumed, produced)


def consumers_of(group: GroupLag) -> Callable[[TopicPartition], bool]:
    """Whether someone is there to commit a partition: a member owns it, or the group has members
    and the broker does not say who holds what (the embedded broker never does)."""
    assigned = frozenset(tp for member in group.members for tp in member.assignment)
    if not group.members:
        return lambda tp: False
    return lambda tp: not assigned or tp in assigned


class LagJudge:
    """Keeps the window of each partition across samples and judges each new sample."""

    def __init__(
        self,
        window: int = 10,
        thresholds: Thresholds = Thresholds(),
        retention_margin_seconds: float = 3600.0,
    ) -> None:
        if window < 1:
            raise ValueError("the window holds at least one sample")
        self.window = window
        self.thresholds = thresholds
        self.retention_margin_seconds = retention_margin_seconds
        self._windows: dict[tuple[str, str, int], deque[Observation]] = {}
        #: When each partition's committed offset last moved, or its lag was last zero.
        self._unchanged_since: dict[tuple[str, str, int], float] = {}

    def judge(self, sample: LagSample) -> tuple[GroupReport, ...]:
        seen: set[tuple[str, str, int]] = set()
        reports = []
        for group in sample.groups:
            consumed = consumers_of(group)
            partitions = []
            for lag in group.partitions:
                key = (group.group, lag.topic, lag.partition)
                seen.add(key)
                window = self._windows.setdefault(key, deque(maxlen=self.window))
                if not window or window[-1].lag.committed != lag.committed or lag.lag == 0:
                    self._unchanged_since[key] = sample.taken_at
                window.append(Observation(sample.taken_at, lag))
                since = self._unchanged_since[key]
                partitions.append(self._report(window, consumed(TopicPartition(lag.topic, lag.partition)), since))
            status = max((p.status for p in partitions), default=Status.OK)
            reports.append(GroupReport(group.group, group.state, group.members, status, tuple(partitions)))
        for key in set(self._windows) - seen:
            del self._windows[key]
            del self._unchanged_since[key]
        return tuple(reports)

    def _report(self, window: Sequence[Observation], consumed: bool, unchanged_since: float) -> PartitionReport:
        status, reason = partition_status(window, consumed, self.thresholds, unchanged_since)
        loss = loss_in(window)
        return PartitionReport(
            window[-1].lag, status, reason, loss, loss is not None and loss < self.retention_margin_seconds
        )
