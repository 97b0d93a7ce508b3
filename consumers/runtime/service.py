"""What a service declares: its name, handlers per event type and SQL migrations.

Everything else is derived so that nothing can drift: the consumer group is ``xbus.<name>``, the
topics it reads are the ones topics.yaml routes its handled event types to, its PostgreSQL
schema is its name, and its follow-up and dead-letter topics are the ones topics.yaml gives
its name as owner.

Work that is neither a handler nor a timer (a feed that publishes what an exchange sends, a
projection of a high-rate topic: anything that runs for as long as the service does) is a
*background task*: an async function of a :class:`BackgroundContext` that returns once the
context's ``stop`` is set. The runner starts it beside the consumer and stops the service if it
fails or ends before it is asked to stop, so a service missing a part of itself never looks
healthy.
"""

from __future__ import annotations

import asyncio
import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from consumers.runtime.unit_of_work import DbConnection, Recorded, TimerUnit, UnitOfWork, hold_locks
from consumers.runtime.watchdog import Watchdog
from infrastructure.catalogue import Catalogue, TopicKind
from infrastructure.settings import Settings
from schemas import Envelope, Event

#: A handler takes the event it is keyed by (typed as that class: ``user_created(event: UserCreated,
#: unit)``), which the runtime has parsed into that class before calling it.
Handler = Callable[[Any, UnitOfWork], Awaitable[None]]
BackgroundTask = Callable[["BackgroundContext"], Coroutine[Any, Any, None]]


class DomainError(Exception):
    """A handler's refusal of an event (unknown account, rule broken): dead-lettered, not retried."""


class MissingPrerequisite(DomainError):
    """The event needs one that has not been applied here yet: an update before its create, a fill
    before its account is opened. Events on different topics, or resent by an upstream system,
    arrive in such orders in normal operation, so this is not a dead letter: the runtime holds the
    event as pending (without blocking its key, under which the prerequisite may well come) and
    applies it as soon as an event keyed ``waits_for`` (the prerequisite's aggregate id) has been
    applied. Only one still waiting after ``XBUS_PENDING_TIMEOUT_SECONDS`` is dead-lettered, with
    ``reason`` and the advice that makes it flow again: publish what it ``needs``, then redrive it."""

    def __init__(self, reason: str, *, waits_for: str, needs: str, service: str) -> None:
        advice = (
            f"publish {needs} (it is applied as it arrives: this event does not hold its key), then "
            f"`xbus dlq redrive {service} --id` this event; or discard it"
        )
        super().__init__(f"{reason}; {advice}")
        self.waits_for = waits_for


def fields_locked_as(entity: str, *names: str) -> Callable[[Event, Envelope], list[str]]:
    """``Service.locks`` for a service whose handlers ``unit.lock(f"{entity}:{id}")`` on the id an
    event carries in one of the fields ``names`` (an event without them takes no lock)."""

    def locks(event: Event, envelope: Envelope) -> list[str]:
        return [f"{entity}:{value}" for name in names if (value := getattr(event, name, None)) is not None]

    return locks


@dataclass(frozen=True)
class Timer:
    """``fn`` runs every ``interval_seconds`` while the service runs (first after one interval)."""

    name: str
    interval_seconds: float
    fn: Callable[[TimerUnit], Awaitable[None]]


@dataclass(frozen=True)
class Routing:
    """Where a service's records go besides its own tables; resolved once from the catalogue."""

    follow_up_topic: str
    dead_letter_topic: str
    source: str


