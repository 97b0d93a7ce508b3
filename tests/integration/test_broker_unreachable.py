"""A running service's companions wait for a broker they cannot reach; they never stop it.

The chaos test caught it: a broker killed while `xbus run --all` was starting left the watchdog's
reader (and, as it may, the relay's producer) unable to start; that error stopped the runner, so
every service of the process exited while the broker was already back. Here the broker is a
port nothing listens on, which is what a restarting broker is to a client.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import structlog.testing

from consumers.runtime.relay import OutboxRelay
from consumers.runtime.watchdog import Watchdog
from infrastructure.embedded.processes import free_port
from infrastructure.settings import Settings

pytestmark = pytest.mark.integration


async def test_the_watchdog_and_the_relay_wait_for_a_broker_that_cannot_be_reached(settings: Settings) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    quick = settings.model_copy(update={"health_interval_seconds": 0.2, "kafka_request_timeout_ms": 1000})
    stop = asyncio.Event()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        with structlog.testing.capture_logs() as logs:
            watchdog = asyncio.create_task(Watchdog("nowhere", quick, nowhere).run(pool, stop))
            relay = OutboxRelay("nowhere", quick, nowhere, settings.database_url or "", poll_interval=0.2)
            relaying = asyncio.create_task(relay.run(stop))
            await asyncio.sleep(3)
            assert not watchdog.done() and not relaying.done(), (watchdog, relaying)
            stop.set()
            await asyncio.wait_for(asyncio.gather(watchdog, relaying), timeout=10)  # and neither raises
    finally:
        await pool.close()
    tries = [entry for entry in logs if "BrokerUnavailable" in str(entry.get("error"))]
    assert {entry["event"] for entry in tries} == {
        "health check incomplete",
        "outbox relay cannot reach Kafka; retrying",
    }, logs
    # each tried again, not once
    assert sum(entry["event"] == "health check incomplete" for entry in tries) >= 2, tries
    assert sum(entry["event"].startswith("outbox relay") for entry in tries) >= 2, tries
