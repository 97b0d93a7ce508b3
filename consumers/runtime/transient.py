"""Errors of the infrastructure, not of a record: PostgreSQL or Kafka unavailable, a serialization
failure or a deadlock. They abort a batch's transaction, and the batch is retried whole, so
nothing is skipped or reordered; a record is never dead-lettered for them."""

from __future__ import annotations

import asyncpg

#: Errors that say nothing about the record: retry the whole batch, never dead-letter for them.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,  # the server ended the session: shutdown, pg_terminate_backend
    asyncpg.CrashShutdownError,
    # A connection the server has just dropped (its FATAL message read, the socket not yet seen
    # closed) refuses the next statement with "cannot switch to state ...; another operation is
    # in progress"; a fresh connection is the cure, as for the errors above.
    asyncpg.InternalClientError,
    ConnectionError,
    OSError,
)
