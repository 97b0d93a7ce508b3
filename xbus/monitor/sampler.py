"""Lag sampled on a fixed beat: the latest report, a bounded history per group, status changes logged.

One sampler per process holds the only LagWatcher, so the status windows are those of one
continuous series of samples however many pages, scrapes or API clients read the result. A
sample that fails (broker or database away for a moment) is logged and retried on the next beat:
a monitor must outlive the outages it is there to show.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from xbus.lag.model import GroupReport, LagReport, Status

log = structlog.get_logger("xbus.monitor")

#: Points kept per group: an hour at the default 5 s interval.
HISTORY_POINTS = 720


class LagSource(Protocol):
    """What the sampler needs of a LagWatcher (xbus/lag/watch.py)."""

    async def report(self) -> LagReport: ...


@dataclass(frozen=True)
class HistoryPoint:
    """One group in one sample: what a chart of the group over time needs."""

    taken_at: float
    lag: int
    lag_seconds: float
    status: Status

    def to_json(self) -> dict[str, Any]:
        return {
            "t": round(self.taken_at, 3),
            "lag": self.lag,
            "lag_seconds": round(self.lag_seconds, 3),
            "status": self.status.name,
        }


class LagSampler:
    def __init__(self, source: LagSource, interval: float, history: int = HISTORY_POINTS) -> None:
        self.source = source
        self.interval = interval
        self.latest: LagReport | None = None
        #: Samples that failed since start; exported, so that an alert can see a blind monitor.
        self.failures = 0
        #: The last failure's one-line description, until a sample succeeds again.
        self.last_error: str | None = None
        self._history_points = history
        self._history: dict[str, deque[HistoryPoint]] = {}
        self._latest_at: float | None = None  # monotonic: the age of the latest sample

    @property
    def stale_after(self) -> float:
        """Seconds without a good sample after which the monitor calls itself unhealthy."""
        return max(3 * self.interval, 30.0)

    def age(self) -> float | None:
        """Seconds since the latest good sample; None before the first."""
        return None if self._latest_at is None else time.monotonic() - self._latest_at

    def history(self) -> dict[str, list[HistoryPoint]]:
        return {group: list(points) for group, points in self._history.items()}

    async def sample(self) -> LagReport:
        """Take one sample now and keep it."""
        report = await self.source.report()
        self._log_changes(report)
        self._keep(report)
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every ``interval`` seconds (from start to start) until ``stop`` is set."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            try:
                await self.sample()
            except Exception as error:  # a failed sample must not end the monitor: logged, retried
                self.failures += 1
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("lag sample failed; retrying on the next beat", error=self.last_error, exc_info=True)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, self.interval - (loop.time() - started)))

    def _keep(self, report: LagReport) -> None:
        self.latest, self._latest_at, self.last_error = report, time.monotonic(), None
        seen = {group.group for group in report.groups}
        for gone in self._history.keys() - seen:
            del self._history[gone]
        for group in report.groups:
            points = self._history.setdefault(group.group, deque(maxlen=self._history_points))
            points.append(HistoryPoint(report.taken_at, group.lag, group.lag_seconds, group.status))

    def _log_changes(self, report: LagReport) -> None:
        before = {group.group: group.status for group in self.latest.groups} if self.latest else {}
        for group in report.groups:
            previous = before.pop(group.group, None)
            if previous is not group.status:
                emit = log.info if group.status is Status.OK else log.warning
                emit(
                    "group status changed",
                    group=group.group,
                    status=group.status.name,
                    previous=None if previous is None else previous.name,
                    lag=group.lag,
                    reason=_worst_reason(group),
                )
        for gone in before:
            log.info("group no longer reported", group=gone)


def _worst_reason(group: GroupReport) -> str | None:
    """Why the group has its status: the reason of its worst partition."""
    worst = max(group.partitions, key=lambda partition: partition.status, default=None)
    return None if worst is None else worst.reason
