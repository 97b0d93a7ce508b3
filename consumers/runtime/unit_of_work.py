"""The unit of work a handler gets: the service's tables, in the batch's transaction, and a
place to record follow-up events.

Handlers never touch Kafka: recorded events become outbox rows in the same transaction as the
state change and the inbox row, and the relay publishes them after commit. Follow-up events take
their id from the event that caused them and its position, and its time, so that replaying a
topic rebuilds the very same follow-ups (no wall clock, no random ids).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from schemas import Envelope, Event

#: A connection of its own or one lent by a pool: handlers cannot tell, and need not.
DbConnection: TypeAlias = asyncpg.Connection | PoolConnectionProxy

_FOLLOW_UP_IDS = uuid.UUID("6f0a7c1e-3b2d-4f5e-9a8b-7c6d5e4f3a2b")


@dataclass(frozen=True)
class Recorded:
    event: Event
    envelope: Envelope


@dataclass
class UnitOfWork:
    connection: DbConnection
    #: The envelope of the event being handled.
    cause: Envelope
    source: str
    recorded: list[Recorded] = field(default_factory=list)

    def record(self, event: Event) -> None:
        """Publish ``event`` after this transaction commits, as a consequence of the one handled."""
        envelope = Envelope(
            id=str(uuid.uuid5(_FOLLOW_UP_IDS, f"{self.cause.id}/{len(self.recorded)}")),
            source=self.source,
            type=event.event_type,
            time=self.cause.time,
            subject=event.aggregate_id,
            correlation_id=self.cause.correlation_id,
            causation_id=self.cause.id,
        )
        self.recorded.append(Recorded(event, envelope))

    async def execute(self, query: str, *args: Any) -> str:
        return str(await self.connection.execute(query, *args))

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self.connection.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self.connection.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.connection.fetchval(query, *args)
