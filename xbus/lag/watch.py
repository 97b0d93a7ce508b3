"""Watching lag: samples taken with clients kept open, judged over a window, with business lag.

`xbus lag`, `xbus monitor` and the HTTP API all hold one :class:`LagWatcher` and call
:meth:`LagWatcher.report` at their own pace; the window of samples behind each status is the
watcher's own, so two watchers never mix their samples.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType

import asyncpg

from infrastructure.brokers import TRAITS
from infrastructure.endpoints import Endpoints
from infrastructure.kafka_clients import admin_client, plain_consumer
from infrastructure.settings import Settings
from xbus.lag.business import business_lag
from xbus.lag.collect import LagCollector
from xbus.lag.judge import LagJudge, Thresholds
from xbus.lag.model import LagReport


@dataclass(frozen=True)
class LagOptions:
    #: Physical group ids; empty: every group whose id starts with the settings' group prefix.
    groups: tuple[str, ...] = ()
    #: Physical topic names; empty: every topic under the settings' topic prefix.
    topics: tuple[str, ...] = ()
    #: Samples per partition the status rules look at.
    window: int = 10
    #: An otherwise OK partition with more messages (or seconds) of lag than this is WARN.
    warn_lag: int | None = None
    warn_seconds: float | None = None
    #: A lagging partition whose time to data loss is under this is flagged ``retention_at_risk``.
    retention_margin_seconds: float = 3600.0
    #: A partition with lag and no commit for this long is STALL (STOP without a member): the
    #: services' XBUS_STALL_AFTER_SECONDS, so that `xbus lag` and /healthz agree.
    stall_seconds: float = 60.0


class LagWatcher:
    """``async with LagWatcher(settings, endpoints, options) as watcher: await watcher.report()``."""

    def __init__(self, settings: Settings, endpoints: Endpoints, options: LagOptions = LagOptions()) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self.options = options
        self._judge = LagJudge(
            options.window,
            Thresholds(options.warn_lag, options.warn_seconds, options.stall_seconds),
            options.retention_margin_seconds,
        )
        self._stack = AsyncExitStack()
        self._collector: LagCollector | None = None
        self._db: asyncpg.Connection | None = None

    async def __aenter__(self) -> LagWatcher:
        bootstrap = self.endpoints.kafka_bootstrap
        try:
            admin = await self._stack.enter_async_context(admin_client(self.settings, bootstrap))
            consumer = await self._stack.enter_async_context(plain_consumer(self.settings, bootstrap))
        except BaseException:
            await self._stack.aclose()
            raise
        self._collector = LagCollector(
            self.settings,
            admin,
            consumer,
            self.options.groups,
            self.options.topics,
            trusted_ends=TRAITS[self.endpoints.broker].true_end_offsets,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
        await self._stack.aclose()

    async def report(self) -> LagReport:
        """One sample now, judged over this watcher's window, with the provisioning business lag."""
        assert self._collector is not None, "use the watcher inside `async with`"
        sample = await self._collector.sample()
        groups = self._judge.judge(sample)
        business = await business_lag(await self._connection(), self.settings, sample.taken_at)
        return LagReport(
            sample.taken_at, groups, business, retention_enforced=TRAITS[self.endpoints.broker].enforces_retention
        )

    async def _connection(self) -> asyncpg.Connection:
        """The watcher's PostgreSQL connection, opened again if it was lost (a monitor outlives
        database restarts)."""
        if self._db is None or self._db.is_closed():
            self._db = await asyncpg.connect(self.endpoints.database_url)
        return self._db
