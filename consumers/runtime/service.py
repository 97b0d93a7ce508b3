"""What a service declares: its name, handlers per event type and SQL migrations.

Everything else is derived so that nothing can drift: the consumer group is ``xbus.<name>``, the
topics it reads are the ones topics.yaml routes its handled event types to, its PostgreSQL
schema is its name, and its follow-up and dead-letter topics are the ones topics.yaml gives
its name as owner.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from schemas import Event
from xbus.catalogue import Catalogue, TopicKind

if TYPE_CHECKING:
    from consumers.runtime.timers import Timer
    from consumers.runtime.unit_of_work import UnitOfWork

Handler = Callable[[Event, "UnitOfWork"], Awaitable[None]]


class DomainError(Exception):
    """A handler's refusal of an event (unknown account, rule broken): dead-lettered, not retried."""


@dataclass(frozen=True)
class Service:
    name: str
    handlers: Mapping[str, Handler]
    migrations: Path | None = None
    #: Handler failures other than DomainError are retried this many times before dead-lettering.
    max_attempts: int = 3
    #: Apply one partition batch at a time (a PostgreSQL advisory lock per service, held by each
    #: batch's transaction), for a service whose invariants span partitions and topics; it gives up
    #: concurrency between partitions, so prefer ``UnitOfWork.lock`` on the entities involved.
    exclusive_batches: bool = False
    #: Periodic work no event triggers (consumers/runtime/timers.py), run beside the consumer.
    timers: tuple[Timer, ...] = ()
    description: str = field(default="", compare=False)

    @property
    def group_id(self) -> str:
        return f"xbus.{self.name}"

    def topics(self, catalogue: Catalogue) -> list[str]:
        return sorted({topic.name for event_type in self.handlers for topic in catalogue.topics_for_type(event_type)})

    def follow_up_topic(self, catalogue: Catalogue) -> str:
        for topic in catalogue.topics:
            if topic.owner == self.name and topic.kind == TopicKind.FOLLOW_UP:
                return topic.name
        raise LookupError(f"topics.yaml has no follow-up topic owned by {self.name!r}")

    def dead_letter_topic(self, catalogue: Catalogue) -> str:
        return catalogue.dead_letter_topic(self.name).name
