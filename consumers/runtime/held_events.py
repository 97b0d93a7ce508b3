"""Events a service holds instead of applying, looked after in its own process: the dead letters
an operator decided about, and the events waiting too long for a prerequisite.

``xbus dlq redrive`` and ``xbus dlq discard`` only write the request on the dead-letter entry;
this loop, a companion of every runner, finds the requests and hands each to the processor
(:meth:`BatchProcessor.carry_out`). Doing it here rather than in the command keeps three promises:

- a redrive reaches the failing service only: the stored record is applied again from the
  entry, never re-published to a topic that other services read (each would apply or
  dead-letter it again);
- it runs the service's own handlers with whatever the process holds (an exchange's order book
  lives in the gateway's memory), under the same batch locks as the partition workers;
- the command works with no broker at all, and says so when no member is running to do it.

Requests wait in PostgreSQL, so a request made while the service is down is carried out when it
starts. Every member of the group polls; the entry's row lock (``skip locked``) gives each
request to one of them.

The same loop looks after the events held waiting for a prerequisite (record_by_record.py holds them,
and an event applied under the key they wait for applies them at once): every ``SWEEP_SECONDS``
it tries them all again, for the rare wake-up two partitions' transactions miss, and it
dead-letters those that waited longer than ``XBUS_PENDING_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog

from consumers.runtime.processor import BatchProcessor
from consumers.runtime.tasks import sleep_unless
from consumers.runtime.transient import TRANSIENT_ERRORS

log = structlog.get_logger("xbus.dead_letters")

#: How often a member looks for requests: a redrive is a person's command, answered within this.
POLL_SECONDS = 0.5
#: How often every held event is tried again (see ``BatchProcessor.retry_waiting``).
SWEEP_SECONDS = 10.0


async def look_after_held_events(
    processor: BatchProcessor, pool: asyncpg.Pool, stop: asyncio.Event, pending_timeout_seconds: float
) -> None:
    """Until ``stop``: carry out each redrive and discard asked for, in the order of the records,
    and dead-letter the events that waited too long for a prerequisite."""
    service = processor.service.name
    sweep_seconds = min(SWEEP_SECONDS, pending_timeout_seconds / 4)  # a few sweeps before any expiry
    next_sweep = time.monotonic() + sweep_seconds
    while not await sleep_unless(stop, POLL_SECONDS):
        try:
            async with pool.acquire() as connection:
                if time.monotonic() >= next_sweep:
                    await processor.retry_waiting(connection)
                    next_sweep = time.monotonic() + sweep_seconds
                if expired := await processor.expire_waiting(connection, pending_timeout_seconds):
                    log.warning(
                        "events waited too long for a prerequisite; dead-lettered", service=service, count=expired
                    )
                for event_id in await processor.requests(connection):
                    outcome = await processor.carry_out(connection, event_id)
                    if outcome is not None:
                        log.info(
                            "dead letter settled" if not outcome.dead_lettered else "redriven event failed again",
                            service=service,
                            event_id=event_id,
                            applied=outcome.applied,
                            released=outcome.released,
                            dead_lettered=outcome.dead_lettered,
                        )
        except TRANSIENT_ERRORS as error:
            log.warning("held events wait for the database", service=service, error=repr(error))
