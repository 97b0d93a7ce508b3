"""What the HTTP API holds while it runs: the publisher, a PostgreSQL pool, tokens, idempotency keys,
the lag sampler and an admin client for readiness.

Everything is built when the app is built (so that routers can be given the objects they use, as
the monitor's lag router is given its sampler) and started by the app's lifespan. PostgreSQL is
not needed to start: the pool opens connections on demand and the tables are created on first use
(and tried once at start), so an API started while the database is away serves /healthz, answers
/readyz 503 naming the database, and recovers by itself. The broker is needed to start (the
publisher connects), as for every other command.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, suppress

import asyncpg
import structlog
from aiokafka.admin import AIOKafkaAdminClient

from infrastructure.catalogue import Catalogue
from infrastructure.endpoints import Endpoints, load_catalogue
from infrastructure.kafka_clients import client_options
from infrastructure.settings import Settings
from producers import Publisher
from xbus.api.auth import Auth
from xbus.api.idempotency import IdempotencyStore
from xbus.api.ratelimit import TokenBuckets
from xbus.api.tokens import TokenStore
from xbus.lag.watch import LagOptions, LagWatcher
from xbus.monitor import LagSampler

log = structlog.get_logger("xbus.api")

#: PostgreSQL connections per API process: token checks and idempotency keys are short statements.
POOL_SIZE = 8
#: Seconds between two lag samples (the monitor's default).
LAG_INTERVAL = 5.0
#: Expired idempotency keys are deleted this often (at most; the window may be shorter).
PURGE_INTERVAL = 600.0


class ApiResources:
    """Built synchronously inside the event loop that will serve (asyncpg binds its pool to it)."""

    def __init__(self, settings: Settings, endpoints: Endpoints) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self.catalogue: Catalogue = load_catalogue(settings)
        self.publishable = self.catalogue.input_types()
        schema = settings.db_schema("api")
        self.pool = asyncpg.create_pool(endpoints.database_url, min_size=0, max_size=POOL_SIZE)
        self.tokens = TokenStore(self.pool, schema)
        self.auth = Auth(
            self.tokens,
            TokenBuckets(settings.api_rate_per_second, settings.api_rate_burst),
            TokenBuckets(settings.api_refusals_per_second, settings.api_refusal_burst),
        )
        self.idempotency = IdempotencyStore(
            self.pool,
            schema,
            window_seconds=settings.api_idempotency_window_seconds,
            # No publish is legitimately in flight longer than two Kafka request timeouts.
            takeover_seconds=2 * settings.kafka_request_timeout_ms / 1000,
        )
        self.publisher = Publisher(settings, endpoints.kafka_bootstrap, self.catalogue)
        self.admin = AIOKafkaAdminClient(**client_options(settings, endpoints.kafka_bootstrap))
        self._watcher = LagWatcher(settings, endpoints, LagOptions())
        self.sampler = LagSampler(self._watcher, LAG_INTERVAL)
        self._stack = AsyncExitStack()
        self._stop = asyncio.Event()

    async def start(self) -> None:
        try:
            await self.pool
            self._stack.push_async_callback(self.pool.close)
            await self._stack.enter_async_context(self.publisher)
            await self.admin.start()
            self._stack.push_async_callback(self.admin.close)
            await self._stack.enter_async_context(self._watcher)
            for job in (self.sampler.run(self._stop), self._prepare(), self._purge_expired()):
                task = asyncio.create_task(job)
                self._stack.push_async_callback(_finish, task)
            self._stack.callback(self._stop.set)  # runs first: the tasks above see it, then are awaited
        except BaseException:
            await self._stack.aclose()
            raise

    async def stop(self) -> None:
        await self._stack.aclose()

    async def _prepare(self) -> None:
        """Create the API's tables now rather than in the first request (a failure is only logged:
        they are created on first use, and /readyz says whether the database answers)."""
        try:
            await self.tokens.migrate()
            await self.idempotency.migrate()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("the API's tables could not be prepared yet; they will be on first use", error=str(error))

    async def _purge_expired(self) -> None:
        interval = min(PURGE_INTERVAL, self.settings.api_idempotency_window_seconds)
        while not self._stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
                return
            try:
                purged = await self.idempotency.purge()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("expired idempotency keys could not be purged; retrying later", error=str(error))
            else:
                if purged:
                    log.info("expired idempotency keys purged", count=purged)


async def _finish(task: asyncio.Task[None]) -> None:
    """Wait for a background task that has been told to stop (and cancel one that does not)."""
    try:
        await asyncio.wait_for(task, 10.0)
    except TimeoutError:
        log.warning("a background task did not stop in time and was cancelled", task=task.get_coro())
