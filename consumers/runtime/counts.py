"""What applying records came to, counted once: a batch's outcome and a runner's totals are the
same counters, so a new fate of an event is added in one place and every total follows."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class Counts:
    applied: int = 0
    duplicates: int = 0
    #: Read, and of a type the service does not handle.
    ignored: int = 0
    #: Behind a dead-lettered event of the same key.
    parked: int = 0
    #: Held to wait for a prerequisite (each time one is held, or held again after a retry).
    pending: int = 0
    dead_lettered: int = 0
    follow_ups: int = 0
    #: Parked or held events applied once what they waited for was.
    released: int = 0

    def add(self, other: Counts) -> None:
        """Count ``other`` in these counters too."""
        for counter in fields(Counts):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))


#: The counters that are fates of events (``follow_ups`` counts what they recorded), as the
#: ``xbus_events_total`` metric labels them.
EVENT_FATES = {
    "applied": "applied",
    "duplicates": "duplicate",
    "ignored": "ignored",
    "parked": "parked",
    "pending": "pending",
    "dead_lettered": "dead_lettered",
    "released": "released",
}


@dataclass
class BatchOutcome(Counts):
    dead_letter_ids: list[str] = field(default_factory=list)
    #: The batch took the fast path (processor.py).
    fast: bool = False

    def add(self, other: Counts) -> None:
        super().add(other)
        if isinstance(other, BatchOutcome):
            self.dead_letter_ids += other.dead_letter_ids


@dataclass
class RunnerStats(Counts):
    """A runner's totals since it started: what tests, benchmarks and the stop log read."""

    batches: int = 0
    #: Batches tried again after the infrastructure failed them.
    retries: int = 0

    def count(self, outcome: BatchOutcome) -> None:
        self.batches += 1
        self.add(outcome)
