"""Waiting that a stop request cuts short: background loops of the runtime sleep through these."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

T = TypeVar("T")

log = structlog.get_logger("xbus.runtime")


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