@dataclass(frozen=True)
class Service:
    name: str
    #: The handler of each event class: ``{UserCreated: user_created}``.
    handlers: Mapping[type[Event], Handler]
    migrations: Path | None = None
    #: Handler failures other than DomainError are retried this many times before dead-lettering.
    max_attempts: int = 3
    #: The ``UnitOfWork.lock`` names applying an event (carried by its envelope) needs, for a
    #: service whose invariants span partitions or topics (``fields_locked_as("account",
    #: "account_id")``): each batch takes the
    #: names of all its events first, in sorted order, before any handler runs. Batches of other
    #: entities run at the same time; two that share one wait for each other instead of missing
    #: each other's uncommitted rows, and cannot deadlock on these locks, since neither takes one
    #: while it holds another the first may want.
    locks: Callable[[Event, Envelope], Iterable[str]] | None = None
    #: More lock names a batch needs that only the service's tables know (the accounts whose
    #: pending associations name a login that arrives), read once ``locks``' names are held and
    #: taken after them, sorted. Taken one handler at a time instead, in each event's order, two
    #: batches took them in opposite orders and deadlocked (bench/backlog.py: authorisation
    #: alone retried 68-145 batches). Every batch takes all its ``locks`` names before any of
    #: these, so no batch waits for one of those while it holds one of these.
    locks_found: Callable[[DbConnection, Sequence[Event]], Awaitable[Iterable[str]]] | None = None
    #: A lock every batch holds shared, after all its others, and a batch whose ``locks`` name it
    #: holds alone: state that some events change for every entity at once and every other
    #: event reads (authorisation's group graph, consumers/authorisation/locks.py). Its name must
    #: sort after every other lock's, so that a batch holding it waits for no other lock.
    shared_lock: str | None = None
    #: The service's store over a batch's connection (``PostgresLogins``): handlers reach their
    #: tables through ``unit.store``, which a unit test replaces with an in-memory one
    #: (``FakeUnitOfWork``). A service without one runs its SQL on the unit itself.
    store: Callable[[DbConnection], Any] | None = None
    #: Periodic work no event triggers (consumers/runtime/timers.py), run beside the consumer.
    timers: tuple[Timer, ...] = ()
    #: Long-running work beside the consumer, each until ``context.stop`` is set (see the module doc).
    background: tuple[BackgroundTask, ...] = ()
    description: str = field(default="", compare=False)
    #: ``handlers`` by CloudEvents type, as records name them.
    by_type: Mapping[str, Handler] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for model, handler in self.handlers.items():
            _check_takes(handler, model, self.name)
        object.__setattr__(self, "by_type", {model.event_type: handler for model, handler in self.handlers.items()})

    @property
    def group_id(self) -> str:
        return f"xbus.{self.name}"

    def topics(self, catalogue: Catalogue) -> list[str]:
        return sorted({topic.name for event_type in self.by_type for topic in catalogue.topics_for_type(event_type)})

    def follow_up_topic(self, catalogue: Catalogue) -> str:
        for topic in catalogue.topics:
            if topic.owner == self.name and topic.kind == TopicKind.FOLLOW_UP:
                return topic.name
        raise LookupError(f"topics.yaml has no follow-up topic owned by {self.name!r}")

    def dead_letter_topic(self, catalogue: Catalogue) -> str:
        return catalogue.dead_letter_topic(self.name).name

    async def handle(
        self,
        event: Event,
        cause: Envelope,
        connection: DbConnection,
        routing: Routing,
        *,
        replayed: bool,
        held: frozenset[str] = frozenset(),
    ) -> list[Recorded]:
        """Run the handler of ``event`` (which ``cause`` carried) in the caller's transaction; the
        follow-ups it recorded, for the caller to write with the rest of its batch. The one place
        a handler is called: the fast path, the careful path and redrives all come here. ``held``:
        the lock names the transaction took before its first handler (``UnitOfWork.held``)."""
        unit = UnitOfWork(
            connection,
            cause,
            routing.source,
            self.name,
            replayed=replayed,
            store=self.store_over(connection),
            held=held,
        )
        await self.by_type[cause.type](event, unit)
        return unit.recorded

    def lock_names(self, events: Iterable[tuple[Event, Envelope]]) -> set[str]:
        """What a batch of ``events`` locks before its first handler runs (see ``locks``)."""
        if self.locks is None:
            return set()
        return {name for event, envelope in events for name in self.locks(event, envelope)}

    async def hold_batch_locks(
        self, connection: DbConnection, events: Sequence[tuple[Event, Envelope]]
    ) -> frozenset[str]:
        """Take what a batch of ``events`` locks before its first handler runs: ``locks``' names,
        then ``locks_found``'s, then ``shared_lock``: shared, or alone when ``locks`` named it, but
        last either way (held alone before the found locks, a batch could wait for one of those
        held by a batch that waits for it). Return the names now held alone."""
        named = self.lock_names(events)
        last = set() if self.shared_lock is None else {self.shared_lock}
        held = frozenset(named - last)
        if self.locks_found is not None:
            await hold_locks(connection, self.name, held)
            named = (named & last) | set(await self.locks_found(connection, [e for e, _ in events]))
        await hold_locks(connection, self.name, named, shared=last - named)
        return held | named

    @property
    def takes_batch_locks(self) -> bool:
        return self.locks is not None or self.locks_found is not None or self.shared_lock is not None

    def store_over(self, connection: DbConnection) -> Any:
        """The service's store on ``connection``, for a handler's or a tick's unit of work (None
        for a service that declares none)."""
        return self.store(connection) if self.store is not None else None

    def routing(self, settings: Settings, catalogue: Catalogue) -> Routing:
        """Its follow-up and dead-letter topics as the broker names them, and its CloudEvents source."""
        return Routing(
            follow_up_topic=settings.topic(self.follow_up_topic(catalogue)),
            dead_letter_topic=settings.topic(self.dead_letter_topic(catalogue)),
            source=f"xbus/{self.name}",
        )


@dataclass(frozen=True)
class BackgroundContext:
    """What the runner lends a background task: where everything is, and when to stop."""

    service: Service
    settings: Settings
    catalogue: Catalogue
    bootstrap: str
    database_url: str
    #: The service's pool (``search_path`` is its schema), shared with the consumer's batches. Its
    #: connections go back unreset (runner.py): leave no session state on them (use ``set local``
    #: and transaction-scoped advisory locks).
    pool: asyncpg.Pool
    #: The service's follow-up and dead-letter topics (physical names) and its CloudEvents source.
    routing: Routing
    #: Set when the service stops: the task finishes what it is doing and returns.
    stop: asyncio.Event
    #: The service's watchdog: a task with a consumer group of its own has it watch its
    #: partitions, which then count in the service's health (a stalled one makes /healthz 503).
    watchdog: Watchdog


def _check_takes(handler: Handler, model: type[Event], service: str) -> None:
    """Refuse a handler keyed by a class its event parameter does not accept (``{UserUpdated:
    user_created}``): a wiring mistake that would otherwise surface as an AttributeError on the
    first such event, dead-lettering it."""
    hints = typing.get_type_hints(handler)
    parameter = next(iter(inspect.signature(handler).parameters))
    accepted = hints.get(parameter)
    classes = typing.get_args(accepted) if isinstance(accepted, types.UnionType) else (accepted,)
    if not any(isinstance(c, type) and issubclass(model, c) for c in classes):
        name = getattr(handler, "__qualname__", repr(handler))
        raise TypeError(f"service {service}: {name} is keyed by {model.__name__} but takes {accepted}")
