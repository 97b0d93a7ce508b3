"""Timers: a service's periodic work that no event triggers (a flow that has been silent too long).

The runtime otherwise only reacts to events, and time passing is not an event. A service
declares ``Timer(name, interval_seconds, fn)``; the runner calls ``fn(unit)`` every interval, in
a PostgreSQL transaction of its own on the service's schema, and ``fn`` records follow-up events
as a handler does: they become outbox rows in that transaction and the relay publishes them
after commit.

A tick is handled like an event that did not come from Kafka: its synthetic cause envelope has
the wall-clock time (``unit.cause.time`` is "now": the one place the runtime hands a service the
clock) and an id derived from the service, the timer and that time. Follow-ups about one subject
(a flow) go through :meth:`TimerUnit.record_about`, whose event id is derived from the service,
the timer, the subject and the event type only: a tick that runs again (rolled back by a crash,
run on another instance, or on a rebuilt schema) gives the same event the same id, and
consumers' inboxes drop the copy. Only one instance's tick of a timer runs at a time (a
transaction-level advisory lock; the others skip that tick).

A tick that fails on the infrastructure is logged and the next tick tries again; a tick whose
function raises anything else is logged as a bug and the timer keeps ticking: a broken timer
must not stop the service from applying events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
import zlib

import asyncpg
import structlog

from consumers.runtime.inbox_outbox import insert_follow_ups
from consumers.runtime.service import Routing, Service, Timer
from consumers.runtime.tasks import sleep_unless
from consumers.runtime.transient import TRANSIENT_ERRORS
from consumers.runtime.unit_of_work import TIMER_IDS, TimerUnit
from infrastructure.settings import Settings
from schemas import Envelope

log = structlog.get_logger("xbus.timers")

#: The envelope type of a tick's synthetic cause (never published: ticks are not events).
TICK_TYPE = "xbus.timer.tick"


class TimerLoop:
    """Runs a service's timers beside its consumer (each as a task of the runner's), until ``stop``."""

    def __init__(self, service: Service, settings: Settings, routing: Routing) -> None:
        self.service = service
        self.settings = settings
        self.routing = routing
        self.ticks = 0
        self.failures = 0

    async def run(self, timer: Timer, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """Tick ``timer`` every interval until ``stop`` is set."""
        while not await sleep_unless(stop, timer.interval_seconds):
            try:
                await self.tick(timer, pool)
            except TRANSIENT_ERRORS as error:
                self.failures += 1
                log.info(
                    "timer tick failed on the infrastructure; the next tick tries again",
                    service=self.service.name,
                    timer=timer.name,
                    error=repr(error),
                )
            except Exception as error:  # a bug in the timer's function: logged, and the next tick tries again
                self.failures += 1
                log.error("timer tick failed", service=self.service.name, timer=timer.name, error=repr(error))

    async def tick(self, timer: Timer, pool: asyncpg.Pool, now: dt.datetime | None = None) -> int:
        """Run ``timer`` once in its own transaction; the number of events it recorded."""
        now = now or dt.datetime.now(dt.UTC)
        schema = self.settings.db_schema(self.service.name)
        async with pool.acquire() as connection, connection.transaction():
            lock = zlib.crc32(f"xbus-timer:{schema}:{timer.name}".encode())
            if not await connection.fetchval("select pg_try_advisory_xact_lock($1)", lock):
                return 0  # another instance is running this tick
            unit = TimerUnit(
                connection,
                self._cause(timer, now),
                self.routing.source,
                self.service.name,
                timer=timer.name,
                settings=self.settings,
                store=self.service.store_over(connection),
            )
            await timer.fn(unit)
            await insert_follow_ups(connection, self.service.name, self.routing.follow_up_topic, unit.recorded)
        self.ticks += 1
        return len(unit.recorded)

    def _cause(self, timer: Timer, now: dt.datetime) -> Envelope:
        tick_id = str(uuid.uuid5(TIMER_IDS, f"{self.service.name}/{timer.name}/{now.isoformat()}"))
        return Envelope(
            id=tick_id,
            source=self.routing.source,
            type=TICK_TYPE,
            time=now,
            subject=timer.name,
            correlation_id=tick_id,
            causation_id=tick_id,
        )
