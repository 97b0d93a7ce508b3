"""Running a service until its group has committed up to target offsets, then stopping it.

Progress is read from outside, as lag tools read it: the group's committed offsets (an
OffsetFetch naming the partitions works while the group is active, on Kafka and on the embedded
broker). The runner commits only after its transaction committed, so offsets at the target mean
the state holds every event below it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from consumers.runtime.runner import ServiceRunner
from infrastructure.errors import XbusError
from infrastructure.groups import committed_offsets

log = structlog.get_logger("xbus.rebuild")

#: ``progress(done, total)``: events read so far out of those to read.
Progress = Callable[[int, int], None]

POLL_SECONDS = 0.5
LOG_EVERY_SECONDS = 5.0


class RebuildFailed(XbusError):
    """The service stopped before it had read up to the target."""


@dataclass(frozen=True)
class Span:
    """Where each partition starts and where it must be read up to."""

    start: Mapping[TopicPartition, int]
    target: Mapping[TopicPartition, int]

    @property
    def total(self) -> int:
        return sum(max(self.target[tp] - self.start.get(tp, 0), 0) for tp in self.target)

    def done(self, committed: Mapping[TopicPartition, int | None]) -> int:
        return sum(max(min(committed.get(tp) or 0, self.target[tp]) - self.start.get(tp, 0), 0) for tp in self.target)

    def reached(self, committed: Mapping[TopicPartition, int | None]) -> bool:
        return all((committed.get(tp) or 0) >= end for tp, end in self.target.items())


def log_progress(service: str) -> Progress:
    """A progress reporter that logs a line every few seconds (the CLI shows a bar instead)."""
    last = 0.0

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= LOG_EVERY_SECONDS or done >= total:
            last = now
            log.info("rebuilding", service=service, done=done, total=total)

    return report


async def run_to(runner: ServiceRunner, admin: AIOKafkaAdminClient, group: str, span: Span, progress: Progress) -> None:
    """Run ``runner`` until ``group`` has committed ``span.target`` on every partition, then stop it."""
    committed = await committed_offsets(admin, group, span.target)
    if span.reached(committed):
        progress(span.done(committed), span.total)
        return
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop), name=f"rebuild-{runner.service.name}")
    try:
        await _until_reached(task, admin, group, span, progress)
    except BaseException:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        raise
    stop.set()
    await task


async def _until_reached(
    task: asyncio.Task[None], admin: AIOKafkaAdminClient, group: str, span: Span, progress: Progress
) -> None:
    while True:
        committed = await committed_offsets(admin, group, span.target)
        progress(span.done(committed), span.total)
        if span.reached(committed):
            return
        await asyncio.wait({task}, timeout=POLL_SECONDS)
        if task.done():
            task.result()  # raises the runner's failure
            raise RebuildFailed(f"{task.get_name()} stopped before it had read its topics up to the target")
