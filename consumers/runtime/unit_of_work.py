"""The unit of work a handler gets: the service's tables, in the batch's transaction, and a
place to record follow-up events.

Handlers never touch Kafka: recorded events become outbox rows in the same transaction as the
state change and the inbox row, and the relay publishes them after commit. Follow-up events take
their id from the event that caused them and its position, and its time, so that replaying a
topic rebuilds the very same follow-ups (no wall clock, no random ids).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from infrastructure.settings import Settings
from schemas import Envelope, Event
from schemas.provisioning import StepFailed, StepWaiting

#: A connection of its own or one lent by a pool: handlers cannot tell, and need not.
DbConnection: TypeAlias = asyncpg.Connection | PoolConnectionProxy

_FOLLOW_UP_IDS = uuid.UUID("6f0a7c1e-3b2d-4f5e-9a8b-7c6d5e4f3a2b")
#: The namespace of a timer tick's ids and of the events it records about a subject.
TIMER_IDS = uuid.UUID("0b7e6a52-9d4c-4c1f-8e3a-5f2d1c0b9a87")


#: The locks of an array, one after the other in the array's order (a function scan of ``unnest``
#: yields its elements in order, and the aggregate evaluates the lock for each as it comes), each
#: held alone or, where the second array says so, shared.
_LOCK_EACH_IN_ORDER = """
    select count(case when shared then pg_advisory_xact_lock_shared(hashtextextended(name, 0))
                      else pg_advisory_xact_lock(hashtextextended(name, 0)) end)
    from unnest($1::text[], $2::boolean[]) as lock (name, shared)
"""


async def hold_locks(
    connection: DbConnection, service: str, names: Iterable[str], *, shared: Iterable[str] = ()
) -> None:
    """Take ``service``'s advisory locks ``names`` alone and ``shared`` shared, until the
    transaction ends: ``names`` in sorted order (two transactions taking overlapping sets in
    sorted order cannot deadlock on them), then ``shared``, sorted too; all in one statement (a
    batch of the tracker names hundreds of flows, and a round trip each was a large part of its
    time on a backlog)."""
    alone = sorted({f"{service}:{name}" for name in names})
    together = sorted({f"{service}:{name}" for name in shared})
    if alone or together:
        await connection.execute(_LOCK_EACH_IN_ORDER, alone + together, [False] * len(alone) + [True] * len(together))


@dataclass(frozen=True)
class Recorded:
    event: Event
    envelope: Envelope


#: What a service keeps its state in, as its handlers see it (``Service.store`` makes it from the
#: batch's connection; a unit test passes an in-memory one to :class:`FakeUnitOfWork`).
StoreT = TypeVar("StoreT")


@dataclass
class UnitOfWork(Generic[StoreT]):
    connection: DbConnection
    #: The envelope of the event being handled.
    cause: Envelope
    source: str
    #: The service handling the event: step reports name it.
    service: str
    #: The event was read before and is read again after a replay or rebuild (replay_marks.py):
    #: the state change must happen again, but anything done outside the service's own tables
    #: (a mail, a call to a third party) was done the first time and must not be repeated.
    replayed: bool = False
    recorded: list[Recorded] = field(default_factory=list)
    #: The service's store over this unit's connection (None for a service that declares none and
    #: uses the unit's ``fetch`` and ``execute`` itself).
    store: StoreT = field(default=cast(StoreT, None), kw_only=True)
    #: Lock names the transaction holds already, taken before its first handler ran (the fast
    #: path's batch locks): :meth:`lock` skips them, a round trip saved per event.
    held: frozenset[str] = field(default=frozenset(), kw_only=True)

    @property
    def flow_id(self) -> str:
        """The flow an upstream event starts is named by that event's id (docs/provisioning.md)."""
        return self.cause.id

    def record(self, event: Event) -> None:
        """Publish ``event`` after this transaction commits, as a consequence of the one handled."""
        envelope = Envelope(
            id=self._follow_up_id(event),
            source=self.source,
            type=event.event_type,
            time=self.cause.time,
            subject=event.aggregate_id,
            correlation_id=self.cause.correlation_id,
            causation_id=self.cause.id,
        )
        self.recorded.append(Recorded(event, envelope))

    def _follow_up_id(self, event: Event) -> str:
        """The same follow-up of the same cause gets the same id on every run, so that a replay's
        republished follow-ups are duplicates to the inboxes downstream. The service is part of it
        (two services handling one event must not mint the same ids), and so are the type and key:
        a handler whose output depends on the order two topics were read in may record a different
        event at the same position on a replay, and that must not pass for the first one (it is
        another event, perhaps on another partition)."""
        name = f"{self.service}/{self.cause.id}/{len(self.recorded)}/{event.event_type}/{event.aggregate_id}"
        return str(uuid.uuid5(_FOLLOW_UP_IDS, name))

    def step_waiting(self, flow_id: str, step: str, reason: str, waiting_for: tuple[str, ...] = ()) -> None:
        """Tell the tracker that ``step`` of ``flow_id`` waits (the event is kept and applied later)."""
        self.record(
            StepWaiting(flow_id=flow_id, service=self.service, step=step, reason=reason, waiting_for=waiting_for)
        )

    def step_failed(self, flow_id: str, step: str, reason: str) -> None:
        """Tell the tracker that this service refused ``step`` of ``flow_id``; the flow fails."""
        self.record(StepFailed(flow_id=flow_id, service=self.service, step=step, reason=reason))

    async def lock(self, *names: str) -> None:
        """Hold ``names`` (``login:<id>``, ``account:<id>``) until this transaction ends.

        Partitions are applied concurrently, each in its own transaction, and topics are not
        ordered against each other: a ``UserCreated`` and the account that names its login may be
        applied at the same moment, each unable to see the other's uncommitted rows, and the
        pending association would then wait forever. Locking the entity both touch serialises
        them; the second sees what the first committed. Names are taken in sorted order, and a
        deadlock between two batches is retried like any serialization failure.
        """
        await hold_locks(self.connection, self.service, [name for name in names if name not in self.held])

    async def execute(self, query: str, *args: Any) -> str:
        return str(await self.connection.execute(query, *args))

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self.connection.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self.connection.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.connection.fetchval(query, *args)


