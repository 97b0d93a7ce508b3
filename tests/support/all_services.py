"""Every domain service running in this process on a test's topics and schemas, for end-to-end tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from consumers.runtime.discovery import find_services
from consumers.runtime.runner import ServiceRunner
from infrastructure.endpoints import load_catalogue
from infrastructure.settings import Settings

SERVICES = ("authentication", "authorisation", "sessions", "oms", "registry", "provisioning")


@asynccontextmanager
async def running(
    settings: Settings, names: tuple[str, ...], *, consume_only: bool = False
) -> AsyncIterator[dict[str, ServiceRunner]]:
    """The services ``names`` running until the block ends; with ``consume_only`` they apply their
    topics and publish nothing, as ``xbus rebuild`` runs them."""
    services, catalogue = find_services(), load_catalogue(settings)
    runners = {
        name: ServiceRunner(
            services[name],
            settings,
            catalogue,
            settings.kafka_bootstrap or "",
            settings.database_url or "",
            consume_only=consume_only,
        )
        for name in names
    }
    stop = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stop)) for runner in runners.values()]
    try:
        yield runners
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def eventually(
    check: Callable[[], Awaitable[bool]],
    timeout: float,
    what: str,
    describe: Callable[[], Awaitable[str]] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            detail = await describe() if describe else ""
            raise AssertionError(f"not reached in {timeout:.0f}s: {what}\n{detail}")
        await asyncio.sleep(1)
