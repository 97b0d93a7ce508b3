"""Faults of the infrastructure as one line: which part did not answer, and what to check.

A command run while PostgreSQL or Kafka is down used to end in a 70-line traceback whose last
line was an ``OSError``. That is not a bug to report but a fact an operator acts on, so the CLI
prints it as one line naming the part; anything else keeps its traceback, since it is a bug.
"""

from __future__ import annotations

import traceback

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError

_POSTGRES = (
    asyncpg.PostgresConnectionError,  # refused, gone, cannot connect now, too many connections
    asyncpg.InvalidAuthorizationSpecificationError,  # no such role, wrong password
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.ConnectionDoesNotExistError,
)


def unreachable(error: BaseException) -> str | None:
    """The one line for ``error`` if the database or the broker did not answer, else None."""
    if isinstance(error, BaseExceptionGroup):
        lines = [line for inner in error.exceptions if (line := unreachable(inner))]
        return lines[0] if lines and len(lines) == len(error.exceptions) else None
    raised_in = {frame.filename for frame in traceback.extract_tb(error.__traceback__)}
    if isinstance(error, _POSTGRES) or (isinstance(error, OSError) and _in(raised_in, "asyncpg")):
        return (
            f"PostgreSQL did not answer ({_describe(error)}); check XBUS_DATABASE_URL, or "
            "`xbus stack status` for the embedded one"
        )
    if isinstance(error, KafkaConnectionError) or (isinstance(error, KafkaError) and _in(raised_in, "aiokafka")):
        return f"Kafka did not answer ({_describe(error)}); check XBUS_KAFKA_BOOTSTRAP"
    if isinstance(error, OSError) and _in(raised_in, "aiokafka"):
        return f"Kafka did not answer ({_describe(error)}); check XBUS_KAFKA_BOOTSTRAP"
    return None


def _in(filenames: set[str], package: str) -> bool:
    return any(f"/{package}/" in name for name in filenames)


def _describe(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())  # one line, whatever the driver's message
