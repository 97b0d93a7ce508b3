"""The consumer runtime: exactly-once effects in PostgreSQL from at-least-once Kafka delivery."""

from consumers.runtime.service import DomainError, Handler, MissingPrerequisite, Service, Timer, fields_locked_as
from consumers.runtime.unit_of_work import FakeUnitOfWork, TimerUnit, UnitOfWork

__all__ = [
    "DomainError",
    "FakeUnitOfWork",
    "Handler",
    "MissingPrerequisite",
    "Service",
    "Timer",
    "TimerUnit",
    "UnitOfWork",
    "fields_locked_as",
]
