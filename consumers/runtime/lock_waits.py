"""Whether a batch that completes no statement is stuck, or only waits its turn.

A batch of several partitions that completes no statement for ``XBUS_BATCH_SPLIT_SECONDS`` is
rolled back and its partitions go solo (progress.py), so that a stuck event holds back its own
partition only. But since batches take their entities' locks up front (``Service.locks``), a
healthy batch also completes no statement while it waits for the locks another batch of the
service holds, and under a backlog, where batches are long, that wait outlasts the limit: healthy
work was rolled back and redone (issue 18: 7 in authorisation's backlog, 10 in the tracker's).

The two cases differ in what the batch waits on, and PostgreSQL knows it: ``pg_blocking_pids``
names the transactions a backend waits on, and ``pg_stat_activity.state_change`` moves each time
one of them starts or completes a statement. A wait is excused when every transaction it waits on,
directly or through others that wait in turn, completed a statement within the limit: its turn
will come. A wait on a transaction that is itself quiet (a handler stuck on something external,
still holding its locks) is not, and the batch is split as before. This works across processes,
so two instances of a service behave the same as one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from consumers.runtime.transient import TRANSIENT_ERRORS

#: The backend of the waiting batch and, following ``pg_blocking_pids``, every backend it waits on,
#: directly or not; ``union`` stops at a cycle (a deadlock, which PostgreSQL breaks on its own).
_WAIT_CHAIN = """
with recursive chain(pid) as (
    select $1::int
    union
    select unnest(pg_blocking_pids(chain.pid)) from chain
)
select a.pid, pg_blocking_pids(a.pid) as blockers,
       extract(epoch from clock_timestamp() - a.state_change)::float8 as quiet_seconds
from chain join pg_stat_activity a using (pid)
"""


@dataclass(frozen=True)
class Backend:
    pid: int
    #: The backends whose locks this one waits for.
    blockers: tuple[int, ...]
    #: Seconds since it last started or completed a statement (None: no session state known).
    quiet_seconds: float | None


def waits_only_on_progress(waiter: int, backends: Mapping[int, Backend], seconds: float) -> bool:
    """True when ``waiter`` itself started or completed a statement within ``seconds``, or waits
    for locks and every backend it waits on, directly or through others that wait, did.

    A batch's watch wakes late when Python work no statement interrupted held the event loop (a
    batch of thousands of records parsed on a busy core): by then the batch has sent its next
    statement, and PostgreSQL knows it started, though the watch has not heard it complete."""
    mine = backends.get(waiter)
    if mine is None:
        return False
    if not mine.blockers:  # not waiting on a lock: its own stillness is what counts
        return mine.quiet_seconds is not None and mine.quiet_seconds < seconds

    def progressing(pid: int, path: frozenset[int]) -> bool:
        backend = backends.get(pid)
        if backend is None:
            return True  # it ended since: its locks are released
        if pid in path:
            return False  # a cycle: a deadlock, which PostgreSQL breaks
        if backend.blockers:
            return all(progressing(blocker, path | {pid}) for blocker in backend.blockers)
        return backend.quiet_seconds is not None and backend.quiet_seconds < seconds

    return all(progressing(blocker, frozenset({waiter})) for blocker in mine.blockers)


async def waiting_on_progress(pool: asyncpg.Pool, waiter: int, seconds: float) -> bool:
    """:func:`waits_only_on_progress` for backend ``waiter``, read on another of ``pool``'s
    connections; False when that cannot be read within ``seconds`` (the pool busy, the database
    away): then the batch is treated as stuck, as it was before waits were told apart."""
    try:
        async with asyncio.timeout(seconds):
            async with pool.acquire() as connection:
                rows = await connection.fetch(_WAIT_CHAIN, waiter)
    except (asyncpg.PostgresError, *TRANSIENT_ERRORS):  # TimeoutError is an OSError
        return False
    backends = {row["pid"]: Backend(row["pid"], tuple(row["blockers"]), row["quiet_seconds"]) for row in rows}
    return waits_only_on_progress(waiter, backends, seconds)
