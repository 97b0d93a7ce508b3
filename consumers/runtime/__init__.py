"""The consumer runtime: exactly-once effects in PostgreSQL from at-least-once Kafka delivery."""

from consumers.runtime.service import DomainError, Handler, MissingPrerequisite, Service, keys_locked_as
from consumers.runtime.timers import Timer, TimerUnit
from consumers.runtime.unit_of_work import UnitOfWork

__all__ = [
    "DomainError",
    "Handler",
    "MissingPrerequisite",
    "Service",
    "Timer",
    "TimerUnit",
    "UnitOfWork",
    "keys_locked_as",
]
