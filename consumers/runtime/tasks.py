"""The tasks a runner keeps beside its consumer: the rule that binds them to it, and how they wait.

A service without its relay, its watchdog, its timers or a worker must not look healthy while its
outbox grows or its partitions sit still, so any of them that dies of an error stops the runner,
which then raises that error. A background task (``Service.background``) has a second way to
fail: returning while the service still runs, since it is meant to run for as long as the
service does.

Every such task waits in a way a stop request cuts short (``sleep_unless``, ``wait_any``,
``unless_stopped``), and retries its start through an outage (``until_it_works``): PostgreSQL or
the broker restarting is no reason to stop a service that is already running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog

T = TypeVar("T")

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


async def wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True if ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def unless_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T | None:
    """``work``'s result, or None (``work`` cancelled, or its result dropped) once ``stop`` is set.

    For a consumer's poll: aiokafka's ``getmany`` ignores its timeout while a rebalance is under
    way and waits for the new assignment, which a broker may hold for as long as a slow member
    takes to rejoin; a loop that checked ``stop`` only between polls did not see SIGTERM then.
    """
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not stop.is_set():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


async def until_it_works(
    attempt: Callable[[], Awaitable[T]],
    stop: asyncio.Event,
    errors: tuple[type[BaseException], ...],
    *,
    what: str,
    service: str,
    interval: float = 1.0,
) -> T | None:
    """``attempt()``'s result, tried again after ``interval`` while it fails with ``errors``; None
    once ``stop`` is set. For what a task beside the consumer does as it starts (connect, migrate,
    join a group): PostgreSQL or the broker restarting at that moment is no reason to stop a
    service that is already running."""
    while not stop.is_set():
        try:
            return await attempt()
        except errors as error:
            log.warning(f"{what} failed; trying again", service=service, error=repr(error), retry_in=interval)
            if await sleep_unless(stop, interval):
                break
    return None
