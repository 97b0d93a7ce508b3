"""The progress watch cuts a batch short when it stops making progress, not when it takes long."""

from __future__ import annotations

import asyncio

import pytest

from consumers.runtime.progress import NoProgress, ProgressWatch


async def test_work_that_keeps_progressing_runs_past_the_limit_and_returns() -> None:
    watch = ProgressWatch(0.1)

    async def busy() -> str:
        for _ in range(8):  # 0.4 s in all, four times the limit, progressing every 0.05 s
            await asyncio.sleep(0.05)
            watch.progressed()
        return "done"

    assert await watch.run(busy()) == "done"


async def test_work_that_stops_progressing_is_cancelled_after_the_limit() -> None:
    watch = ProgressWatch(0.1)
    cancelled = asyncio.Event()

    async def stuck() -> None:
        watch.progressed()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NoProgress, match=r"no statement completed for 0\.1 s"):
        await watch.run(stuck())
    assert cancelled.is_set() and loop.time() - started < 1.0


async def test_an_error_of_the_work_is_raised_as_it_is() -> None:
    async def failing() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await ProgressWatch(1.0).run(failing())


async def test_a_cancelled_caller_cancels_the_work() -> None:
    watch = ProgressWatch(10.0)
    cancelled = asyncio.Event()

    async def long() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    caller = asyncio.create_task(watch.run(long()))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0)
    assert cancelled.is_set()


async def test_a_wait_the_excuse_accepts_counts_as_progress_each_time_it_is_asked() -> None:
    watch = ProgressWatch(0.1)
    asked = 0

    async def excuse() -> bool:
        nonlocal asked
        asked += 1
        return True

    watch.excuse = excuse

    async def waits_its_turn() -> str:
        await asyncio.sleep(0.45)  # no progress of its own, more than four times the limit
        return "applied"

    assert await watch.run(waits_its_turn()) == "applied"
    assert asked >= 3


async def test_a_wait_the_excuse_refuses_is_cancelled_after_the_limit() -> None:
    watch = ProgressWatch(0.1)

    async def refuse() -> bool:
        return False

    watch.excuse = refuse
    with pytest.raises(NoProgress):
        await watch.run(asyncio.sleep(60))


async def test_a_statement_completed_while_the_excuse_is_read_counts_as_progress() -> None:
    """The watch often wakes late, after Python work no statement interrupted, just as the work
    sends its next statement; that statement completes while the excuse is read."""
    watch = ProgressWatch(0.1)

    async def refuse_as_a_statement_completes() -> bool:
        watch.progressed()
        return False

    watch.excuse = refuse_as_a_statement_completes

    async def works_after_a_long_quiet() -> str:
        await asyncio.sleep(0.15)
        return "applied"

    assert await watch.run(works_after_a_long_quiet()) == "applied"
