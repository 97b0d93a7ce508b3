"""The tasks a runner keeps beside its consumer, and the rule that binds them to it.

A service without its relay, its watchdog, its timers or a worker must not look healthy while its
outbox grows or its partitions sit still, so any of them that dies of an error stops the runner,
which then raises that error. A background task (``Service.background``) has a second way to
fail: returning while the service still runs, since it is meant to run for as long as the
service does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger("xbus.runner")


class Supervisor:
    def __init__(self, service: str, stop: asyncio.Event) -> None:
        self.service = service
        self._stop = stop
        self._tasks: list[asyncio.Task[None]] = []
        #: The first error of a supervised task: the runner raises it once it has stopped.
        self.failure: BaseException | None = None

    def start(self, work: Coroutine[Any, Any, None], name: str, *, runs_until_stop: bool = False) -> None:
        """Run ``work`` beside the consumer; with ``runs_until_stop``, ending before the stop is a failure."""
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(self._ended_early if runs_until_stop else self._ended)
        self._tasks.append(task)

    def watch(self, task: asyncio.Task[None]) -> None:
        """Stop the runner if ``task`` (started and awaited elsewhere: a batch worker) dies of an error."""
        task.add_done_callback(self._ended)

    async def finish(self) -> None:
        """Wait for the tasks started here, which return once ``stop`` is set."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _ended_early(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is None and not self._stop.is_set() and self.failure is None:
            self.failure = RuntimeError(f"{task.get_name()} returned before the service was asked to stop")
            log.error("background task ended; stopping", service=self.service, task=task.get_name())
            self._stop.set()
        self._ended(task)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()
            log.error(
                "runner task failed; stopping", service=self.service, task=task.get_name(), error=repr(self.failure)
            )
            self._stop.set()
