"""``until_it_works``: what a task beside the consumer does as it starts is tried again through an
outage, and given up only when the service stops (the chaos test caught a projection whose start
met PostgreSQL restarting, and took every service of the process down with it)."""

from __future__ import annotations

import asyncio

import pytest

from consumers.runtime.tasks import until_it_works


async def test_an_attempt_that_fails_with_an_outage_is_tried_again_until_it_works() -> None:
    tries: list[int] = []

    async def attempt() -> str:
        tries.append(len(tries))
        if len(tries) < 3:
            raise ConnectionRefusedError("the database system is starting up")
        return "migrated"

    result = await until_it_works(attempt, asyncio.Event(), (OSError,), what="start", service="s", interval=0.01)
    assert (result, len(tries)) == ("migrated", 3)


async def test_a_stop_during_the_outage_ends_the_tries_with_none() -> None:
    stop = asyncio.Event()

    async def attempt() -> str:
        stop.set()
        raise ConnectionRefusedError("down")

    assert await until_it_works(attempt, stop, (OSError,), what="start", service="s", interval=5) is None


async def test_an_error_that_is_not_an_outage_is_raised_at_once() -> None:
    tries: list[int] = []

    async def attempt() -> str:
        tries.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await until_it_works(attempt, asyncio.Event(), (OSError,), what="start", service="s", interval=0.01)
    assert tries == [1]