@dataclass
class TimerUnit(UnitOfWork[Any]):
    """A unit of work for one tick: the service's tables, the runner's settings, and follow-ups."""

    timer: str = field(kw_only=True)
    settings: Settings = field(kw_only=True)

    def record_about(
        self, key: str, event: Event, *, correlation_id: str | None = None, causation_id: str | None = None
    ) -> None:
        """Record ``event`` about ``key`` (a flow id) with an id that depends on nothing else, so that
        a tick run again records the very same event; correlation and causation default to ``key``."""
        envelope = Envelope(
            id=str(uuid.uuid5(TIMER_IDS, f"{self.service}/{self.timer}/{key}/{event.event_type}")),
            source=self.source,
            type=event.event_type,
            time=self.cause.time,
            subject=event.aggregate_id,
            correlation_id=correlation_id or key,
            causation_id=causation_id or key,
        )
        self.recorded.append(Recorded(event, envelope))


@dataclass
class FakeUnitOfWork(UnitOfWork[StoreT]):
    """A unit of work with no database, for unit tests of a service's rules: its state is the
    in-memory ``store`` given (the same protocol as the service's PostgreSQL store), and what it
    records, reports and locks is kept here to be checked. A handler that reaches past its store
    to SQL fails here, loudly."""

    locked: list[str] = field(default_factory=list, kw_only=True)

    @classmethod
    def handling(cls, event: Event, store: StoreT, *, service: str, replayed: bool = False) -> FakeUnitOfWork[StoreT]:
        """The unit of work of ``event`` as the runtime would build it, over ``store``."""
        cause = Envelope.new(type=event.event_type, subject=event.aggregate_id, source="test")
        return cls(cast(DbConnection, None), cause, f"xbus/{service}", service, replayed=replayed, store=store)

    @property
    def events(self) -> list[Event]:
        """The follow-ups recorded, in order."""
        return [recorded.event for recorded in self.recorded]

    async def lock(self, *names: str) -> None:
        self.locked += sorted(set(names))

    async def execute(self, query: str, *args: Any) -> str:
        return str(await self._no_sql(query))

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._no_sql(query)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self._no_sql(query)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._no_sql(query)

    async def _no_sql(self, query: str) -> Any:
        raise AssertionError(f"a fake unit of work has no database; the handler ran SQL: {query.split()[0]} ...")
