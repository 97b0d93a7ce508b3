"""Carries out, in the service's own process, what an operator asked of its dead letters.

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
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from consumers.runtime.processor import BatchProcessor
from consumers.runtime.transient import TRANSIENT_ERRORS
from consumers.runtime.waits import sleep_unless

log = structlog.get_logger("xbus.dead_letters")

#: How often a member looks for requests: a redrive is a person's command, answered within this.
POLL_SECONDS = 0.5

_PENDING = """
select d.event_id from xbus_dead_letters d
where d.discarded_at is null
  and (d.discard_requested_at is not null or d.redriven_at is not null)
  and not exists (select 1 from xbus_inbox i where i.event_id = d.event_id)
order by d.topic, d.partition, d."offset"
"""


async def carry_out_requests(processor: BatchProcessor, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """Until ``stop``: carry out each redrive and discard asked for, in the order of the records."""
    service = processor.service.name
    while not await sleep_unless(stop, POLL_SECONDS):
        try:
            async with pool.acquire() as connection:
                for row in await connection.fetch(_PENDING):
                    outcome = await processor.carry_out(connection, row["event_id"])
                    if outcome is not None:
                        log.info(
                            "dead letter settled" if not outcome.dead_lettered else "redriven event failed again",
                            service=service,
                            event_id=row["event_id"],
                            applied=outcome.applied,
                            released=outcome.released,
                            dead_lettered=outcome.dead_lettered,
                        )
        except TRANSIENT_ERRORS as error:
            log.warning("dead-letter requests wait for the database", service=service, error=repr(error))
