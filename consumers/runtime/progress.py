"""A batch is cut short when it stops making progress, not when it takes long.

A transaction applying several partitions' records used to be cancelled once it had run
``XBUS_BATCH_SPLIT_SECONDS`` of wall time, so that one stuck event held back its own partition
only. Wall time also counts waiting for a core and for the event loop, which every service of a
process shares: on a busy machine healthy batches were rolled back and redone, adding the load
that rolled back the next ones (issue 18). What a stuck event does is different: no statement of
its transaction completes, because it waits on a lock or its handler awaits something that does
not come. So the watch is on progress: every statement the batch's connection completes is
progress (asyncpg's query logger reports each one), and the batch is cancelled only after
``seconds`` without any.

A batch that waits for locks completes no statement either. When the transactions it waits on
are themselves progressing, it only waits its turn: ``excuse`` (lock_waits.py) says so, and the
wait counts as progress. So does a wait for a connection of the pool, or for a retry's backoff
(batch_worker.py). And a statement that completes while the excuse is read counts: the watch
often wakes late, after a stretch of Python work (parsing a batch of thousands of records) that
no statement interrupts, just as the work sends its next statement.

The same record of progress tells the watchdog a busy partition from a stuck one: a partition
whose batch keeps completing statements is working through its backlog, however long the batch
takes to commit (watchdog.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class NoProgress(Exception):
    """The watched work completed no statement for the allowed time; it was cancelled."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no statement completed for {seconds:g} s")
        self.seconds = seconds


class ProgressWatch:
    """``await watch.run(work)``: ``work``'s result, or :class:`NoProgress` once ``seconds`` pass
    without :meth:`progressed` being called (``work`` is then cancelled and awaited), unless
    ``excuse`` then answers True: the work waits on others' progress, which counts as its own."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = time.monotonic()
        #: Asked when ``seconds`` have passed without progress; set while the work's connection is known.
        self.excuse: Callable[[], Awaitable[bool]] | None = None

    def progressed(self, *_: Any) -> None:
        """A statement completed (the signature of an asyncpg query logger)."""
        self._last = time.monotonic()

    @property
    def last_progress(self) -> float:
        """When (``time.monotonic()``) the watched work last completed a statement, or started."""
        return self._last

    async def run(self, work: Awaitable[T]) -> T:
        task = asyncio.ensure_future(work)
        self._last = time.monotonic()
        try:
            while True:
                idle = time.monotonic() - self._last
                if idle >= self.seconds:
                    if self.excuse is not None and await self.excuse():
                        self.progressed()
                        continue
                    if time.monotonic() - self._last >= self.seconds:
                        break
                    continue  # a statement completed while the excuse was read: progress after all
                done, _ = await asyncio.wait({task}, timeout=self.seconds - idle)
                if done:
                    return task.result()
        except BaseException:
            task.cancel()
            raise
        task.cancel()
        try:
            return await task  # it may have finished meanwhile: then its result stands
        except asyncio.CancelledError:
            raise NoProgress(self.seconds) from None
